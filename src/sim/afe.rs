//! The analogue front end's hardware short-circuit protection (SCD), separate from the
//! firmware's software protections.
//!
//! A BMS front end (TI BQ769x0/BQ7695x, ADI LTC680x companions) carries a comparator on the
//! discharge current: when the current stays above the threshold for the programmed delay
//! (typically 70-500 µs) the front end opens both FETs itself, without the firmware. The
//! image declares it as `afe: {scd: {trip: 80 A, delay: 250 us}}` (absent: no hardware
//! short-circuit protection).
//!
//! Time. The plant changes in steps (a load setpoint, a FET) at instants of the virtual
//! clock, so the comparator is solved analytically: the crossing instant is the moment the
//! plant's discharge current went above the threshold, and the trip instant is exactly
//! crossing + delay (nanosecond resolution), whatever tokio's millisecond timer does. If the
//! current falls back to the threshold or below before the delay has run out, the comparator
//! resets and nothing trips. The current a capture instrument samples at an instant comes
//! from [`AfeState::conducting_at`], so a waveform shows the step at the true trip instant.
//!
//! Release. The trip latches (both FETs stay open whatever the firmware commands) until the
//! load is removed: the load input is switched off or its setpoint is put back to the
//! threshold or below (the "load removal" recovery of such front ends), and the rig's
//! short-circuit path is open ([`super::plant::PlantState::load_removed`]); while the short
//! stays closed the trip stays latched.
//!
//! Status bit. As in such front ends' status register (BQ769x0 `SYS_STAT.SCD`), the trip
//! also sets a status bit that stays set until the host reads it
//! ([`AfeState::read_status`]), so the firmware, sampling every AFE period, sees a trip
//! whose latch was released (the short opened again) before its next sample.
//!
//! Truth. At the trip the host records, with protection `scd`: `plant_crossed` at the
//! crossing instant, and `fault_set`, `chg_fet_open` and `dsg_fet_open` at the trip instant.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::bms_host::{Truth, TruthEvent};
use super::plant::Plant;

/// The short-circuit-in-discharge comparator of the front end.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScdConfig {
    /// Discharge current above which the comparator fires, in amperes.
    pub trip_a: f64,
    /// How long the current must stay above the threshold before the FETs open.
    pub delay: Duration,
}

/// The front end's hardware protection state, part of the plant.
#[derive(Debug, Clone, Default)]
pub struct AfeState {
    /// The comparator (None: the front end has no hardware short-circuit protection).
    pub scd: Option<ScdConfig>,
    /// When the discharge current last went above the threshold (while it stays above).
    pub crossed_at: Option<Instant>,
    /// When the comparator opened the FETs (Some: the trip is latched).
    pub tripped_at: Option<Instant>,
    /// The short-circuit status bit: set at a trip, cleared when the host reads it.
    pub status: bool,
    /// Woken when a crossing starts the delay.
    notify: Arc<Notify>,
}

impl AfeState {
    /// Program the comparator (None removes it and clears its state).
    pub fn configure(&mut self, scd: Option<ScdConfig>) {
        self.scd = scd;
        self.crossed_at = None;
        self.tripped_at = None;
        self.status = false;
        self.notify.notify_one();
    }

    /// The host reads the status: set when a trip happened since the last read or the trip
    /// is still latched; the bit is cleared by the read.
    pub fn read_status(&mut self) -> bool {
        let set = self.status || self.latched();
        self.status = false;
        set
    }

    /// The trip has latched: the FETs are held open.
    pub fn latched(&self) -> bool {
        self.tripped_at.is_some()
    }

    /// When the comparator will open the FETs if nothing changes.
    pub fn trip_due(&self) -> Option<Instant> {
        let scd = self.scd?;
        if self.tripped_at.is_some() {
            return None;
        }
        self.crossed_at.map(|c| c + scd.delay)
    }

    /// Whether the FETs conduct at `t` as far as the front end is concerned (a pending
    /// trip that is due by `t` counts as open).
    pub fn conducting_at(&self, t: Instant) -> bool {
        match (self.tripped_at, self.trip_due()) {
            (Some(at), _) | (None, Some(at)) => t < at,
            (None, None) => true,
        }
    }

    /// See the plant after a change at `now`: `discharge_a` is the current the comparator
    /// senses, `load_removed` whether the load is off or set at or below the threshold and
    /// the short-circuit path is open.
    pub fn observe(&mut self, discharge_a: f64, load_removed: bool, now: Instant) {
        let Some(scd) = self.scd else { return };
        if self.tripped_at.is_some() {
            if load_removed {
                self.tripped_at = None;
                self.crossed_at = None;
            }
            return;
        }
        let above = discharge_a > scd.trip_a;
        match (above, self.crossed_at) {
            (true, None) => {
                self.crossed_at = Some(now);
                self.notify.notify_one();
            }
            (false, Some(_)) => self.crossed_at = None,
            _ => {}
        }
    }

    /// Latch the trip at `at` if it is still due then; returns the crossing instant.
    pub fn trip(&mut self, at: Instant) -> Option<Instant> {
        if self.trip_due() != Some(at) {
            return None;
        }
        self.tripped_at = Some(at);
        self.status = true;
        self.crossed_at
    }

    fn notifier(&self) -> Arc<Notify> {
        self.notify.clone()
    }
}

