//! Every shipped dialect against its simulated instrument over loopback TCP: identity, the
//! connect sequence, settings and their read-back in the model's reply format, measurement
//! of the plant, output on/off, protection setup, trip and clear, and the instrument's own
//! error codes and texts. Model-specific behaviour (channels, the R&S master output, the
//! Chroma modes, the I/O watchdog, cell faults) follows the tables.

use std::time::Duration;

use hilrig::instrument::{
    CellFault, InstrumentError, Load, Measurement, ScpiCellSim, ScpiLoad, ScpiSupply, Supply,
};
use hilrig::scpi::reply::parse_number;
use hilrig::scpi::{builtin_dialect, builtin_dialects, Client, OcpKind, Role, ScpiError};
use hilrig::sim::plant::{Plant, PlantState};
use hilrig::sim::scpi_server::{serve, serve_in_memory, SimInstrument};
use rstest::rstest;
use tokio::net::TcpListener;

const TIMEOUT: Duration = Duration::from_secs(2);

/// Cells in series for a dialect: as many 3.3 V cells as fit under channel 1's voltage
/// range with room to charge (a 16-cell pack for loads and cell simulators).
fn cells_for(id: &str) -> usize {
    let d = builtin_dialect(id).unwrap();
    let max_v = d
        .channel_ranges(d.channel_numbers()[0])
        .unwrap()
        .max_voltage;
    match d.role {
        Role::Supply => (((max_v - 0.5) / 3.65).floor() as usize).clamp(1, 16),
        _ => 16,
    }
}

/// A simulated instrument of dialect `id` on a loopback port.
async fn simulated(id: &str) -> SimInstrument {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    serve(
        listener,
        builtin_dialect(id).unwrap(),
        Plant::new(cells_for(id), 3.3, 4, 25.0),
    )
    .await
}

/// Any of the three kinds of SCPI instrument, so that one table covers every dialect.
enum Instrument {
    Supply(ScpiSupply),
    Load(ScpiLoad),
    Cells(ScpiCellSim),
}

impl Instrument {
    async fn connect(sim: &SimInstrument) -> Instrument {
        Self::connect_to(sim, &sim.address()).await.unwrap()
    }

    async fn connect_to(sim: &SimInstrument, address: &str) -> Result<Instrument, InstrumentError> {
        let dialect = sim.dialect().clone();
        Ok(match dialect.role {
            Role::Supply => {
                Instrument::Supply(ScpiSupply::connect("psu", address, dialect, TIMEOUT).await?)
            }
            Role::Load => {
                Instrument::Load(ScpiLoad::connect("load", address, dialect, TIMEOUT).await?)
            }
            Role::CellSim => {
                Instrument::Cells(ScpiCellSim::connect("cells", address, dialect, TIMEOUT).await?)
            }
            Role::Chamber | Role::Scope | Role::Short => {
                unreachable!("these dialects refuse `role: chamber` and `role: scope`")
            }
        })
    }

    async fn verify_identity(&mut self) -> Result<String, InstrumentError> {
        match self {
            Instrument::Supply(s) => s.verify_identity().await,
            Instrument::Load(l) => l.verify_identity().await,
            Instrument::Cells(c) => c.verify_identity().await,
        }
    }

    /// The main setting: supply/load current, cell 1 voltage.
    async fn set_main(&mut self, value: f64) -> Result<(), InstrumentError> {
        match self {
            Instrument::Supply(s) => s.set_current(value).await,
            Instrument::Load(l) => l.set_current(value).await,
            Instrument::Cells(c) => c.set_voltage(1, value).await,
        }
    }

    async fn set_enabled(&mut self, on: bool) -> Result<(), InstrumentError> {
        match self {
            Instrument::Supply(s) => s.set_output(on).await,
            Instrument::Load(l) => l.set_input(on).await,
            Instrument::Cells(c) => c.set_output(1, on).await,
        }
    }

    async fn enabled(&mut self) -> Result<bool, InstrumentError> {
        match self {
            Instrument::Supply(s) => s.output().await,
            Instrument::Load(l) => l.input().await,
            Instrument::Cells(c) => c.output(1).await,
        }
    }

    async fn measure(&mut self) -> Result<Measurement, InstrumentError> {
        match self {
            Instrument::Supply(s) => s.measure().await,
            Instrument::Load(l) => l.measure().await,
            Instrument::Cells(c) => c.measure(1).await,
        }
    }

    fn client(&mut self) -> &mut Client {
        match self {
            Instrument::Supply(s) => s.client(),
            Instrument::Load(l) => l.client(),
            Instrument::Cells(c) => c.client(),
        }
    }

    fn supply(&mut self) -> &mut ScpiSupply {
        match self {
            Instrument::Supply(s) => s,
            _ => panic!("not a supply"),
        }
    }

