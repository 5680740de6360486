//! The simulated BMS as an inverter sees it: the image's `inverter:` section, and the task
//! that announces the firmware's limits over Pylontech low-voltage CAN and takes the
//! inverter's keep-alive (0x305).
//!
//! The reference firmware's own logic (derating, trip reaction, keep-alive loss) is in
//! `sim_bms::pylon`; this module only carries its announcement onto the bus, encoded with
//! the shipped `fixtures/dbc/pylon-lv-can.dbc`, every `period`. The latest announcement is
//! also kept for the simulated Modbus register map.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::can::{Bus, Frame, VirtualBus};
use crate::dbc::Dbc;
use crate::units::{Amps, Seconds, Volts};

/// The Pylontech low-voltage CAN DBC shipped in `fixtures/dbc/`.
pub const PYLON_LV_DBC: &str = include_str!("../../fixtures/dbc/pylon-lv-can.dbc");

/// Manufacturer name in 0x35E.
pub const MANUFACTURER: &[u8; 8] = b"PYLON   ";

/// The `inverter:` section of a simulated firmware image.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageInverter {
    /// Announcement period.
    pub period: Seconds,
    /// Charge voltage limit announced.
    pub cvl: Volts,
    /// Discharge voltage limit announced.
    pub dvl: Volts,
    /// Charge current limit when nothing derates.
    pub ccl: Amps,
    /// Discharge current limit when nothing derates.
    pub dcl: Amps,
    /// Orion-style derating.
    pub derate: ImageDerate,
    /// Without a keep-alive this long, the inverter counts as lost (absent: not watched).
    #[serde(default)]
    pub keepalive_timeout: Option<Seconds>,
    /// Seeded defects of the inverter side.
    #[serde(default)]
    pub defects: ImageInverterDefects,
}

/// Derating settings of an image.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageDerate {
    /// The highest cell above this derates the CCL.
    pub charge_above: Volts,
    /// The lowest cell below this derates the DCL.
    pub discharge_below: Volts,
    /// Step, percent of the maximum.
    pub step_percent: u8,
    /// Interval between steps.
    pub interval: Seconds,
    /// Lowest percentage derating reaches.
    pub floor_percent: u8,
}

/// Seeded inverter-side defects of an image.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageInverterDefects {
    /// No derating before the trip.
    #[serde(default)]
    pub no_derating: bool,
    /// Limits and enable flags stay as before a trip.
    #[serde(default)]
    pub stale_after_trip: bool,
    /// Announced current sign inverted.
    #[serde(default)]
    pub current_sign_inverted: bool,
    /// Keep-alive loss ignored.
    #[serde(default)]
    pub ignore_keepalive_loss: bool,
}

fn ms(s: Seconds) -> u32 {
    (s.0 * 1000.0).round().clamp(0.0, u32::MAX as f64) as u32
}

fn tenths(x: f64) -> f64 {
    (x * 10.0).round()
}

impl ImageInverter {
    /// The firmware configuration this section describes, or what is wrong with it.
    pub fn config(&self) -> Result<sim_bms::pylon::InverterConfig, String> {
        let d = &self.derate;
        if d.step_percent > 100 || d.floor_percent > 100 {
            return Err("inverter.derate: percentages must be 0..100".into());
        }
        if self.period.0 <= 0.0 {
            return Err("inverter.period must be above 0 s".into());
        }
        Ok(sim_bms::pylon::InverterConfig {
            period_ms: ms(self.period).max(1),
            cvl_dv: tenths(self.cvl.0).clamp(0.0, u16::MAX as f64) as u16,
            dvl_dv: tenths(self.dvl.0).clamp(0.0, u16::MAX as f64) as u16,
            ccl_da: tenths(self.ccl.0).clamp(0.0, i16::MAX as f64) as i16,
            dcl_da: tenths(self.dcl.0).clamp(0.0, i16::MAX as f64) as i16,
            derate_ov_mv: (d.charge_above.0 * 1000.0).round() as i32,
            derate_uv_mv: (d.discharge_below.0 * 1000.0).round() as i32,
            derate_step_pct: d.step_percent,
            derate_interval_ms: ms(d.interval).max(1),
            derate_floor_pct: d.floor_percent,
            keepalive_timeout_ms: self.keepalive_timeout.map_or(0, ms),
            defects: sim_bms::pylon::InverterDefects {
                no_derating: self.defects.no_derating,
                stale_after_trip: self.defects.stale_after_trip,
                current_sign_inverted: self.defects.current_sign_inverted,
                ignore_keepalive_loss: self.defects.ignore_keepalive_loss,
            },
        })
    }
}

