//! Host for the reference BMS firmware: samples the plant like an AFE, runs the protection
//! core, drives the FETs, talks CAN through the project DBC, and records the ground truth.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::firmware::FirmwareImage;
use super::plant::Plant;
use crate::can::{Bus, Frame, VirtualBus};
use crate::dbc::Dbc;

/// Something that really happened inside the simulated BMS.
#[derive(Debug, Clone, Serialize)]
pub struct TruthEvent {
    /// When it happened.
    #[serde(skip)]
    pub at: Instant,
    /// Seconds since the clock origin given when exporting.
    pub t: f64,
    /// What happened: `condition_start`, `condition_end`, `fault_set`, `fault_clear`,
    /// `chg_fet_open`, `chg_fet_close`, `dsg_fet_open`, `dsg_fet_close`.
    pub kind: String,
    /// Which protection (for condition and fault events).
    pub protection: Option<String>,
}

/// The ground truth recorded by the simulated BMS.
#[derive(Debug, Clone, Default)]
pub struct Truth {
    events: Arc<Mutex<Vec<TruthEvent>>>,
}

impl Truth {
    fn push(&self, at: Instant, kind: &str, protection: Option<&str>) {
        let mut ev = self.events.lock().unwrap_or_else(|e| e.into_inner());
        ev.push(TruthEvent {
            at,
            t: 0.0,
            kind: kind.to_string(),
            protection: protection.map(str::to_string),
        });
    }

    /// All events so far, with `t` relative to `origin`.
    pub fn events(&self, origin: Instant) -> Vec<TruthEvent> {
        let ev = self.events.lock().unwrap_or_else(|e| e.into_inner());
        ev.iter()
            .map(|e| TruthEvent {
                t: signed_secs(e.at, origin),
                ..e.clone()
            })
            .collect()
    }
}

fn signed_secs(at: Instant, origin: Instant) -> f64 {
    if at >= origin {
        (at - origin).as_secs_f64()
    } else {
        -(origin - at).as_secs_f64()
    }
}

const FAULT_NAMES: [&str; 7] = ["ov", "uv", "otc", "otd", "utc", "occ", "ocd"];

#[derive(Default)]
struct Requests {
    run: bool,
    standby: bool,
}