    fn load(&mut self) -> &mut ScpiLoad {
        match self {
            Instrument::Load(l) => l,
            _ => panic!("not a load"),
        }
    }

    fn cells(&mut self) -> &mut ScpiCellSim {
        match self {
            Instrument::Cells(c) => c,
            _ => panic!("not a cell simulator"),
        }
    }
}

fn assert_close(actual: f64, expected: f64, tolerance: f64) {
    assert!(
        (actual - expected).abs() <= tolerance,
        "{actual} is not within {tolerance} of {expected}"
    );
}

#[test]
fn every_shipped_dialect_is_in_these_tables() {
    let mut ids: Vec<String> = builtin_dialects().into_iter().map(|d| d.id).collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            "bloomy-abs",
            "chroma-63600",
            "ea-psb",
            "keysight-e36300",
            "keysight-n6700",
            "keysight-rp7900",
            "rigol-dl3000",
            "rigol-dp800",
            "rs-hmp4040",
            "rs-nge100",
            "siglent-sdl1000x",
        ]
    );
}

/// The first two `*IDN?` fields as the real model writes them.
#[rstest]
#[case::ea_psb("ea-psb", "EA Elektro-Automatik,PSB 9080-60,")]
#[case::rigol_dl3000("rigol-dl3000", "RIGOL TECHNOLOGIES,DL3021,")]
#[case::keysight_e36300("keysight-e36300", "Keysight Technologies,E36312")]
#[case::keysight_n6700("keysight-n6700", "Keysight Technologies,N670")]
#[case::keysight_rp7900("keysight-rp7900", "Keysight Technologies,RP79")]
#[case::rigol_dp800("rigol-dp800", "RIGOL TECHNOLOGIES,DP832,")]
#[case::rs_hmp4040("rs-hmp4040", "HAMEG,HMP4040,")]
#[case::rs_nge100("rs-nge100", "Rohde&Schwarz,NGE10")]
#[case::siglent_sdl1000x("siglent-sdl1000x", "Siglent Technologies,SDL10")]
#[case::chroma_63600("chroma-63600", "Chroma,63600")]
#[case::bloomy_abs("bloomy-abs", "Bloomy,BS1201,")]
#[tokio::test]
async fn identifies_as_the_dialects_model(#[case] id: &str, #[case] idn_start: &str) {
    let sim = simulated(id).await;
    let mut instrument = Instrument::connect(&sim).await;
    let idn = instrument.verify_identity().await.unwrap();
    assert!(idn.starts_with(idn_start), "{idn}");
    assert_eq!(
        idn.split(',').count(),
        4,
        "maker,model,serial,firmware: {idn}"
    );
}

#[rstest]
#[case::ea_psb("ea-psb", &["*CLS", "SYST:LOCK 1"])]
#[case::rigol_dl3000("rigol-dl3000", &["*CLS", ":SOUR:FUNC CURR"])]
#[case::keysight_e36300("keysight-e36300", &["*CLS"])]
#[case::keysight_n6700("keysight-n6700", &["*CLS"])]
#[case::keysight_rp7900("keysight-rp7900", &["*CLS", "FUNC VOLT"])]
#[case::rigol_dp800("rigol-dp800", &["*CLS"])]
#[case::rs_hmp4040("rs-hmp4040", &["*CLS"])]
#[case::rs_nge100("rs-nge100", &["*CLS"])]
#[case::siglent_sdl1000x("siglent-sdl1000x", &["*CLS", ":SOUR:FUNC CURR"])]
#[case::chroma_63600("chroma-63600", &["*CLS"])]
#[case::bloomy_abs("bloomy-abs", &["*CLS"])]
#[tokio::test]
async fn connect_checks_identity_then_sends_the_dialects_entry_commands_checked(
    #[case] id: &str,
    #[case] entry: &[&str],
) {
    let sim = simulated(id).await;
    let _instrument = Instrument::connect(&sim).await;
    let error_query = sim.dialect().error_query.clone();
    // The identity first, so that a wrong instrument gets nothing else.
    let expected: Vec<String> = std::iter::once("*IDN?".to_string())
        .chain(
            entry
                .iter()
                .flat_map(|c| [c.to_string(), error_query.clone()]),
        )
        .collect();
    assert_eq!(sim.command_log(), expected);
}

