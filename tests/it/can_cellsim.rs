//! The shipped cell-simulator mappings through `CanCellSim`: a BS1200-style box (one frame
//! per setpoint, 0-based channel byte on the wire) and a debug-AFE-style injection (groups
//! of four cells / six sensors in multiplexed big-endian frames), and the rig example that
//! names them.

use crate::can_common;

use std::time::Duration;

use can_common::root;
use hilrig::can::{Bus, Frame, Received, VirtualBus};
use hilrig::dbc::Dbc;
use hilrig::instrument::cellsim::{CanCellSim, CellSim};
use hilrig::plan::load_rig;
use hilrig::rig::{CellSimMapping, InstrumentConfig, Role};
use tokio::sync::broadcast;

fn dbc(name: &str) -> Dbc {
    Dbc::from_file(&root().join("fixtures/dbc").join(name)).unwrap_or_else(|e| panic!("{e}"))
}

fn mapping(yaml: &str) -> CellSimMapping {
    serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{e}"))
}

async fn next(rx: &mut broadcast::Receiver<Received>) -> Frame {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a frame")
        .expect("bus open")
        .frame
}

fn value(dbc: &Dbc, frame: &Frame, signal: &str) -> Option<f64> {
    let m = dbc.message_by_id(frame.id, frame.extended).unwrap();
    m.decode_signal(signal, &frame.data)
        .unwrap()
        .map(|d| d.physical)
}

const BS1200: &str = "dbc: x.dbc\nvoltage_message: BS1200_SetCellVoltage\nindex_signal: Channel\n\
                      voltage_signal: Voltage\naccuracy: 2 mV\nupdate_period: 100 ms\n";

const AFE: &str = "dbc: x.dbc\nvoltage_message: DebugAfe_CellVoltages\nindex_signal: CellGroup\n\
                   voltage_signal: Cell{n:02}_Voltage\naccuracy: 1 mV\nupdate_period: 100 ms\n\
                   temperature:\n  message: DebugAfe_CellTemperatures\n  index_signal: SensorGroup\n\
                   \x20 value_signal: Temp{n:02}\n  accuracy: 1 °C\n";

#[tokio::test]
async fn bs1200_style_box_gets_one_frame_per_setpoint() {
    let bus = VirtualBus::create("cellsim-bs1200");
    let mut rx = bus.subscribe();
    let mut sim = CanCellSim::new(
        "cells",
        Box::new(bus.clone()),
        &dbc("bs1200-style.dbc"),
        &mapping(BS1200),
    )
    .unwrap();
    sim.set_cell_voltage(5, 3.3).await.unwrap();
    let f = next(&mut rx).await;
    // 0x510 + box 1; channel 5 is 4 on the wire; 3.3 V = 33000 x 0.1 mV, little-endian.
    assert_eq!(f, Frame::new(0x511, false, &[0x04, 0xE8, 0x80]).unwrap());
    sim.set_cell_voltage(12, 0.0).await.unwrap();
    assert_eq!(next(&mut rx).await.data, [11, 0, 0]);
    // No temperature message in this mapping.
    assert!(sim.set_temperature(1, 25.0).await.is_err());
}

#[tokio::test]
async fn debug_afe_injection_sends_whole_groups() {
    let afe = dbc("debug-afe-style.dbc");
    let bus = VirtualBus::create("cellsim-afe");
    let mut rx = bus.subscribe();
    let mut sim = CanCellSim::new("afe", Box::new(bus.clone()), &afe, &mapping(AFE)).unwrap();

    // Cell 6 is in group 1 (cells 5-8); channels never set take the value being set.
    sim.set_cell_voltage(6, 3.456).await.unwrap();
    let f = next(&mut rx).await;
    assert_eq!((f.id, f.data.len()), (0x270, 8));
    assert_eq!(value(&afe, &f, "CellGroup"), Some(1.0));
    for cell in [
        "Cell05_Voltage",
        "Cell06_Voltage",
        "Cell07_Voltage",
        "Cell08_Voltage",
    ] {
        assert_eq!(value(&afe, &f, cell), Some(3.456), "{cell}");
    }
    assert_eq!(
        value(&afe, &f, "Cell01_Voltage"),
        None,
        "group 0 not in this frame"
    );
    assert_eq!(value(&afe, &f, "Cell06_Invalid"), Some(0.0));

    // The group keeps the other channels' last setpoints.
    sim.set_cell_voltage(7, 3.65).await.unwrap();
    let f = next(&mut rx).await;
    assert_eq!(value(&afe, &f, "Cell06_Voltage"), Some(3.456));
    assert_eq!(value(&afe, &f, "Cell07_Voltage"), Some(3.65));
    assert_eq!(value(&afe, &f, "Cell05_Voltage"), Some(3.456));

    // Big-endian millivolts: byte 0 is the group.
    sim.set_cell_voltage(1, 3.3).await.unwrap();
    let f = next(&mut rx).await;
    assert_eq!(f.data[0], 0);

    sim.set_temperature(8, -12.0).await.unwrap();
    let f = next(&mut rx).await;
    assert_eq!(f.id, 0x280);
    assert_eq!(value(&afe, &f, "SensorGroup"), Some(1.0));
    assert_eq!(value(&afe, &f, "Temp08"), Some(-12.0));
    assert_eq!(value(&afe, &f, "Temp07"), Some(-12.0));

    // Channels beyond the DBC are an error naming the range, not a panic.
    let err = sim.set_cell_voltage(17, 3.3).await.unwrap_err().to_string();
    assert!(
        err.contains("channel 17") && err.contains("1..=16"),
        "{err}"
    );
}

