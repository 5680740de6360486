//! The ground truth of the simulated bench: per protection, when the plant really crossed
//! the firmware's level, when the AFE saw it, when the fault was set and when the FET
//! opened; exported beside the run.

use crate::common;
use crate::sim_support;

use std::time::Duration;

use common::*;
use hilrig::can::Bus;
use hilrig::report::Outcome;
use hilrig::sim::bms_host::TruthEvent;
use sim_support::*;

fn of<'a>(ev: &'a [TruthEvent], kind: &str, protection: Option<&str>) -> Vec<&'a TruthEvent> {
    ev.iter()
        .filter(|e| {
            e.kind == kind && (protection.is_none() || e.protection.as_deref() == protection)
        })
        .collect()
}

#[test]
fn an_over_charge_run_records_each_crossing_and_fet_opening() {
    virtual_runtime().block_on(async {
        let rig = sim_rig(None);
        let bench = memory_bench(&rig, &root().join("rig/sim.yaml")).await;
        let plan = plan("test-plans/overcharge.yaml", &rig);
        let dir = temp_dir("ground-truth");
        let (results, clock) = run_plan(&bench, &rig, plan, &dir).await;
        assert_eq!(results.outcome, Outcome::Passed, "{:?}", results.abort);
        // Let the BMS act on the safe state's standby request.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let ev = bench.truth.events(clock.origin);
        let crossed = of(&ev, "plant_crossed", Some("ov"));
        let started = of(&ev, "condition_start", Some("ov"));
        let set = of(&ev, "fault_set", Some("ov"));
        let opened = of(&ev, "chg_fet_open", Some("ov"));
        // The setup's step trip, then the three ramps.
        assert_eq!(crossed.len(), 4, "{ev:#?}");
        assert_eq!((started.len(), set.len(), opened.len()), (4, 4, 4));
        for k in 0..4 {
            // The plant crossed first; the AFE (50 ms period) saw it within one period.
            let seen = started[k].t - crossed[k].t;
            assert!((0.0..0.05 + 1e-9).contains(&seen), "AFE latency {seen}");
            assert_eq!(crossed[k].index, Some(5));
            assert_eq!(started[k].index, Some(5));
            assert!(started[k].value.unwrap() > 3.65 && started[k].unit.as_deref() == Some("V"));
            // The declared 2 s debounce, then the FET opens at the same sample.
            assert!((set[k].t - started[k].t - 2.0).abs() < 1e-9);
            assert_eq!(opened[k].t, set[k].t);
            // The run detected it after the FET really opened.
            let detected = results.tests[k].detected_s.unwrap();
            assert!(detected >= opened[k].t, "{detected} < {}", opened[k].t);
        }
        // The safe state's standby request opens both FETs without a protection.
        let last = ev.iter().rev().find(|e| e.kind == "chg_fet_open").unwrap();
        assert_eq!(last.protection, None);
        assert_eq!(last.cause.as_deref(), Some("standby"));
        let json = serde_json::to_value(&ev).unwrap();
        assert!(json[0].get("t").is_some() && json[0].get("kind").is_some());
    });
}

/// Keep the BMS running (state requests every 100 ms) and charging, then heat NTC 2.
async fn heat_while_charging(image: &str) -> Vec<TruthEvent> {
    let rig = sim_rig(Some(image));
    let bench = memory_bench(&rig, &root().join("rig/sim.yaml")).await;
    let dbc = firmware_dbc();
    let bus = bench.bus_port("bms").unwrap().clone();
    let run = frame(&dbc, "Host_StateRequest", &[("Request", 1.0)]);
    let keep_alive = {
        let bus = bus.clone();
        tokio::spawn(async move {
            loop {
                bus.send(run.clone()).await.unwrap();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    {
        let mut p = bench.plant.lock();
        p.supply.voltage_set = 56.0;
        p.supply.current_set = 5.0;
        p.supply.output = true;
    }
    let origin = tokio::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    bus.send(frame(
        &dbc,
        "CellSim_SetTemp",
        &[("SensorIndex", 2.0), ("Temperature", 58.0)],
    ))
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    keep_alive.abort();
    bench.truth.events(origin)
}

#[test]
fn truth_tells_a_missed_over_temperature_from_a_caught_one() {
    virtual_runtime().block_on(async {
        let good = heat_while_charging("sim-bms-1.0.0.yaml").await;
        let crossed = of(&good, "plant_crossed", Some("otc"));
        assert_eq!(crossed.len(), 1, "{good:#?}");
        assert_eq!(crossed[0].index, Some(2));
        assert_eq!(crossed[0].value, Some(58.0));
        let opened = of(&good, "chg_fet_open", Some("otc"));
        assert_eq!(opened.len(), 1, "{good:#?}");
        assert!((opened[0].t - crossed[0].t - 2.0).abs() <= 0.05 + 1e-9);

        let defect = heat_while_charging("sim-bms-1.0.0-defect-ot-charge.yaml").await;
        assert_eq!(of(&defect, "plant_crossed", Some("otc")).len(), 1);
        assert!(
            of(&defect, "condition_start", Some("otc")).is_empty(),
            "{defect:#?}"
        );
        assert!(of(&defect, "chg_fet_open", Some("otc")).is_empty());
    });
}