/// The main setting (supply/load current, cell voltage) read back with the model's own
/// query, in the model's own number format.
#[rstest]
#[case::ea_psb("ea-psb", 12.5, "SOUR:CURR?", "12.50 A")]
#[case::rigol_dl3000("rigol-dl3000", 12.5, ":SOUR:CURR?", "1.250000E+01")]
#[case::keysight_e36300("keysight-e36300", 2.5, "CURR? (@1)", "+2.500000E+00")]
#[case::keysight_n6700("keysight-n6700", 12.5, "CURR? (@1)", "+1.250000E+01")]
#[case::keysight_rp7900("keysight-rp7900", 12.5, "CURR:LIM?", "+1.250000E+01")]
#[case::rigol_dp800("rigol-dp800", 2.5, ":SOUR1:CURR?", "2.5000")]
#[case::rs_hmp4040("rs-hmp4040", 2.5, "INST:NSEL 1;:CURR?", "2.500")]
#[case::rs_nge100("rs-nge100", 2.5, "INST OUT1;:CURR?", "2.500")]
#[case::siglent_sdl1000x("siglent-sdl1000x", 12.5, ":SOUR:CURR?", "12.500000")]
#[case::chroma_63600("chroma-63600", 12.5, "CHAN 1;:CURR:STAT:L1?", "12.5000")]
#[case::bloomy_abs("bloomy-abs", 3.65, "SOUR1:VOLT?", "3.650000E+00")]
#[tokio::test]
async fn setting_reads_back_in_the_dialects_format(
    #[case] id: &str,
    #[case] value: f64,
    #[case] query: &str,
    #[case] reply: &str,
) {
    let sim = simulated(id).await;
    let mut instrument = Instrument::connect(&sim).await;
    instrument.set_main(value).await.unwrap();
    let text = instrument.client().query(query).await.unwrap();
    assert_eq!(text, reply);
    assert!((parse_number(&text).unwrap() - value).abs() < 1e-9);
    let state = sim.plant().snapshot();
    let applied = match sim.dialect().role {
        Role::Supply => state.supply.current_set,
        Role::Load => state.load.current_set,
        // A cell's setpoint reaches the plant only while its output is on.
        Role::CellSim => value,
        Role::Chamber | Role::Scope | Role::Short => {
            unreachable!("these dialects refuse `role: chamber` and `role: scope`")
        }
    };
    assert_eq!(applied, value);
}

#[rstest]
#[case::ea_psb("ea-psb", "VOLTage?", "5.00 V")]
#[case::keysight_e36300("keysight-e36300", "VOLT? (@1)", "+5.000000E+00")]
#[case::keysight_n6700(
    "keysight-n6700",
    "SOURce:VOLTage:LEVel:IMMediate:AMPLitude? (@1)",
    "+5.000000E+00"
)]
#[case::keysight_rp7900("keysight-rp7900", "VOLT?", "+5.000000E+00")]
#[case::rigol_dp800("rigol-dp800", ":SOUR1:VOLT?", "5.0000")]
#[case::rs_hmp4040("rs-hmp4040", "VOLT?", "5.000")]
#[case::rs_nge100("rs-nge100", "SOUR:VOLT?", "5.000")]
#[tokio::test]
async fn supply_voltage_reads_back_in_the_dialects_format(
    #[case] id: &str,
    #[case] query: &str,
    #[case] reply: &str,
) {
    let sim = simulated(id).await;
    let mut instrument = Instrument::connect(&sim).await;
    instrument.supply().set_voltage(5.0).await.unwrap();
    assert_eq!(instrument.client().query(query).await.unwrap(), reply);
    assert_eq!(sim.plant().snapshot().supply.voltage_set, 5.0);
}

/// Tolerance of a reading: the reply format's rounding.
fn resolution(sim: &SimInstrument) -> f64 {
    use hilrig::scpi::NumberFormat::*;
    let r = &sim.dialect().replies;
    match r.number {
        Nr3 | Nr3Signed => 1e-5,
        Nr2 | WithUnits => 0.6 * 10f64.powi(-i32::from(r.decimals.unwrap_or(2))),
    }
}

/// What the plant says a reading should be.
type Reading = fn(&PlantState) -> f64;