/// The firmware's latest announcement and state of charge (%), shared with the simulated
/// Modbus server; it outlives a firmware restart (the bench holds it).
#[derive(Debug, Clone, Default)]
pub struct Board(Arc<Mutex<Option<(sim_bms::pylon::Announcement, u16)>>>);

impl Board {
    /// The latest announcement and state of charge (%), once the firmware has run.
    pub fn latest(&self) -> Option<(sim_bms::pylon::Announcement, u16)> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publish an announcement.
    pub fn publish(&self, a: sim_bms::pylon::Announcement, soc: u16) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((a, soc));
    }
}

/// The firmware's inverter side while it runs: the announcer and its latest announcement.
pub struct InverterSide {
    announcer: Mutex<sim_bms::pylon::Announcer>,
    latest: Board,
    start: Instant,
}

impl InverterSide {
    /// A fresh inverter side (keep-alive counted from now).
    pub fn new(cfg: sim_bms::pylon::InverterConfig, board: Board) -> Arc<Self> {
        Arc::new(Self {
            announcer: Mutex::new(sim_bms::pylon::Announcer::new(cfg)),
            latest: board,
            start: Instant::now(),
        })
    }

    fn now_ms(&self) -> u32 {
        self.start.elapsed().as_millis() as u32
    }

    /// Run the announcer after a protection-core tick (`soc_pct`: the firmware's own estimate
    /// of the state of charge, %, from `sim_bms::soc`; never the plant's true one).
    pub fn tick(&self, s: &sim_bms::Sample<'_>, out: &sim_bms::Outputs, soc_pct: u16) {
        let now = self.now_ms();
        let a = self
            .announcer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .tick(now, s, out);
        self.latest.publish(a, soc_pct);
    }

    /// The inverter's keep-alive arrived.
    pub fn keepalive(&self) {
        let now = self.now_ms();
        self.announcer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keepalive(now);
    }

    /// The latest announcement and state of charge (%), once the core has run.
    pub fn latest(&self) -> Option<(sim_bms::pylon::Announcement, u16)> {
        self.latest.latest()
    }

    fn period(&self) -> Duration {
        let ms = self
            .announcer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .config()
            .period_ms;
        Duration::from_millis(ms as u64)
    }
}