/// Program the plant's front end with `scd` and run the comparator's timer until aborted:
/// it latches a due trip and records it in `truth`.
pub fn spawn(plant: Plant, scd: Option<ScdConfig>, truth: Truth) -> JoinHandle<()> {
    let notify = {
        let mut g = plant.lock();
        g.afe.configure(scd);
        g.afe.notifier()
    };
    tokio::spawn(async move {
        loop {
            let due = plant.lock().afe.trip_due();
            match due {
                Some(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {
                            let (crossed, current) = {
                                let mut g = plant.lock();
                                // The discharge current the comparator saw just before.
                                let current = g.load_current() + g.short_current();
                                (g.afe.trip(at), current)
                            };
                            if let Some(crossed) = crossed {
                                record(&truth, crossed, at, current);
                            }
                        }
                        _ = notify.notified() => {}
                    }
                }
                None => notify.notified().await,
            }
        }
    })
}

fn record(truth: &Truth, crossed: Instant, at: Instant, current: f64) {
    let ev = |at: Instant, kind: &str| {
        let mut e = TruthEvent::new(at, kind, Some("scd"));
        e.value = Some(current);
        e.unit = Some("A".into());
        e
    };
    truth.push(ev(crossed, "plant_crossed"));
    truth.push(ev(at, "fault_set"));
    truth.push(ev(at, "chg_fet_open"));
    truth.push(ev(at, "dsg_fet_open"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::plant::LoadState;

    const SCD: ScdConfig = ScdConfig {
        trip_a: 80.0,
        delay: Duration::from_micros(250),
    };

    #[test]
    fn a_crossing_trips_exactly_one_delay_later_and_latches() {
        let t0 = Instant::now();
        let mut a = AfeState::default();
        a.configure(Some(SCD));
        a.observe(100.0, false, t0);
        let due = t0 + Duration::from_micros(250);
        assert_eq!(a.trip_due(), Some(due));
        assert!(a.conducting_at(due - Duration::from_nanos(1)));
        assert!(!a.conducting_at(due));
        assert_eq!(a.trip(due), Some(t0));
        assert!(a.latched());
        // Still overloaded: stays latched; load removed: releases.
        a.observe(0.0, false, due);
        assert!(a.latched());
        a.observe(0.0, true, due);
        assert!(!a.latched());
    }

    #[test]
    fn a_pulse_shorter_than_the_delay_does_not_trip() {
        let t0 = Instant::now();
        let mut a = AfeState::default();
        a.configure(Some(SCD));
        a.observe(100.0, false, t0);
        a.observe(50.0, false, t0 + Duration::from_micros(100));
        assert_eq!(a.trip_due(), None);
        assert_eq!(a.trip(t0 + Duration::from_micros(250)), None);
        assert!(!a.latched());
    }

    #[test]
    fn the_reference_image_programs_the_comparator() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("firmware-under-test/sim-bms-1.0.0.yaml");
        let image = crate::sim::firmware::FirmwareImage::load(&path).unwrap();
        assert_eq!(image.afe, Some(SCD));
    }

    #[test]
    fn without_a_comparator_nothing_happens() {
        let mut a = AfeState::default();
        a.observe(1e6, false, Instant::now());
        assert_eq!(a.trip_due(), None);
        assert!(a.conducting_at(Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn the_plant_opens_its_fets_and_the_truth_has_the_exact_instant() {
        let plant = Plant::new(16, 3.3, 4, 25.0);
        let truth = Truth::default();
        let task = spawn(plant.clone(), Some(SCD), truth.clone());
        {
            let mut g = plant.lock();
            g.dsg_fet = true;
            g.chg_fet = true;
            g.load = LoadState {
                current_set: 100.0,
                input: true,
            };
        }
        let crossed = Instant::now();
        assert_eq!(plant.snapshot().load_current(), 100.0);
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(plant.snapshot().load_current(), 0.0);
        let set = truth.first("fault_set", Some("scd"), crossed).unwrap();
        assert_eq!(set.at - crossed, Duration::from_micros(250));
        let c = truth.first("plant_crossed", Some("scd"), crossed).unwrap();
        assert_eq!(c.at, crossed);
        // The firmware still commands the FETs closed; the latch holds them open until the
        // load is removed.
        plant.lock().load.input = false;
        plant.lock().load.input = true;
        plant.lock().load.current_set = 10.0;
        assert_eq!(plant.snapshot().load_current(), 10.0);
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_short_trips_and_holds_the_latch_until_it_opens() {
        let plant = Plant::new(16, 3.3, 4, 25.0);
        let truth = Truth::default();
        let task = spawn(plant.clone(), Some(SCD), truth.clone());
        {
            let mut g = plant.lock();
            g.dsg_fet = true;
            g.chg_fet = true;
            g.short.resistance_ohm = 0.25;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        plant.lock().short.closed = true;
        let crossed = Instant::now();
        let flowing = plant.snapshot().short_current();
        assert!(flowing > SCD.trip_a, "{flowing}");
        tokio::time::sleep(Duration::from_millis(5)).await;
        let s = plant.snapshot();
        assert!(s.afe.latched());
        assert_eq!(s.short_current(), 0.0);
        assert_eq!(s.pack_current(), 0.0);
        let set = truth.first("fault_set", Some("scd"), crossed).unwrap();
        assert_eq!(set.at - crossed, SCD.delay);
        assert_eq!(set.value, Some(flowing));
        let c = truth.first("plant_crossed", Some("scd"), crossed).unwrap();
        assert_eq!(c.at, crossed);
        // The load is off, but the short is still closed: no load removal.
        plant.lock().load.input = false;
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(plant.snapshot().afe.latched());
        // Opened (load still off): released, and the FETs conduct again; the status bit
        // stays until the host reads it, once.
        plant.lock().short.closed = false;
        let s = plant.snapshot();
        assert!(!s.afe.latched());
        assert!(plant.lock().afe.read_status());
        assert!(!plant.lock().afe.read_status());
        plant.lock().load = LoadState {
            current_set: 10.0,
            input: true,
        };
        assert_eq!(plant.snapshot().load_current(), 10.0);
        task.abort();
    }
}
