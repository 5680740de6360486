//! Host for the reference BMS firmware: samples the plant like an AFE, runs the protection
//! core, drives the FETs, talks CAN through the project DBC, and records the ground truth.
//!
//! The host runs two timers, as BMS firmware usually does: the AFE sampling period (sample,
//! run the protection core, drive the FETs) and the CAN cycle (send the latest status).
//! When both fall due at the same instant the sample is taken first.
//!
//! Ground truth ([`Truth`]), per protection, on the run's clock:
//! - `plant_crossed` / `plant_returned`: the physical value went beyond / came back within
//!   the firmware's own trip level (with the AFE's resolution: 1 mV, 0.1 °C, 1 mA), at the
//!   moment the plant changed, whether or not the AFE has sampled it yet;
//! - `condition_start` / `condition_end`: the first AFE sample beyond / back within it
//!   (with the sampled value and the cell or sensor index);
//! - `fault_set` / `fault_clear`: the debounced fault;
//! - `chg_fet_open` / `dsg_fet_open` (and `_close`): the FET really switched, with the
//!   protection that caused an opening (or `cause: standby` when the BMS left run mode).
//! - `balance_start` / `balance_stop` (protection `balancing`): the balancing switch of cell
//!   `index` was driven / released, with the cell's sampled voltage; the plant bleeds that
//!   cell's declared current while it is driven ([`super::plant::PlantState::set_balancing`]).
//!
//! - `soc`: the plant's true state of charge in percent (`value`, the mean over the modelled
//!   cells), at the first AFE sample and then every 10 s while it changes; between two
//!   entries it changed linearly unless the current changed.
//!
//! The front end's hardware short-circuit trip (protection `scd`) is recorded by
//! [`super::afe`] at its exact instant: `plant_crossed`, then `fault_set`, `chg_fet_open`
//! and `dsg_fet_open`. [`Truth::events`] returns every event in time order.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::firmware::FirmwareImage;
use super::plant::{Plant, PlantState};
use crate::can::{Bus, Frame, VirtualBus};
use crate::dbc::Dbc;

/// Something that really happened inside the simulated BMS or its plant.
#[derive(Debug, Clone, Serialize)]
pub struct TruthEvent {
    /// When it happened.
    #[serde(skip)]
    pub at: Instant,
    /// Seconds since the clock origin given when exporting.
    pub t: f64,
    /// What happened: `plant_crossed`, `plant_returned`, `condition_start`,
    /// `condition_end`, `fault_set`, `fault_clear`, `chg_fet_open`, `chg_fet_close`,
    /// `dsg_fet_open`, `dsg_fet_close`, `balance_start`, `balance_stop`, `soc` (the plant's
    /// true state of charge).
    pub kind: String,
    /// Which protection (for crossing, condition and fault events, and FET openings a
    /// fault caused).
    pub protection: Option<String>,
    /// The value beyond (or back within) the level, in `unit`, where there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Unit of `value` (`V`, `°C`, `A`, `%`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// 1-based index of the cell or NTC concerned, for voltage and temperature events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    /// Why a FET switched when no protection did it (`standby`, `run`, `fault_cleared`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

impl TruthEvent {
    pub(super) fn new(at: Instant, kind: &str, protection: Option<&str>) -> Self {
        Self {
            at,
            t: 0.0,
            kind: kind.to_string(),
            protection: protection.map(str::to_string),
            value: None,
            unit: None,
            index: None,
            cause: None,
        }
    }

    fn reading(mut self, r: Option<Reading>) -> Self {
        if let Some(r) = r {
            self.value = Some(r.value);
            self.unit = Some(r.unit.to_string());
            self.index = r.index;
        }
        self
    }
}

/// The ground truth recorded by the simulated bench.
#[derive(Debug, Clone, Default)]
pub struct Truth {
    events: Arc<Mutex<Vec<TruthEvent>>>,
}

impl Truth {
    pub(super) fn push(&self, ev: TruthEvent) {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(ev);
    }

    /// All events so far, with `t` relative to `origin`.
    pub fn events(&self, origin: Instant) -> Vec<TruthEvent> {
        let ev = self.events.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<TruthEvent> = ev
            .iter()
            .map(|e| TruthEvent {
                t: signed_secs(e.at, origin),
                ..e.clone()
            })
            .collect();
        // The front end records a trip's crossing when it trips, after later events.
        out.sort_by_key(|e| e.at);
        out
    }