/// The Pylontech LV frames of one announcement.
pub fn pylon_frames(dbc: &Dbc, a: &sim_bms::pylon::Announcement, soc: u16) -> Vec<Frame> {
    let bit = |w: u16, i: u8| ((w >> i) & 1) as f64;
    let alarms: Vec<(&str, f64)> = vec![
        ("ProtCellOverVoltage", bit(a.protection, 1)),
        ("ProtCellUnderVoltage", bit(a.protection, 2)),
        ("ProtOverTemperature", bit(a.protection, 3)),
        ("ProtUnderTemperature", bit(a.protection, 4)),
        ("ProtDischargeOverCurrent", bit(a.protection, 7)),
        ("ProtChargeOverCurrent", bit(a.protection, 8)),
        ("ProtInternalFault", bit(a.protection, 11)),
        ("WarnCellOverVoltage", bit(a.warning, 1)),
        ("WarnCellUnderVoltage", bit(a.warning, 2)),
        ("WarnOverTemperature", bit(a.warning, 3)),
        ("WarnUnderTemperature", bit(a.warning, 4)),
        ("WarnDischargeOverCurrent", bit(a.warning, 7)),
        ("WarnChargeOverCurrent", bit(a.warning, 8)),
        ("WarnInternalFault", bit(a.warning, 11)),
        ("ModuleCount", 1.0),
        ("IdentP", b'P' as f64),
        ("IdentN", b'N' as f64),
    ];
    let name = |r: std::ops::Range<usize>| {
        let mut b = [0u8; 4];
        b.copy_from_slice(&MANUFACTURER[r]);
        u32::from_le_bytes(b) as f64
    };
    let messages: Vec<(&str, Vec<(&str, f64)>)> = vec![
        (
            "Pylon_Limits",
            vec![
                ("ChargeVoltageLimit", a.cvl_dv as f64 / 10.0),
                ("ChargeCurrentLimit", a.ccl_da as f64 / 10.0),
                ("DischargeCurrentLimit", a.dcl_da as f64 / 10.0),
                ("DischargeVoltageLimit", a.dvl_dv as f64 / 10.0),
            ],
        ),
        (
            "Pylon_SocSoh",
            vec![
                ("StateOfCharge", soc as f64),
                ("StateOfHealth", 100.0),
                ("StateOfChargeHiRes", soc as f64),
            ],
        ),
        (
            "Pylon_Measurements",
            vec![
                ("PackVoltage", a.pack_cv as f64 / 100.0),
                ("PackCurrent", a.current_da as f64 / 10.0),
                ("Temperature", a.temp_dc as f64 / 10.0),
            ],
        ),
        ("Pylon_Alarms", alarms),
        (
            "Pylon_Flags",
            vec![
                ("ChargeEnable", a.charge_enable as u8 as f64),
                ("DischargeEnable", a.discharge_enable as u8 as f64),
            ],
        ),
        (
            "Pylon_Name",
            vec![("NameHead", name(0..4)), ("NameTail", name(4..8))],
        ),
    ];
    messages
        .into_iter()
        .filter_map(|(m, values)| {
            let msg = dbc.message(m)?;
            match msg.encode(&values) {
                Ok(data) => Frame::new(msg.id, msg.extended, &data).ok(),
                Err(e) => {
                    tracing::error!("simulated BMS cannot encode {m}: {e}");
                    None
                }
            }
        })
        .collect()
}

