//! Hardware short-circuit protection timed by a triggered capture: the simulated front end
//! trips at crossing + delay (microseconds), a scope-like record of the pack current is
//! transferred as a BYTE block with a preamble, scaled, and the trip time is found with its
//! GUM budget; in randomised trials the stated interval holds the firmware's truth.

use std::time::Duration;

use hilrig::run::trip::capture::{first_sample, trip_time, CaptureTiming};
use hilrig::scpi::reply::parse_block;
use hilrig::scpi::waveform::{Preamble, YScaling};
use hilrig::sim::afe::{self, ScdConfig};
use hilrig::sim::bms_host::Truth;
use hilrig::sim::capture::CurrentTrace;
use hilrig::sim::plant::{LoadState, Plant};
use tokio::time::Instant;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * ((self.next() >> 11) as f64 / (1u64 << 53) as f64)
    }
}

/// One trial: returns (measured s, truth s, expanded uncertainty s).
async fn trial(delay_us: f64, dt: f64, phase: f64) -> (f64, f64, f64) {
    let plant = Plant::new(16, 3.3, 4, 25.0);
    let truth = Truth::default();
    let scd = ScdConfig {
        trip_a: 80.0,
        delay: Duration::from_secs_f64(delay_us * 1e-6),
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
    tokio::time::sleep(Duration::from_millis(2)).await;
    let armed = Instant::now();
    // The short-circuit stimulus: the load steps from 20 A to 120 A.
    plant.lock().load.current_set = 120.0;
    tokio::time::sleep(Duration::from_millis(3)).await;
    task.abort();

    // The scope: edge trigger, falling through -90 A (the discharge step), interpolated
    // trigger (time 0 is the crossing), samples on its own clock (random phase), 100 µs of
    // pre-trigger, BYTE transfer at 1 A per code around code 200.
    let trig = trace.trigger(armed, -90.0, false).expect("trigger");
    let points = ((1.5e-3 + 100e-6) / dt) as usize;
    let xorigin = -100e-6 - phase * dt;
    let start = trig - Duration::from_secs_f64(-xorigin);
    let amps = trace.sample(start, Duration::from_secs_f64(dt), points);
    let codes: Vec<u8> = amps
        .iter()
        .map(|i| (i + 200.0).round().clamp(0.0, 255.0) as u8)
        .collect();
    let mut block = format!("#9{:09}", codes.len()).into_bytes();
    block.extend_from_slice(&codes);
    let pre = Preamble::parse(&format!("0,0,{points},1,{dt:e},{xorigin:e},0,1,0,200")).unwrap();
    let values = pre
        .values(parse_block(&block).unwrap(), YScaling::Rigol)
        .unwrap();
    // detect: capture.i > -1 A (the FETs open).
    let idx = first_sample(&pre, &values, |i| i > -1.0).expect("trip in the record");
    let timing = CaptureTiming {
        trigger_resolution_s: Some(dt / 10.0),
        timebase_ppm: 25.0,
    };
    let trip = trip_time(&pre, idx, &timing, 2.0).unwrap();
    let set = truth.first("fault_set", Some("scd"), armed).unwrap();
    let crossed = truth.first("plant_crossed", Some("scd"), armed).unwrap();
    assert_eq!(crossed.at, trig);
    let true_s = (set.at - crossed.at).as_secs_f64();
    (trip.time_s, true_s, trip.expanded_s)
}

#[tokio::test(start_paused = true)]
async fn capture_times_the_short_circuit_trip_within_its_stated_uncertainty() {
    let mut rng = Rng(0x5C_2026);
    let mut worst_err: f64 = 0.0;
    let mut worst_u: f64 = 0.0;
    let trials = 60;
    for k in 0..trials {
        let delay = rng.uniform(70.0, 900.0);
        let dt = [1e-6, 2e-6, 10e-6][k % 3];
        let phase = rng.uniform(0.0, 1.0);
        let (measured, truth, u) = trial(delay, dt, phase).await;
        assert!(u <= 1e-3, "expanded uncertainty {u} s above 1 ms");
        let err = measured - truth;
        assert!(
            err.abs() <= u,
            "trial {k}: delay {delay} µs, dt {dt} s: measured {measured} s, truth {truth} s, U {u} s"
        );
        worst_err = worst_err.max(err.abs());
        worst_u = worst_u.max(u);
    }
    eprintln!(
        "capture path: {trials} trials, largest |error| {:.2} µs, largest U(k=2) {:.2} µs",
        worst_err * 1e6,
        worst_u * 1e6
    );
}

#[tokio::test(start_paused = true)]
async fn a_too_long_delay_shows_in_the_capture() {
    let (measured, truth, u) = trial(1400.0, 1e-6, 0.3).await;
    assert!((measured - truth).abs() <= u);
    assert!(measured > 1e-3, "{measured}");
}