/// Supplies charge the pack through the plant (current-limited), loads discharge it, the
/// cell simulator drives cell 1; every reading is what the plant says, in the model's format.
#[rstest]
#[case::ea_psb("ea-psb")]
#[case::rigol_dl3000("rigol-dl3000")]
#[case::keysight_e36300("keysight-e36300")]
#[case::keysight_n6700("keysight-n6700")]
#[case::keysight_rp7900("keysight-rp7900")]
#[case::rigol_dp800("rigol-dp800")]
#[case::rs_hmp4040("rs-hmp4040")]
#[case::rs_nge100("rs-nge100")]
#[case::siglent_sdl1000x("siglent-sdl1000x")]
#[case::chroma_63600("chroma-63600")]
#[case::bloomy_abs("bloomy-abs")]
#[tokio::test]
async fn measures_the_plant_with_current_flowing(#[case] id: &str) {
    let sim = simulated(id).await;
    {
        let mut plant = sim.plant().lock();
        plant.chg_fet = true;
        plant.dsg_fet = true;
    }
    let mut instrument = Instrument::connect(&sim).await;
    let ranges = sim.dialect().ranges;
    let amps = (ranges.max_current / 4.0).min(5.0);
    let (expected_v, expected_i): (Reading, Reading) = match sim.dialect().role {
        Role::Supply => {
            let cells = cells_for(id) as f64;
            instrument.supply().set_voltage(cells * 3.6).await.unwrap();
            instrument.set_main(amps).await.unwrap();
            (PlantState::supply_voltage, PlantState::supply_current)
        }
        Role::Load => {
            instrument.set_main(amps).await.unwrap();
            (PlantState::load_voltage, PlantState::load_current)
        }
        Role::CellSim => {
            instrument.set_main(3.6).await.unwrap();
            (|p| p.cell_voltage(0).unwrap_or(0.0), |p| -p.pack_current())
        }
        Role::Chamber | Role::Scope | Role::Short => {
            unreachable!("these dialects refuse `role: chamber` and `role: scope`")
        }
    };
    instrument.set_enabled(true).await.unwrap();
    let m = instrument.measure().await.unwrap();
    let s = sim.plant().snapshot();
    let tolerance = resolution(&sim).max(1e-6);
    assert_close(m.voltage, expected_v(&s), tolerance);
    assert_close(m.current, expected_i(&s), tolerance);
    match sim.dialect().role {
        Role::Supply | Role::Load => assert_close(m.current, amps, tolerance),
        Role::CellSim => assert_close(m.voltage, 3.6, tolerance),
        Role::Chamber | Role::Scope | Role::Short => {
            unreachable!("these dialects refuse `role: chamber` and `role: scope`")
        }
    }
}

#[rstest]
#[case::ea_psb("ea-psb")]
#[case::rigol_dl3000("rigol-dl3000")]
#[case::keysight_e36300("keysight-e36300")]
#[case::keysight_n6700("keysight-n6700")]
#[case::keysight_rp7900("keysight-rp7900")]
#[case::rigol_dp800("rigol-dp800")]
#[case::rs_hmp4040("rs-hmp4040")]
#[case::rs_nge100("rs-nge100")]
#[case::siglent_sdl1000x("siglent-sdl1000x")]
#[case::chroma_63600("chroma-63600")]
#[case::bloomy_abs("bloomy-abs")]
#[tokio::test]
async fn output_switches_on_and_off(#[case] id: &str) {
    let sim = simulated(id).await;
    let mut instrument = Instrument::connect(&sim).await;
    let plant_state = |sim: &SimInstrument| {
        let s = sim.plant().snapshot();
        match sim.dialect().role {
            Role::Supply => s.supply.output,
            Role::Load => s.load.input,
            Role::CellSim => s.cell_override[0].is_some(),
            Role::Chamber | Role::Scope | Role::Short => {
                unreachable!("these dialects refuse `role: chamber` and `role: scope`")
            }
        }
    };
    if let Instrument::Cells(c) = &mut instrument {
        c.set_voltage(1, 3.4).await.unwrap();
    }
    assert!(!instrument.enabled().await.unwrap());
    instrument.set_enabled(true).await.unwrap();
    assert!(instrument.enabled().await.unwrap());
    assert!(plant_state(&sim));
    instrument.set_enabled(false).await.unwrap();
    assert!(!instrument.enabled().await.unwrap());
    assert!(!plant_state(&sim));
}

/// Over-voltage: a setting above the programmed OVP trips the output as it switches on;
/// the trip latches (switching on again is refused with the model's error) until cleared.
#[rstest]
#[case::ea_psb("ea-psb")]
#[case::keysight_e36300("keysight-e36300")]
#[case::keysight_n6700("keysight-n6700")]
#[case::keysight_rp7900("keysight-rp7900")]
#[case::rigol_dp800("rigol-dp800")]
#[case::rs_hmp4040("rs-hmp4040")]
#[case::rs_nge100("rs-nge100")]
#[tokio::test]
async fn supply_over_voltage_trips_latches_and_clears(#[case] id: &str) {
    let sim = simulated(id).await;
    let mut instrument = Instrument::connect(&sim).await;
    let psu = instrument.supply();
    let max_v = psu.dialect().ranges.max_voltage;
    psu.program_protection(0.5 * max_v, 1.0).await.unwrap();
    assert_eq!(sim.plant().snapshot().supply.ovp, Some(0.5 * max_v));
    psu.set_voltage(0.6 * max_v).await.unwrap();
    psu.set_current(0.5).await.unwrap();
    psu.set_output(true).await.unwrap();
    let state = sim.plant().snapshot().supply;
    assert!(state.protection_tripped && !state.output, "{state:?}");
    assert!(!psu.output().await.unwrap());
    if psu.dialect().commands.protection_query.is_some() {
        assert!(psu.tripped().await.unwrap());
    }
    let error = psu.set_output(true).await.unwrap_err();
    assert!(
        matches!(error.scpi(), Some(ScpiError::Instrument { code: -221, .. })),
        "{error}"
    );
    psu.set_voltage(0.4 * max_v).await.unwrap();
    psu.clear_protection().await.unwrap();
    if psu.dialect().commands.protection_query.is_some() {
        assert!(!psu.tripped().await.unwrap());
    }
    psu.set_output(true).await.unwrap();
    assert!(psu.output().await.unwrap());
    assert!(!sim.plant().snapshot().supply.protection_tripped);
}

