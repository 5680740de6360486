//! What a simulated oscilloscope or DAQ on the pack current acquires: the plant's pack
//! current as a piecewise-constant record in virtual time, sampled at any rate.
//!
//! The plant changes in steps at instants of the virtual clock, so the current between two
//! changes is constant and a waveform at any sample rate follows exactly from the record of
//! steps: a sample at `t` is the last step at or before `t`. A hardware short-circuit trip
//! ([`super::afe`]) is entered at its true instant (crossing + delay), not at the
//! millisecond when tokio woke the front end's timer, so a captured waveform shows the FET
//! opening where it really happened.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::plant::Plant;

/// Steps kept at most (older ones are dropped; a capture only looks back a few seconds).
const MAX_STEPS: usize = 4096;

/// The record of the plant's pack current (A, positive when charging).
#[derive(Debug, Clone, Default)]
pub struct CurrentTrace {
    steps: Arc<Mutex<VecDeque<(Instant, f64)>>>,
}

impl CurrentTrace {
    /// Record `plant`'s pack current from now on.
    pub fn watch(plant: &Plant) -> Self {
        let trace = Self::default();
        let steps = trace.steps.clone();
        let first = plant.snapshot().pack_current();
        steps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back((Instant::now(), first));
        plant.observe(Box::new(move |s, now| {
            let i = s.pack_current();
            // A front-end trip takes effect at its own instant, which is never later than now.
            let at = s.afe.tripped_at.filter(|t| *t <= now && i == 0.0);
            let mut q = steps.lock().unwrap_or_else(|e| e.into_inner());
            if q.back().is_some_and(|(_, last)| *last == i) {
                return;
            }
            let at = match (at, q.back()) {
                (Some(t), Some((last_t, _))) if t > *last_t => t,
                _ => now,
            };
            q.push_back((at, i));
            if q.len() > MAX_STEPS {
                q.pop_front();
            }
        }));
        trace
    }

    /// The current at `t` (None before the record starts).
    pub fn at(&self, t: Instant) -> Option<f64> {
        let q = self.steps.lock().unwrap_or_else(|e| e.into_inner());
        q.iter().rev().find(|(at, _)| *at <= t).map(|(_, i)| *i)
    }

    /// `n` samples `interval` apart starting at `start` (NaN where nothing was recorded).
    pub fn sample(&self, start: Instant, interval: Duration, n: usize) -> Vec<f64> {
        (0..n)
            .map(|k| {
                let t = start + interval.mul_f64(k as f64);
                self.at(t).unwrap_or(f64::NAN)
            })
            .collect()
    }

    /// The first instant at or after `after` where the current crosses `level` on a
    /// `rising` (or falling) edge: the trigger of a single acquisition.
    pub fn trigger(&self, after: Instant, level: f64, rising: bool) -> Option<Instant> {
        let q = self.steps.lock().unwrap_or_else(|e| e.into_inner());
        let mut prev = q.iter().rev().find(|(at, _)| *at < after).map(|(_, i)| *i);
        for (at, i) in q.iter().filter(|(at, _)| *at >= after) {
            let fired = prev.is_some_and(|p| {
                if rising {
                    p < level && *i >= level
                } else {
                    p > level && *i <= level
                }
            });
            if fired {
                return Some(*at);
            }
            prev = Some(*i);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::afe::{self, ScdConfig};
    use crate::sim::bms_host::Truth;
    use crate::sim::plant::LoadState;

    #[tokio::test(start_paused = true)]
    async fn a_waveform_shows_the_short_circuit_trip_at_its_true_instant() {
        let plant = Plant::new(16, 3.3, 4, 25.0);
        let truth = Truth::default();
        let scd = ScdConfig {
            trip_a: 80.0,
            delay: Duration::from_micros(330),
        };
        let task = afe::spawn(plant.clone(), Some(scd), truth.clone());
        let trace = CurrentTrace::watch(&plant);
        {
            let mut g = plant.lock();
            g.dsg_fet = true;
            g.load = LoadState {
                current_set: 20.0,
                input: true,
            };
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
        let armed = Instant::now();
        plant.lock().load.current_set = 120.0;
        tokio::time::sleep(Duration::from_millis(5)).await;
        task.abort();
        // Discharge is negative: the FETs opening is a rising edge through -1 A.
        assert_eq!(trace.trigger(armed, -100.0, false), Some(armed));
        let trig = trace.trigger(armed, -1.0, true).unwrap();
        let set = truth.first("fault_set", Some("scd"), armed).unwrap();
        assert_eq!(trig, set.at);
        assert_eq!(trig - armed, Duration::from_micros(330));
        // 1 MSa/s from the step on: 330 samples at -120 A, then 0 A.
        let w = trace.sample(armed, Duration::from_micros(1), 400);
        let first_open = w.iter().position(|i| i.abs() < 1.0).unwrap();
        assert_eq!(first_open, 330);
        assert_eq!(w[0], -120.0);
        assert_eq!(trace.at(armed - Duration::from_millis(1)), Some(-20.0));
    }

    #[test]
    fn no_edge_no_trigger() {
        let plant = Plant::new(2, 3.3, 1, 25.0);
        let trace = CurrentTrace::watch(&plant);
        assert_eq!(trace.trigger(Instant::now(), -1.0, true), None);
        assert_eq!(trace.at(Instant::now()), Some(0.0));
    }
}