    /// The first event of `kind` (for `protection`, when given) at or after `after`.
    pub fn first(
        &self,
        kind: &str,
        protection: Option<&str>,
        after: Instant,
    ) -> Option<TruthEvent> {
        let ev = self.events.lock().unwrap_or_else(|e| e.into_inner());
        ev.iter()
            .find(|e| {
                e.at >= after
                    && e.kind == kind
                    && protection.is_none_or(|p| e.protection.as_deref() == Some(p))
            })
            .cloned()
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

/// A cell voltage as the AFE digitises it (1 mV).
pub fn afe_mv(volts: f64) -> u16 {
    (volts * 1000.0).round().clamp(0.0, 65535.0) as u16
}

/// A temperature as the AFE digitises it (0.1 °C).
pub fn afe_dc(celsius: f64) -> i16 {
    if celsius.is_nan() {
        return 250;
    }
    (celsius * 10.0).round().clamp(-32768.0, 32767.0) as i16
}

/// A current as the AFE digitises it (1 mA, positive charging).
pub fn afe_ma(amps: f64) -> i32 {
    (amps * 1000.0)
        .round()
        .clamp(i32::MIN as f64, i32::MAX as f64) as i32
}

/// A digitised sample of the plant.
struct Digitised {
    cell_mv: Vec<u16>,
    temp_dc: Vec<i16>,
    current_ma: i32,
    /// The front end's short-circuit status (its comparator's latch; the AFE sample reads
    /// the status bit instead, [`super::afe::AfeState::read_status`]).
    afe_short_circuit: bool,
}

impl Digitised {
    fn of(s: &PlantState, cells: usize) -> Self {
        Self {
            cell_mv: s.cells.iter().take(cells).map(|v| afe_mv(*v)).collect(),
            temp_dc: s.temps.iter().map(|t| afe_dc(*t)).collect(),
            current_ma: afe_ma(s.pack_current()),
            afe_short_circuit: s.afe.latched(),
        }
    }

    /// The value a protection compares, with its cell or sensor index.
    fn reading(&self, fault: usize) -> Option<Reading> {
        let max = |v: &[i64]| v.iter().copied().enumerate().max_by_key(|(_, x)| *x);
        let min = |v: &[i64]| v.iter().copied().enumerate().min_by_key(|(_, x)| *x);
        let cells: Vec<i64> = self.cell_mv.iter().map(|v| *v as i64).collect();
        let temps: Vec<i64> = self.temp_dc.iter().map(|v| *v as i64).collect();
        let (pick, scale, unit, indexed) = match fault {
            0 => (max(&cells), 1e-3, "V", true),
            1 => (min(&cells), 1e-3, "V", true),
            2 | 3 => (max(&temps), 0.1, "°C", true),
            4 => (min(&temps), 0.1, "°C", true),
            5 => (Some((0, self.current_ma as i64)), 1e-3, "A", false),
            6 => (Some((0, -(self.current_ma as i64))), 1e-3, "A", false),
            _ => (None, 1.0, "", false),
        };
        pick.map(|(i, raw)| Reading {
            value: raw as f64 * scale,
            unit,
            index: indexed.then_some(i as u32 + 1),
            raw,
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct Reading {
    value: f64,
    unit: &'static str,
    index: Option<u32>,
    raw: i64,
}

/// Whether the value a protection compares is beyond its trip level (the physical side of
/// the firmware's comparison, without debounce or seeded defects).
fn beyond(fault: usize, raw: i64, p: &sim_bms::Protection) -> bool {
    match fault {
        1 | 4 => raw < p.trip as i64,
        _ => raw > p.trip as i64,
    }
}

fn protection(cfg: &sim_bms::Config, fault: usize) -> sim_bms::Protection {
    match fault {
        0 => cfg.ov,
        1 => cfg.uv,
        2 => cfg.otc,
        3 => cfg.otd,
        4 => cfg.utc,
        5 => cfg.occ,
        _ => cfg.ocd,
    }
}

/// Record in `truth` every moment the plant's physical values cross the firmware's trip
/// levels (`plant_crossed` / `plant_returned`), as the plant changes.
pub fn watch_levels(plant: &Plant, image: &FirmwareImage, truth: Truth) {
    let cfg = image.config;
    let mut was = [false; 7];
    plant.observe(Box::new(move |s, now| {
        let d = Digitised::of(s, cfg.cells as usize);
        for (i, name) in FAULT_NAMES.iter().enumerate() {
            let r = d.reading(i);
            let is = r.is_some_and(|r| beyond(i, r.raw, &protection(&cfg, i)));
            if is != was[i] {
                was[i] = is;
                let kind = if is {
                    "plant_crossed"
                } else {
                    "plant_returned"
                };
                truth.push(TruthEvent::new(now, kind, Some(name)).reading(r));
            }
        }
    }));
}

#[derive(Default)]
struct Requests {
    run: bool,
    standby: bool,
}

/// Start the BMS host task on a bus; it runs until the bus port is dropped or the task aborted.
/// The firmware's inverter announcements (when the image has an `inverter:` section) go on
/// the bus and onto `board`.
pub fn spawn(
    image: &FirmwareImage,
    plant: Plant,
    bus: VirtualBus,
    dbc: Arc<Dbc>,
    truth: Truth,
    board: super::inverter::Board,
) -> JoinHandle<()> {
    let cfg = image.config;
    let soc_cfg = image.soc;
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
                Ok(r) if r.frame.is_data(msg.id, msg.extended) => {
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

    let inverter = image
        .inverter
        .map(|c| super::inverter::InverterSide::new(c, board));
    let inverter_task = inverter
        .clone()
        .map(|side| AbortOnDrop(super::inverter::spawn(side, bus.clone())));
    let afe_task = AbortOnDrop(super::afe::spawn(plant.clone(), image.afe, truth.clone()));
    plant.lock().bleed_current_a = cfg.balance.map_or(0.0, |b| b.bleed_ma as f64 / 1000.0);
    tokio::spawn(async move {
        let _receiver = AbortOnDrop(receiver);
        let _afe_task = afe_task;
        let _inverter_task = inverter_task;
        let mut bms = sim_bms::Bms::new(cfg);
        let mut soc = soc_cfg.map(sim_bms::soc::SocEstimator::new);
        let mut true_soc = TrueSoc::default();
        let start = Instant::now();
        let mut afe = tokio::time::interval(Duration::from_millis(cfg.afe_period_ms as u64));
        afe.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut can = tokio::time::interval(Duration::from_millis(cfg.can_cycle_ms as u64));
        can.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last_slow: Option<Instant> = None;
        let mut prev: Option<sim_bms::Outputs> = None;
        let mut counter: u8 = 0;
        loop {
            tokio::select! {
                biased;
                now = afe.tick() => {
                    let now_ms = (now - start).as_millis() as u32;
                    let (snap, afe_status) = {
                        let mut g = plant.lock();
                        g.refresh();
                        // The front end's status bit, read (and so cleared) with the sample.
                        let status = g.afe.read_status();
                        (g.clone(), status)
                    };
                    let mut d = Digitised::of(&snap, cfg.cells as usize);
                    d.afe_short_circuit = afe_status;
                    let (run_request, standby_request) = {
                        let mut q = requests.lock().unwrap_or_else(|e| e.into_inner());
                        let r = (q.run, q.standby);
                        *q = Requests::default();
                        r
                    };
                    let sample = sim_bms::Sample {
                        cell_mv: &d.cell_mv,
                        temp_dc: &d.temp_dc,
                        current_ma: d.current_ma,
                        run_request,
                        standby_request,
                        afe_short_circuit: d.afe_short_circuit,
                    };
                    let out = bms.tick(now_ms, &sample);
                    if let Some(e) = soc.as_mut() {
                        e.tick(now_ms, &sample);
                    }
                    if let Some(side) = &inverter {
                        // The firmware announces its own estimate (0 % without an estimator).
                        let pct = soc.as_ref().map_or(0, |e| e.percent());
                        side.tick(&sample, &out, pct);
                    }
                    true_soc.record(&truth, now, &snap);
                    {
                        let mut p = plant.lock();
                        p.chg_fet = out.chg_fet;
                        p.dsg_fet = out.dsg_fet;
                        p.set_balancing(out.balancing);
                    }
                    record_truth(&truth, now, prev.as_ref(), &out, &d);
                    prev = Some(out);
                }
                now = can.tick() => {
                    let Some(out) = prev else { continue };
                    counter = (counter + 1) & 0x0F;
                    let slow = last_slow.is_none_or(|t| now - t >= Duration::from_secs(1));
                    if slow {
                        last_slow = Some(now);
                    }
                    let status = Status { out: &out, counter, soc: soc.as_ref().map(|e| e.permille()) };
                    let frames = status_frames(&dbc, &cfg, hash, &status, &plant.snapshot(), slow);
                    for f in frames {
                        if bus.send(f).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    })
}

/// What the firmware reports in one CAN cycle besides the plant's readings.
struct Status<'a> {
    out: &'a sim_bms::Outputs,
    counter: u8,
    /// The estimator's state of charge, 0.1 % (None: the image has no estimator).
    soc: Option<u16>,
}

/// The frames of one CAN cycle; `slow` adds the 1 s messages (temperatures, version, SOC).
fn status_frames(
    dbc: &Dbc,
    cfg: &sim_bms::Config,
    hash: u32,
    status: &Status<'_>,
    snap: &PlantState,
    slow: bool,
) -> Vec<Frame> {
    let (out, counter) = (status.out, status.counter);
    let cell_mv: Vec<u16> = snap
        .cells
        .iter()
        .take(cfg.cells as usize)
        .map(|v| afe_mv(*v))
        .collect();
    let mut frames = Vec::new();
    frames.push(encode(
        dbc,
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
            ("FaultSCD", out.short_circuit as u8 as f64),
            ("FaultCell", out.fault_cell as f64),
            ("Counter", counter as f64),
        ],
    ));
    let mut balancing: Vec<(String, f64)> = (0..cfg.cells.min(16) as usize)
        .map(|k| (format!("BalCell{:02}", k + 1), bit32(out.balancing, k)))
        .collect();
    balancing.push(("BalancingCells".into(), out.balancing.count_ones() as f64));
    let values: Vec<(&str, f64)> = balancing.iter().map(|(n, v)| (n.as_str(), *v)).collect();
    frames.push(encode(dbc, "BMS_Balancing", &values));
    let vmax = cell_mv.iter().copied().max().unwrap_or(0) as f64 / 1000.0;
    let vmin = cell_mv.iter().copied().min().unwrap_or(0) as f64 / 1000.0;
    frames.push(encode(
        dbc,
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
        frames.push(encode(dbc, "BMS_CellVoltages", &values));
    }
    if slow {
        let t = |i: usize| {
            snap.temps
                .get(i)
                .copied()
                .filter(|t| t.is_finite())
                .unwrap_or(25.0)
                .round()
                .clamp(-128.0, 127.0)
        };
        frames.push(encode(
            dbc,
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
            dbc,
            "BMS_Version",
            &[
                ("FwMajor", maj as f64),
                ("FwMinor", min as f64),
                ("FwPatch", pat as f64),
                ("ImageHash", hash as f64),
            ],
        ));
        if let Some(permille) = status.soc {
            frames.push(encode(
                dbc,
                "BMS_Soc",
                &[("StateOfCharge", permille as f64 / 10.0)],
            ));
        }
    }
    frames.into_iter().flatten().collect()
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

fn bit32(mask: u32, i: usize) -> f64 {
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
    sample: &Digitised,
) {
    let (pc, pf, pchg, pdsg, prun) = prev
        .map(|p| {
            (
                p.conditions,
                p.faults,
                p.chg_fet,
                p.dsg_fet,
                p.state != sim_bms::State::Standby,
            )
        })
        .unwrap_or((0, 0, false, false, false));
    for (i, name) in FAULT_NAMES.iter().enumerate() {
        let b = 1u8 << i;
        let ev = |kind: &str| TruthEvent::new(now, kind, Some(name));
        if out.conditions & b != 0 && pc & b == 0 {
            truth.push(ev("condition_start").reading(sample.reading(i)));
        }
        if out.conditions & b == 0 && pc & b != 0 {
            truth.push(ev("condition_end").reading(sample.reading(i)));
        }
        if out.faults & b != 0 && pf & b == 0 {
            truth.push(ev("fault_set").reading(sample.reading(i)));
        }
        if out.faults & b == 0 && pf & b != 0 {
            truth.push(ev("fault_clear").reading(sample.reading(i)));
        }
    }
    let was_bleeding = prev.map_or(0, |p| p.balancing);
    for k in 0..32usize {
        let (was, is) = (was_bleeding & (1 << k) != 0, out.balancing & (1 << k) != 0);
        if was != is {
            let kind = if is { "balance_start" } else { "balance_stop" };
            let mut e = TruthEvent::new(now, kind, Some("balancing"));
            e.index = Some(k as u32 + 1);
            if let Some(mv) = sample.cell_mv.get(k) {
                e.value = Some(*mv as f64 / 1000.0);
                e.unit = Some("V".into());
            }
            truth.push(e);
        }
    }
    let running = out.state != sim_bms::State::Standby;
    for (was, is, charge, name) in [
        (pchg, out.chg_fet, true, "chg"),
        (pdsg, out.dsg_fet, false, "dsg"),
    ] {
        if was == is {
            continue;
        }
        if is {
            let mut e = TruthEvent::new(now, &format!("{name}_fet_close"), None);
            e.cause = Some(if prun { "fault_cleared" } else { "run" }.into());
            truth.push(e);
            continue;
        }
        let kind = format!("{name}_fet_open");
        let causes: Vec<usize> = sim_bms::Fault::ALL
            .iter()
            .filter(|f| f.blocks_charge() == charge && out.faults & f.bit() != 0)
            .map(|f| *f as usize)
            .collect();
        if !running || causes.is_empty() {
            let mut e = TruthEvent::new(now, &kind, None);
            e.cause = Some("standby".into());
            truth.push(e);
        } else {
            for i in causes {
                truth.push(
                    TruthEvent::new(now, &kind, Some(FAULT_NAMES[i])).reading(sample.reading(i)),
                );
            }
        }
    }
}

/// The reply to a `CellSim_GetCurrent` request: the channel's current now (positive when
/// it sources; 0 for a channel that does not drive its cell); None for a cell the pack does
/// not have or a frame that does not decode.
fn current_reply(
    plant: &Plant,
    ask: &crate::dbc::Message,
    answer: &crate::dbc::Message,
    data: &[u8],
) -> Option<Frame> {
    let values = ask.decode(data).ok()?;
    let idx = values.iter().find(|d| d.name == "CellIndex")?.physical;
    let k = (idx as usize).checked_sub(1)?;
    let amps = plant.snapshot().channel_current(k)?;
    let data = answer
        .encode(&[
            ("CellIndex", idx),
            ("Current", (amps * 1000.0).round() / 1000.0),
        ])
        .ok()?;
    Frame::new(answer.id, answer.extended, &data).ok()
}

/// How often the plant's true state of charge is recorded while it changes.
const TRUE_SOC_EVERY: Duration = Duration::from_secs(10);

/// Records the plant's true state of charge (`soc` events, percent, mean over the modelled
/// cells) every [`TRUE_SOC_EVERY`] while it changes, and the first value.
#[derive(Default)]
struct TrueSoc {
    last: Option<(Instant, f64)>,
}

impl TrueSoc {
    fn record(&mut self, truth: &Truth, now: Instant, s: &PlantState) {
        let pct = true_soc_percent(s);
        let due = match self.last {
            None => true,
            Some((at, v)) => now - at >= TRUE_SOC_EVERY && (pct - v).abs() > 1e-9,
        };
        if due {
            self.last = Some((now, pct));
            let mut e = TruthEvent::new(now, "soc", None);
            e.value = Some(pct);
            e.unit = Some("%".into());
            truth.push(e);
        }
    }
}

/// The plant's true state of charge, percent: the mean over the modelled cells.
pub fn true_soc_percent(s: &PlantState) -> f64 {
    let n = s.cell_models.len().max(1) as f64;
    100.0 * s.cell_models.iter().map(|c| c.soc).sum::<f64>() / n
}

/// Temperatures at or below this (colder than absolute zero) release an NTC channel.
pub const RELEASE_TEMPERATURE: f64 = -273.15;

/// Start the cell-simulator task: applies `CellSim_SetCell` / `CellSim_SetTemp` frames to
/// the plant as per-channel overrides, and answers `CellSim_GetCurrent` with
/// `CellSim_Current` (the channel's current, [`PlantState::channel_current`]).
///
/// A setpoint overrides the cell (or NTC) and stays until changed or released, like the
/// output of a real cell-simulator channel. `CellSim_SetCell` with 0 V releases the cell
/// (the channel disconnects and the modelled cell is seen again); `CellSim_SetTemp` with a
/// temperature at or below -273.15 °C (the signal's minimum, -3276.8 °C, is the usual
/// choice) releases the NTC. Indices are 1-based; frames for cells or sensors the pack does
/// not have are ignored.
pub fn spawn_cell_simulator(plant: Plant, bus: &VirtualBus, dbc: Arc<Dbc>) -> JoinHandle<()> {
    let mut rx = bus.subscribe();
    let tx = bus.clone();
    tokio::spawn(async move {
        let get_current = dbc.message("CellSim_GetCurrent").cloned();
        let current = dbc.message("CellSim_Current").cloned();
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
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!("simulated cell simulator fell behind and lost {n} frames");
                    continue;
                }
                Err(RecvError::Closed) => return,
            };
            if let (Some(ask), Some(answer)) = (&get_current, &current) {
                if r.frame.is_data(ask.id, ask.extended) {
                    if let Some(f) = current_reply(&plant, ask, answer, &r.frame.data) {
                        if tx.send(f).await.is_err() {
                            return;
                        }
                    }
                    continue;
                }
            }
            let (msg, index_sig, value_sig, is_voltage) =
                if r.frame.is_data(set_v.id, set_v.extended) {
                    (&set_v, "CellIndex", "Voltage", true)
                } else if r.frame.is_data(set_t.id, set_t.extended) {
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
            if is_voltage {
                p.set_cell_override(i, (value > 0.0).then_some(value));
            } else {
                p.set_ntc_override(i, (value > RELEASE_TEMPERATURE).then_some(value));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dbc() -> Dbc {
        Dbc::parse(super::super::bench::FIRMWARE_DBC, "sim-bms.dbc").unwrap()
    }

    fn outputs(balancing: u32) -> sim_bms::Outputs {
        sim_bms::Outputs {
            chg_fet: true,
            dsg_fet: true,
            warning: false,
            faults: 0,
            conditions: 0,
            fault_cell: 0,
            short_circuit: false,
            state: sim_bms::State::Idle,
            balancing,
        }
    }

    #[test]
    fn the_balancing_message_carries_each_driven_switch_and_their_count() {
        let dbc = dbc();
        let image = FirmwareImage::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("firmware-under-test/sim-bms-1.0.0.yaml"),
        )
        .unwrap();
        let plant = Plant::new(16, 3.3, 4, 25.0);
        let out = outputs(0b1_0000_0001_0000);
        let status = Status {
            out: &out,
            counter: 1,
            soc: None,
        };
        let frames = status_frames(&dbc, &image.config, 0, &status, &plant.snapshot(), false);
        let m = dbc.message("BMS_Balancing").unwrap();
        let f = frames
            .iter()
            .find(|f| f.is_data(m.id, m.extended))
            .expect("a BMS_Balancing frame");
        let values = m.decode(&f.data).unwrap();
        let on: Vec<&str> = values
            .iter()
            .filter(|d| d.name.starts_with("BalCell") && d.physical == 1.0)
            .map(|d| d.name.as_str())
            .collect();
        assert_eq!(on, ["BalCell05", "BalCell13"]);
        let count = values.iter().find(|d| d.name == "BalancingCells").unwrap();
        assert_eq!(count.physical, 2.0);
    }

    #[test]
    fn a_current_request_is_answered_with_the_channels_current() {
        let dbc = dbc();
        let (ask, answer) = (
            dbc.message("CellSim_GetCurrent").unwrap(),
            dbc.message("CellSim_Current").unwrap(),
        );
        let plant = Plant::new(4, 3.3, 1, 25.0);
        {
            let mut g = plant.lock();
            g.bleed_current_a = 0.1;
            g.set_cell_override(2, Some(3.34));
            g.set_balancing(0b100);
        }
        let reply = |cell: f64| {
            let data = ask.encode(&[("CellIndex", cell)]).unwrap();
            current_reply(&plant, ask, answer, &data).map(|f| {
                let v = answer.decode(&f.data).unwrap();
                (v[0].physical, v[1].physical)
            })
        };
        assert_eq!(reply(3.0), Some((3.0, 0.1)));
        // A cell without an overriding channel: the channel delivers nothing.
        assert_eq!(reply(1.0), Some((1.0, 0.0)));
        // No such cell, or no cell index at all: no reply.
        assert_eq!(reply(9.0), None);
        assert_eq!(reply(0.0), None);
    }
}