#[test]
fn a_per_channel_name_needs_the_multiplexor_as_index() {
    let yaml = AFE.replace("index_signal: CellGroup", "index_signal: Cell01_Invalid");
    let bus = VirtualBus::create("cellsim-bad");
    let err = CanCellSim::new(
        "afe",
        Box::new(bus),
        &dbc("debug-afe-style.dbc"),
        &mapping(&yaml),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("must be the multiplexor"), "{err}");

    let yaml = AFE.replace("Cell{n:02}_Voltage", "Cell{n}_Volts");
    let bus = VirtualBus::create("cellsim-bad2");
    let err = CanCellSim::new(
        "afe",
        Box::new(bus),
        &dbc("debug-afe-style.dbc"),
        &mapping(&yaml),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("no signal of message"), "{err}");
}

#[test]
fn the_lab_example_rig_and_its_debug_afe_alternative_fit_their_dbcs() {
    let path = root().join("rig/lab-example.yaml");
    let rig = load_rig(&path).unwrap_or_else(|e| panic!("{e}")).value;
    let cells = rig
        .instruments
        .iter()
        .find(|i| i.role == Role::CellSim)
        .unwrap();
    let m = cells.mapping.as_ref().unwrap();
    let dbc = Dbc::from_file(&m.dbc).unwrap();
    let bus = VirtualBus::create("cellsim-lab");
    CanCellSim::new(&cells.id, Box::new(bus), &dbc, m).unwrap();

    // The commented alternative, uncommented.
    let text = std::fs::read_to_string(&path).unwrap();
    let block: String = text
        .lines()
        .skip_while(|l| !l.contains("--- debug-AFE mapping ---"))
        .skip(1)
        .take_while(|l| !l.contains("--- end ---"))
        .map(|l| format!("{}\n", l.trim_start().strip_prefix("# ").unwrap_or("")))
        .collect();
    let alt: Vec<InstrumentConfig> =
        serde_saphyr::from_str(&block).unwrap_or_else(|e| panic!("{e}\n{block}"));
    let m = alt[0].mapping.as_ref().unwrap();
    let dbc = Dbc::from_file(&root().join("rig").join(&m.dbc)).unwrap();
    let bus = VirtualBus::create("cellsim-lab-afe");
    CanCellSim::new(&alt[0].id, Box::new(bus), &dbc, m).unwrap();
    assert!(rig.bus(alt[0].bus.as_deref().unwrap()).is_some());
}

const SIM: &str = "dbc: x.dbc\nvoltage_message: CellSim_SetCell\nindex_signal: CellIndex\n\
                   voltage_signal: Voltage\naccuracy: 1 mV\nupdate_period: 100 ms\n\
                   current:\n  request: CellSim_GetCurrent\n  reply: CellSim_Current\n\
                   \x20 index_signal: CellIndex\n  value_signal: Current\n  accuracy: 2 mA\n";

/// The current read-back asks for one cell and takes the reply for that cell only; without
/// a reply it says so after its timeout; a mapping that does not fit the DBC is refused.
#[tokio::test(start_paused = true)]
async fn a_current_read_back_asks_for_one_cell_and_waits_for_its_reply() {
    let dbc = dbc("sim-bms.dbc");
    let bus = VirtualBus::create("cellsim-current");
    let mut sim = CanCellSim::new("cells", Box::new(bus.clone()), &dbc, &mapping(SIM)).unwrap();
    assert_eq!(sim.current_accuracy(), 0.002);
    let mut rx = bus.subscribe();
    let responder = {
        let bus = bus.clone();
        let dbc = dbc.clone();
        tokio::spawn(async move {
            let f = next(&mut rx).await;
            let cell = value(&dbc, &f, "CellIndex").unwrap();
            let reply = dbc.message("CellSim_Current").unwrap();
            // First another cell's reply, then the asked one's.
            for (idx, amps) in [(cell + 1.0, 5.0), (cell, 0.1)] {
                let data = reply
                    .encode(&[("CellIndex", idx), ("Current", amps)])
                    .unwrap();
                bus.send(Frame::new(reply.id, false, &data).unwrap())
                    .await
                    .unwrap();
            }
        })
    };
    let amps = sim.measure_cell_current(3).await.unwrap();
    assert!((amps - 0.1).abs() < 1e-9, "{amps}");
    responder.await.unwrap();
    let e = sim.measure_cell_current(4).await.unwrap_err().to_string();
    assert!(
        e.contains("cell 4") && e.contains("no `CellSim_Current` reply within 200 ms"),
        "{e}"
    );

    let wrong = SIM.replace("value_signal: Current", "value_signal: Amps");
    let e = CanCellSim::new("cells", Box::new(bus.clone()), &dbc, &mapping(&wrong))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("`CellSim_Current` has no signal `Amps`"), "{e}");
    // A mapping without `current:` cannot read back.
    let plain = SIM.split("current:").next().unwrap().to_string();
    let mut sim = CanCellSim::new("cells", Box::new(bus), &dbc, &mapping(&plain)).unwrap();
    let e = sim.measure_cell_current(1).await.unwrap_err().to_string();
    assert!(e.contains("no `current:` read-back"), "{e}");
}