/// Over-current where the model has a trip level: charging at 2 A above a 1 A OCP trips.
/// Where OCP trips at the current setting, protection programming leaves it off, so a
/// supply charging in constant current keeps running.
#[rstest]
#[case::ea_psb("ea-psb")]
#[case::keysight_e36300("keysight-e36300")]
#[case::keysight_n6700("keysight-n6700")]
#[case::keysight_rp7900("keysight-rp7900")]
#[case::rigol_dp800("rigol-dp800")]
#[case::rs_hmp4040("rs-hmp4040")]
#[case::rs_nge100("rs-nge100")]
#[tokio::test]
async fn supply_over_current_follows_the_models_kind_of_ocp(#[case] id: &str) {
    let sim = simulated(id).await;
    sim.plant().lock().chg_fet = true;
    let mut instrument = Instrument::connect(&sim).await;
    let psu = instrument.supply();
    let max_v = psu.dialect().ranges.max_voltage;
    let kind = psu.dialect().protection.ocp;
    psu.program_protection(max_v, 1.0).await.unwrap();
    psu.set_voltage(cells_for(id) as f64 * 3.6).await.unwrap();
    psu.set_current(2.0).await.unwrap();
    psu.set_output(true).await.unwrap();
    let state = sim.plant().snapshot().supply;
    match kind {
        OcpKind::Level => {
            assert_eq!(state.ocp, Some(1.0));
            assert!(state.protection_tripped && !state.output, "{state:?}");
            psu.clear_protection().await.unwrap();
            psu.set_current(0.5).await.unwrap();
            psu.set_output(true).await.unwrap();
            assert!(psu.output().await.unwrap());
        }
        OcpKind::AtCurrentLimit | OcpKind::None => {
            assert_eq!(state.ocp, None);
            assert!(!state.protection_tripped && state.output, "{state:?}");
            assert_close(sim.plant().snapshot().supply_current(), 2.0, 1e-9);
        }
    }
}

/// Loads: OCP where the model has it (Siglent trips and resets when switched on again),
/// a clear command where it has one, and a clear `Unsupported` naming the missing
/// command everywhere else.
#[rstest]
#[case::rigol_dl3000("rigol-dl3000")]
#[case::siglent_sdl1000x("siglent-sdl1000x")]
#[case::chroma_63600("chroma-63600")]
#[tokio::test]
async fn load_protection_setup_trip_and_clear(#[case] id: &str) {
    let sim = simulated(id).await;
    sim.plant().lock().dsg_fet = true;
    let mut instrument = Instrument::connect(&sim).await;
    let load = instrument.load();
    let has_ocp = load.dialect().commands.set_ocp.is_some();
    let has_clear = load.dialect().commands.clear_protection.is_some();
    match load.program_protection(2.0).await {
        Ok(()) => {
            assert!(has_ocp);
            load.set_current(3.0).await.unwrap();
            load.set_input(true).await.unwrap();
            assert!(!load.input().await.unwrap(), "OCP should have tripped");
            load.set_current(1.0).await.unwrap();
            load.set_input(true).await.unwrap();
            assert!(load.input().await.unwrap());
        }
        Err(error) => {
            assert!(!has_ocp);
            assert!(
                matches!(
                    error,
                    InstrumentError::Unsupported {
                        command: "set_ocp",
                        ..
                    }
                ),
                "{error}"
            );
        }
    }
    match load.clear_protection().await {
        Ok(()) => assert!(has_clear),
        Err(error) => {
            assert!(!has_clear);
            assert!(
                error.to_string().contains("commands.clear_protection"),
                "{error}"
            );
        }
    }
}