/// Start the inverter-facing task: send the announcement every period and take keep-alives.
pub fn spawn(side: Arc<InverterSide>, bus: VirtualBus) -> JoinHandle<()> {
    tokio::spawn(async move {
        let dbc = match Dbc::parse(PYLON_LV_DBC, "pylon-lv-can.dbc") {
            Ok(d) => d,
            Err(e) => {
                tracing::error!("the shipped Pylontech DBC does not load: {e}");
                return;
            }
        };
        let keepalive = dbc
            .message("Inverter_KeepAlive")
            .map(|m| (m.id, m.extended));
        let mut rx = bus.subscribe();
        let mut tick = tokio::time::interval(side.period());
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                r = rx.recv() => match r {
                    Ok(r) => {
                        if keepalive.is_some_and(|(id, ext)| r.frame.is_data(id, ext)) {
                            side.keepalive();
                        }
                    }
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return,
                },
                _ = tick.tick() => {
                    let Some((a, soc)) = side.latest() else { continue };
                    for f in pylon_frames(&dbc, &a, soc) {
                        if bus.send(f).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn dbc() -> Dbc {
        Dbc::parse(PYLON_LV_DBC, "pylon-lv-can.dbc").unwrap()
    }

    fn decode(id: u32, data: &[u8]) -> Vec<(String, f64)> {
        let d = dbc();
        let m = d.message_by_id(id, false).unwrap();
        m.decode(data)
            .unwrap()
            .into_iter()
            .map(|v| (v.name, v.physical))
            .collect()
    }

    /// Frames written byte by byte from the public Pylontech LV layout.
    #[rstest]
    #[case::limits(0x351, &[0x38, 0x02, 0xB4, 0x00, 0x2C, 0x01, 0xE0, 0x01],
        &[("ChargeVoltageLimit", 56.8), ("ChargeCurrentLimit", 18.0), ("DischargeCurrentLimit", 30.0), ("DischargeVoltageLimit", 48.0)])]
    #[case::negative_limit(0x351, &[0x38, 0x02, 0xF6, 0xFF, 0x00, 0x00, 0xE0, 0x01],
        &[("ChargeCurrentLimit", -1.0), ("DischargeCurrentLimit", 0.0)])]
    #[case::soc_soh(0x355, &[0x4B, 0x00, 0x64, 0x00, 0x4C, 0x1D],
        &[("StateOfCharge", 75.0), ("StateOfHealth", 100.0), ("StateOfChargeHiRes", 75.0)])]
    #[case::measurements(0x356, &[0xA0, 0x14, 0xCE, 0xFF, 0xFA, 0x00],
        &[("PackVoltage", 52.8), ("PackCurrent", -5.0), ("Temperature", 25.0)])]
    #[case::alarms(0x359, &[0x02, 0x01, 0x04, 0x00, 0x01, b'P', b'N'],
        &[("ProtCellOverVoltage", 1.0), ("ProtCellUnderVoltage", 0.0), ("ProtChargeOverCurrent", 1.0),
          ("WarnCellUnderVoltage", 1.0), ("WarnCellOverVoltage", 0.0), ("ModuleCount", 1.0),
          ("IdentP", 80.0), ("IdentN", 78.0)])]
    #[case::alarms_discharge_oc(0x359, &[0x80, 0x00, 0x00, 0x00, 0x01, b'P', b'N'],
        &[("ProtDischargeOverCurrent", 1.0), ("ProtCellOverVoltage", 0.0)])]
    #[case::flags_both(0x35C, &[0xC0, 0x00], &[("ChargeEnable", 1.0), ("DischargeEnable", 1.0), ("ForceChargeRequest1", 0.0)])]
    #[case::flags_charge_only(0x35C, &[0x80, 0x00], &[("ChargeEnable", 1.0), ("DischargeEnable", 0.0)])]
    #[case::force_charge(0x35C, &[0x20, 0x00], &[("ChargeEnable", 0.0), ("ForceChargeRequest1", 1.0)])]
    fn the_shipped_dbc_decodes_frames_built_from_the_public_layout(
        #[case] id: u32,
        #[case] data: &[u8],
        #[case] want: &[(&str, f64)],
    ) {
        let got = decode(id, data);
        for (name, value) in want {
            let v = got
                .iter()
                .find(|(n, _)| n == name)
                .unwrap_or_else(|| panic!("{name} not decoded"))
                .1;
            assert!((v - value).abs() < 1e-9, "{name}: {v} != {value}");
        }
    }

    #[test]
    fn the_firmware_announcement_encodes_to_the_public_layout() {
        let a = sim_bms::pylon::Announcement {
            cvl_dv: 568,
            ccl_da: 180,
            dcl_da: 300,
            dvl_dv: 480,
            charge_enable: true,
            discharge_enable: false,
            pack_cv: 5280,
            current_da: -50,
            temp_dc: 250,
            protection: 1 << 1,
            warning: 1 << 2,
            keepalive_lost: false,
        };
        let frames = pylon_frames(&dbc(), &a, 75);
        let data = |id: u32| {
            frames
                .iter()
                .find(|f| f.id == id)
                .map(|f| f.data.to_vec())
                .unwrap()
        };
        assert_eq!(
            data(0x351),
            [0x38, 0x02, 0xB4, 0x00, 0x2C, 0x01, 0xE0, 0x01]
        );
        assert_eq!(data(0x355), [0x4B, 0x00, 0x64, 0x00, 0x4C, 0x1D]);
        assert_eq!(data(0x356), [0xA0, 0x14, 0xCE, 0xFF, 0xFA, 0x00]);
        assert_eq!(data(0x359), [0x02, 0x00, 0x04, 0x00, 0x01, b'P', b'N']);
        assert_eq!(data(0x35C), [0x80, 0x00]);
        assert_eq!(data(0x35E), b"PYLON   ");
    }
}