/// Start the BMS host task on a bus; it runs until the bus port is dropped or the task aborted.
pub fn spawn(
    image: &FirmwareImage,
    plant: Plant,
    bus: VirtualBus,
    dbc: Arc<Dbc>,
    truth: Truth,
) -> JoinHandle<()> {
    let cfg = image.config;
    let hash = image.hash_prefix();
    let requests = Arc::new(Mutex::new(Requests::default()));

    // Receiver: state requests from the host.
    let mut rx = bus.subscribe();
    let req = requests.clone();
    let dbc_rx = dbc.clone();
    let receiver = tokio::spawn(async move {
        let Some(msg) = dbc_rx.message("Host_StateRequest") else {
            return;
        };
        loop {
            match rx.recv().await {
                Ok(r) if r.frame.id == msg.id && r.frame.extended == msg.extended => {
                    let Ok(values) = msg.decode(&r.frame.data) else {
                        continue;
                    };
                    if let Some(v) = values.iter().find(|d| d.name == "Request") {
                        let mut q = req.lock().unwrap_or_else(|e| e.into_inner());
                        if v.physical == 1.0 {
                            q.run = true;
                        } else {
                            q.standby = true;
                        }
                    }
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            }
        }
    });

    tokio::spawn(async move {
        let _receiver = AbortOnDrop(receiver);
        let mut bms = sim_bms::Bms::new(cfg);
        let start = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(cfg.afe_period_ms as u64));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last_status: Option<u32> = None;
        let mut last_slow: Option<u32> = None;
        let mut prev: Option<sim_bms::Outputs> = None;
        let mut counter: u8 = 0;
        loop {
            let now = tick.tick().await;
            let now_ms = (now - start).as_millis() as u32;
            let snap = plant.snapshot();
            let cell_mv: Vec<u16> = snap
                .cells
                .iter()
                .map(|v| (v * 1000.0).round().clamp(0.0, 65535.0) as u16)
                .collect();
            let temp_dc: Vec<i16> = snap
                .temps
                .iter()
                .map(|t| (t * 10.0).round().clamp(-32768.0, 32767.0) as i16)
                .collect();
            let current_ma = (snap.pack_current() * 1000.0).round() as i32;
            let (run_request, standby_request) = {
                let mut q = requests.lock().unwrap_or_else(|e| e.into_inner());
                let r = (q.run, q.standby);
                *q = Requests::default();
                r
            };
            let out = bms.tick(
                now_ms,
                &sim_bms::Sample {
                    cell_mv: &cell_mv,
                    temp_dc: &temp_dc,
                    current_ma,
                    run_request,
                    standby_request,
                },
            );
            {
                let mut p = plant.lock();
                p.chg_fet = out.chg_fet;
                p.dsg_fet = out.dsg_fet;
            }
            record_truth(&truth, now, prev.as_ref(), &out);
            prev = Some(out);

            if last_status.is_none_or(|t| now_ms.wrapping_sub(t) >= cfg.can_cycle_ms) {
                last_status = Some(now_ms);
                counter = (counter + 1) & 0x0F;
                let snap = plant.snapshot();
                let mut frames = Vec::new();
                frames.push(encode(
                    &dbc,
                    "BMS_Status",
                    &[
                        ("State", out.state as u8 as f64),
                        ("ChgFet", out.chg_fet as u8 as f64),
                        ("DsgFet", out.dsg_fet as u8 as f64),
                        ("Warning", out.warning as u8 as f64),
                        ("FaultOV", bit(out.faults, 0)),
                        ("FaultUV", bit(out.faults, 1)),
                        ("FaultOTC", bit(out.faults, 2)),
                        ("FaultOTD", bit(out.faults, 3)),
                        ("FaultUTC", bit(out.faults, 4)),
                        ("FaultOCC", bit(out.faults, 5)),
                        ("FaultOCD", bit(out.faults, 6)),
                        ("FaultCell", out.fault_cell as f64),
                        ("Counter", counter as f64),
                    ],
                ));
                let vmax = cell_mv.iter().copied().max().unwrap_or(0) as f64 / 1000.0;
                let vmin = cell_mv.iter().copied().min().unwrap_or(0) as f64 / 1000.0;
                frames.push(encode(
                    &dbc,
                    "BMS_Pack",
                    &[
                        ("PackVoltage", (snap.pack_voltage() * 100.0).round() / 100.0),
                        ("PackCurrent", (snap.pack_current() * 10.0).round() / 10.0),
                        ("MaxCellVoltage", vmax),
                        ("MinCellVoltage", vmin),
                    ],
                ));
                for block in 0..cell_mv.len().div_ceil(4).min(4) {
                    let names: Vec<String> = (1..=4)
                        .map(|k| format!("Cell{:02}", block * 4 + k))
                        .collect();
                    let mut values: Vec<(&str, f64)> = vec![("CellBlock", block as f64)];
                    for (k, name) in names.iter().enumerate() {
                        if let Some(mv) = cell_mv.get(block * 4 + k) {
                            values.push((name.as_str(), (*mv).min(16383) as f64 / 1000.0));
                        }
                    }
                    frames.push(encode(&dbc, "BMS_CellVoltages", &values));
                }
                if last_slow.is_none_or(|t| now_ms.wrapping_sub(t) >= 1000) {
                    last_slow = Some(now_ms);
                    let t = |i: usize| {
                        snap.temps
                            .get(i)
                            .copied()
                            .unwrap_or(25.0)
                            .round()
                            .clamp(-128.0, 127.0)
                    };
                    frames.push(encode(
                        &dbc,
                        "BMS_Temps",
                        &[
                            ("Temp1", t(0)),
                            ("Temp2", t(1)),
                            ("Temp3", t(2)),
                            ("Temp4", t(3)),
                        ],
                    ));
                    let (maj, min, pat) = cfg.version;
                    frames.push(encode(
                        &dbc,
                        "BMS_Version",
                        &[
                            ("FwMajor", maj as f64),
                            ("FwMinor", min as f64),
                            ("FwPatch", pat as f64),
                            ("ImageHash", hash as f64),
                        ],
                    ));
                }
                for f in frames.into_iter().flatten() {
                    if bus.send(f).await.is_err() {
                        return;
                    }
                }
            }
        }
    })
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn bit(mask: u8, i: u8) -> f64 {
    ((mask >> i) & 1) as f64
}

fn encode(dbc: &Dbc, message: &str, values: &[(&str, f64)]) -> Option<Frame> {
    let m = dbc.message(message)?;
    match m.encode(values) {
        Ok(data) => Frame::new(m.id, m.extended, &data).ok(),
        Err(e) => {
            tracing::error!("simulated BMS cannot encode {message}: {e}");
            None
        }
    }
}

fn record_truth(
    truth: &Truth,
    now: Instant,
    prev: Option<&sim_bms::Outputs>,
    out: &sim_bms::Outputs,
) {
    let (pc, pf, pchg, pdsg) = prev
        .map(|p| (p.conditions, p.faults, p.chg_fet, p.dsg_fet))
        .unwrap_or((0, 0, false, false));
    for (i, name) in FAULT_NAMES.iter().enumerate() {
        let b = 1u8 << i;
        if out.conditions & b != 0 && pc & b == 0 {
            truth.push(now, "condition_start", Some(name));
        }
        if out.conditions & b == 0 && pc & b != 0 {
            truth.push(now, "condition_end", Some(name));
        }
        if out.faults & b != 0 && pf & b == 0 {
            truth.push(now, "fault_set", Some(name));
        }
        if out.faults & b == 0 && pf & b != 0 {
            truth.push(now, "fault_clear", Some(name));
        }
    }
    if pchg != out.chg_fet {
        truth.push(
            now,
            if out.chg_fet {
                "chg_fet_close"
            } else {
                "chg_fet_open"
            },
            None,
        );
    }
    if pdsg != out.dsg_fet {
        truth.push(
            now,
            if out.dsg_fet {
                "dsg_fet_close"
            } else {
                "dsg_fet_open"
            },
            None,
        );
    }
}

/// Start the cell-simulator task: applies `CellSim_SetCell` / `CellSim_SetTemp` frames to the plant.
pub fn spawn_cell_simulator(plant: Plant, bus: &VirtualBus, dbc: Arc<Dbc>) -> JoinHandle<()> {
    let mut rx = bus.subscribe();
    tokio::spawn(async move {
        let (Some(set_v), Some(set_t)) = (
            dbc.message("CellSim_SetCell").cloned(),
            dbc.message("CellSim_SetTemp").cloned(),
        ) else {
            tracing::error!(
                "simulated cell simulator: the DBC lacks CellSim_SetCell/CellSim_SetTemp"
            );
            return;
        };
        loop {
            let r = match rx.recv().await {
                Ok(r) => r,
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return,
            };
            let (msg, index_sig, value_sig, is_voltage) = if r.frame.id == set_v.id {
                (&set_v, "CellIndex", "Voltage", true)
            } else if r.frame.id == set_t.id {
                (&set_t, "SensorIndex", "Temperature", false)
            } else {
                continue;
            };
            let Ok(values) = msg.decode(&r.frame.data) else {
                continue;
            };
            let get = |n: &str| values.iter().find(|d| d.name == n).map(|d| d.physical);
            let (Some(idx), Some(value)) = (get(index_sig), get(value_sig)) else {
                continue;
            };
            let Some(i) = (idx as usize).checked_sub(1) else {
                continue;
            };
            let mut p = plant.lock();
            let slot = if is_voltage {
                p.cells.get_mut(i)
            } else {
                p.temps.get_mut(i)
            };
            if let Some(s) = slot {
                *s = value;
            }
        }
    })
}