#[rstest]
#[case::ea_psb("ea-psb", "psu")]
#[case::rigol_dl3000("rigol-dl3000", "load")]
#[case::keysight_e36300("keysight-e36300", "psu")]
#[case::keysight_n6700("keysight-n6700", "psu")]
#[case::keysight_rp7900("keysight-rp7900", "psu")]
#[case::rigol_dp800("rigol-dp800", "psu")]
#[case::rs_hmp4040("rs-hmp4040", "psu")]
#[case::rs_nge100("rs-nge100", "psu")]
#[case::siglent_sdl1000x("siglent-sdl1000x", "load")]
#[case::chroma_63600("chroma-63600", "load")]
#[case::bloomy_abs("bloomy-abs", "cells")]
#[tokio::test]
async fn errors_carry_the_instruments_own_code_and_text(
    #[case] id: &str,
    #[case] instrument_id: &str,
) {
    let sim = simulated(id).await;
    let mut instrument = Instrument::connect(&sim).await;
    let error = instrument
        .client()
        .write_checked("FOO:BAR 1")
        .await
        .unwrap_err();
    match &error {
        ScpiError::Instrument {
            code,
            message,
            after,
        } => assert_eq!(
            (*code, message.as_str(), after.as_str()),
            (-113, "Undefined header", "FOO:BAR 1")
        ),
        other => panic!("expected an instrument error, got {other:?}"),
    }
    // The queue was emptied: the next setting goes through.
    instrument.set_main(1.0).await.unwrap();
    // Out of range: supplies and loads refuse it before sending (the channel's range),
    // naming the instrument; the instrument itself answers the raw command with -222.
    let error = instrument.set_main(1000.0).await.unwrap_err();
    let message = error.to_string();
    assert!(
        message.starts_with(&format!("instrument `{instrument_id}`: ")),
        "{message}"
    );
    match &error {
        InstrumentError::OutOfRange { .. } => {
            assert!(message.contains("nothing was sent"), "{message}");
            let d = sim.dialect();
            let ch = d.channel_numbers()[0];
            let raw = d
                .commands
                .set_current
                .as_ref()
                .unwrap()
                .render(Some(1000.0), ch);
            let error = instrument
                .client()
                .write_sequence_checked(&raw)
                .await
                .unwrap_err();
            assert!(
                matches!(&error, ScpiError::Instrument { code: -222, message, .. } if message == "Data out of range"),
                "{error}"
            );
        }
        _ => {
            assert!(
                matches!(error.scpi(), Some(ScpiError::Instrument { code: -222, .. })),
                "{message}"
            );
            assert!(message.contains("-222,\"Data out of range\""), "{message}");
        }
    }
    let state = sim.plant().snapshot();
    assert!(
        state.supply.current_set <= 1.0 && state.load.current_set <= 1.0,
        "rejected value was applied"
    );
    // A fault the instrument raises on its own fails the next checked command.
    sim.inject_error(-310, "System error;fan failure");
    let error = instrument.set_enabled(false).await.unwrap_err();
    assert!(
        matches!(error.scpi(), Some(ScpiError::Instrument { code: -310, message, .. }) if message == "System error;fan failure"),
        "{error}"
    );
}

#[rstest]
#[case::ea_psb("ea-psb")]
#[case::rigol_dl3000("rigol-dl3000")]
#[case::keysight_e36300("keysight-e36300")]
#[case::keysight_n6700("keysight-n6700")]
#[case::keysight_rp7900("keysight-rp7900")]
#[case::rigol_dp800("rigol-dp800")]
#[case::rs_hmp4040("rs-hmp4040")]
#[case::rs_nge100("rs-nge100")]
#[case::siglent_sdl1000x("siglent-sdl1000x")]
#[case::chroma_63600("chroma-63600")]
#[case::bloomy_abs("bloomy-abs")]
#[tokio::test]
async fn dropped_connection_is_a_typed_error_and_reconnecting_works(#[case] id: &str) {
    let sim = simulated(id).await;
    let mut instrument = Instrument::connect(&sim).await;
    instrument.measure().await.unwrap();
    sim.drop_connections();
    let error = instrument.measure().await.unwrap_err();
    assert!(
        matches!(
            error.scpi(),
            Some(ScpiError::Disconnected { .. } | ScpiError::Io { .. })
        ),
        "{error}"
    );
    let mut again = Instrument::connect(&sim).await;
    again.measure().await.unwrap();
}

/// A second channel is reached with `?channel=N`, takes that channel's ranges, and does
/// not touch the channel wired to the plant.
#[rstest]
#[case::keysight_e36300("keysight-e36300", 2, 20.0, "VOLT? (@2)", "+2.000000E+01")]
#[case::keysight_n6700("keysight-n6700", 2, 20.0, "VOLT? (@2)", "+2.000000E+01")]
#[case::rigol_dp800("rigol-dp800", 3, 4.5, ":SOUR3:VOLT?", "4.5000")]
#[case::rs_hmp4040("rs-hmp4040", 4, 20.0, "INST:NSEL 4;:VOLT?", "20.000")]
#[case::rs_nge100("rs-nge100", 2, 20.0, "INST:NSEL 2;:VOLT?", "20.000")]
#[tokio::test]
async fn a_second_channel_is_addressed_with_its_own_ranges(
    #[case] id: &str,
    #[case] channel: u32,
    #[case] volts: f64,
    #[case] query: &str,
    #[case] reply: &str,
) {
    let sim = simulated(id).await;
    let address = format!("{}?channel={channel}", sim.address());
    let mut instrument = Instrument::connect_to(&sim, &address).await.unwrap();
    let psu = instrument.supply();
    assert_eq!(psu.channel(), channel);
    let max_v = psu.dialect().ranges.max_voltage;
    assert_eq!(
        Some(max_v),
        sim.dialect().channel_ranges(channel).map(|r| r.max_voltage)
    );
    psu.set_voltage(volts).await.unwrap();
    psu.set_current(0.5).await.unwrap();
    psu.set_output(true).await.unwrap();
    assert!(psu.output().await.unwrap());
    let m = psu.measure().await.unwrap();
    assert_close(m.voltage, volts, 1e-3);
    assert_eq!(
        m.current, 0.0,
        "an open-circuit channel delivers no current"
    );
    assert_eq!(psu.client().query(query).await.unwrap(), reply);
    let plant = sim.plant().snapshot().supply;
    assert!(!plant.output && plant.voltage_set == 0.0, "{plant:?}");
    let error = psu.set_voltage(max_v + 1.0).await.unwrap_err();
    assert!(
        matches!(error, InstrumentError::OutOfRange { channel: c, .. } if c == channel),
        "{error}"
    );
}

#[tokio::test]
async fn a_channel_the_dialect_lacks_is_refused() {
    let sim = simulated("rigol-dp800").await;
    let address = format!("{}?channel=4", sim.address());
    let error = Instrument::connect_to(&sim, &address).await.err().unwrap();
    assert!(
        matches!(error, InstrumentError::NoSuchChannel { channel: 4, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("[1, 2, 3]"), "{error}");
}

#[tokio::test]
async fn the_first_channel_of_the_e36312a_refuses_more_than_6_volts() {
    let sim = simulated("keysight-e36300").await;
    let mut instrument = Instrument::connect(&sim).await;
    let error = instrument.supply().set_voltage(10.0).await.unwrap_err();
    assert!(
        matches!(error, InstrumentError::OutOfRange { max, .. } if max == 6.0),
        "{error}"
    );
    // The instrument refuses it as well.
    let error = instrument
        .client()
        .write_checked("VOLT 10,(@1)")
        .await
        .unwrap_err();
    assert!(
        matches!(error, ScpiError::Instrument { code: -222, .. }),
        "{error}"
    );
    // The raw form with a channel list names the channel explicitly.
    let error = instrument
        .client()
        .write_checked("VOLT 5,(@9)")
        .await
        .unwrap_err();
    assert!(
        matches!(error, ScpiError::Instrument { code: -222, .. }),
        "{error}"
    );
    let reply = instrument
        .client()
        .query("MEAS:VOLT? (@1:3)")
        .await
        .unwrap();
    assert_eq!(reply.split(',').count(), 3, "{reply}");
}

#[rstest]
#[case::rs_hmp4040("rs-hmp4040")]
#[case::rs_nge100("rs-nge100")]
#[tokio::test]
async fn rs_outputs_need_the_channel_selected_and_the_master_on(#[case] id: &str) {
    let sim = simulated(id).await;
    let mut instrument = Instrument::connect(&sim).await;
    instrument.supply().set_voltage(5.0).await.unwrap();
    let client = instrument.client();
    client.write_checked("INST:NSEL 1").await.unwrap();
    client.write_checked("OUTP:SEL ON").await.unwrap();
    assert!(!sim.plant().snapshot().supply.output, "master still off");
    client.write_checked("OUTP:GEN ON").await.unwrap();
    assert!(sim.plant().snapshot().supply.output);
    assert!(instrument.supply().output().await.unwrap());
    // The master switches every channel off; the selection stays.
    instrument
        .client()
        .write_checked("OUTP:GEN OFF")
        .await
        .unwrap();
    assert!(!sim.plant().snapshot().supply.output);
    assert!(!instrument.supply().output().await.unwrap());
    assert_eq!(instrument.client().query("OUTP:SEL?").await.unwrap(), "1");
    // Switching one channel off leaves the master on for the others.
    instrument.supply().set_output(true).await.unwrap();
    instrument.supply().set_output(false).await.unwrap();
    assert_eq!(instrument.client().query("OUTP:GEN?").await.unwrap(), "1");
}

#[tokio::test]
async fn chroma_chooses_the_low_or_high_current_range_by_value() {
    let sim = simulated("chroma-63600").await;
    let mut instrument = Instrument::connect(&sim).await;
    instrument.set_main(2.5).await.unwrap();
    assert_eq!(instrument.client().query("MODE?").await.unwrap(), "CCL");
    instrument.set_main(25.0).await.unwrap();
    assert_eq!(instrument.client().query("MODE?").await.unwrap(), "CCH");
    // In CCL the setting is bounded by the low range: the instrument says so.
    let client = instrument.client();
    client.write_checked("MODE CCL").await.unwrap();
    let error = client.write_checked("CURR:STAT:L1 20").await.unwrap_err();
    assert!(
        matches!(error, ScpiError::Instrument { code: -222, .. }),
        "{error}"
    );
    let error = client.write_checked("MODE CRL").await.unwrap_err();
    assert!(
        matches!(error, ScpiError::Instrument { code: -221, .. }),
        "{error}"
    );
}

#[tokio::test]
async fn siglent_switches_its_current_range_by_value() {
    let sim = simulated("siglent-sdl1000x").await;
    let mut instrument = Instrument::connect(&sim).await;
    instrument.set_main(2.0).await.unwrap();
    assert_eq!(
        instrument
            .client()
            .query(":SOUR:CURR:IRANG?")
            .await
            .unwrap(),
        "5.000000"
    );
    instrument.set_main(20.0).await.unwrap();
    assert_eq!(
        instrument
            .client()
            .query(":SOUR:CURR:IRANG?")
            .await
            .unwrap(),
        "30.000000"
    );
}

#[rstest]
#[case::none(CellFault::None, Some(3.6))]
#[case::open(CellFault::Open, Some(0.0))]
#[case::short(CellFault::Short, Some(0.0))]
#[case::polarity(CellFault::Polarity, Some(-3.6))]
#[tokio::test]
async fn bloomy_fault_injection_reaches_the_cell(
    #[case] injected: CellFault,
    #[case] cell_volts: Option<f64>,
) {
    let sim = simulated("bloomy-abs").await;
    let mut instrument = Instrument::connect(&sim).await;
    let cells = instrument.cells();
    cells.set_voltage(5, 3.6).await.unwrap();
    cells.set_output(5, true).await.unwrap();
    cells.set_current_limits(5, 2.0, 1.0).await.unwrap();
    cells.set_fault(5, injected).await.unwrap();
    assert_eq!(sim.plant().snapshot().cell_override[4], cell_volts);
    let name = match injected {
        CellFault::None => "NONE",
        CellFault::Open => "OPEN",
        CellFault::Short => "SHORT",
        CellFault::Polarity => "POL",
    };
    assert_eq!(cells.client().query("OUTP5:FAUL?").await.unwrap(), name);
    cells.set_fault(5, CellFault::None).await.unwrap();
    assert_eq!(sim.plant().snapshot().cell_override[4], Some(3.6));
    cells.set_output(5, false).await.unwrap();
    assert_eq!(sim.plant().snapshot().cell_override[4], None);
    let error = cells
        .client()
        .write_checked("SOUR9:VOLT 3")
        .await
        .unwrap_err();
    assert!(
        matches!(error, ScpiError::Instrument { code: -114, .. }),
        "{error}"
    );
}

/// The I/O watchdog in virtual time: armed, the output switches off after the delay
/// without host traffic; models without one say so and are sent nothing.
#[rstest]
#[case::keysight_n6700("keysight-n6700", true)]
#[case::keysight_rp7900("keysight-rp7900", true)]
#[case::ea_psb("ea-psb", true)]
#[case::keysight_e36300("keysight-e36300", false)]
#[case::rigol_dp800("rigol-dp800", false)]
#[case::rs_hmp4040("rs-hmp4040", false)]
#[tokio::test(start_paused = true)]
async fn the_io_watchdog_switches_the_output_off_after_silence(
    #[case] id: &str,
    #[case] has_watchdog: bool,
) {
    let sim = serve_in_memory(
        builtin_dialect(id).unwrap(),
        Plant::new(cells_for(id), 3.3, 4, 25.0),
    );
    let mut psu = ScpiSupply::open(
        "psu",
        sim.connect_in_memory(),
        sim.dialect().clone(),
        TIMEOUT,
    )
    .await
    .unwrap();
    psu.set_voltage(3.0).await.unwrap();
    psu.set_output(true).await.unwrap();
    sim.clear_command_log();
    assert_eq!(
        psu.arm_watchdog(Duration::from_millis(1500)).await.unwrap(),
        has_watchdog
    );
    if !has_watchdog {
        assert!(sim.command_log().is_empty(), "{:?}", sim.command_log());
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(sim.plant().snapshot().supply.output);
        return;
    }
    assert_eq!(
        sim.command_log()
            .iter()
            .filter(|c| c.contains("WDOG"))
            .cloned()
            .collect::<Vec<_>>(),
        sim.dialect()
            .watchdog
            .as_ref()
            .unwrap()
            .arm
            .iter()
            .map(|c| c.replace("{v}", "2"))
            .collect::<Vec<_>>()
    );
    // Traffic keeps it quiet.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(psu.output().await.unwrap());
    }
    // Silence trips it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let state = sim.plant().snapshot().supply;
    assert!(!state.output && state.protection_tripped, "{state:?}");
    psu.clear_protection().await.unwrap();
    assert!(psu.disarm_watchdog().await.unwrap());
    psu.set_output(true).await.unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(sim.plant().snapshot().supply.output);
}
