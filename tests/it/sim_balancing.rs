//! Passive balancing on the simulated bench, end to end: the plant's own bleed closes a
//! spread of modelled cells in virtual time (recorded in the truth), and the balancing plan
//! reads the bleed current back over SCPI (rig/sim-abs.yaml) as over CAN (rig/sim.yaml),
//! or says that a cell simulator without a read-back cannot.

use crate::common;
use crate::sim_support;

use std::time::Duration;

use common::*;
use hilrig::plan::load::load_rig;
use hilrig::report::Outcome;
use hilrig::sim::cell::Chemistry;
use hilrig::sim::plant::PackConfig;
use hilrig::sim::{Bench, BenchOptions, ScpiExposure};
use hilrig::verdict::Verdict;
use sim_support::{memory_bench, run_plan, virtual_runtime};

/// A 16-cell LFP pack of small (1 Ah) modelled cells near the top of charge, cell 5 about
/// 31 mV above the others: the 100 mA bleed closes the spread in about five minutes.
#[test]
fn the_bleed_closes_a_spread_of_modelled_cells_and_the_truth_records_it() {
    let rig = sim_rig(None);
    let rt = virtual_runtime();
    rt.block_on(async {
        let mut pack = PackConfig::typical(Chemistry::Lfp, 16);
        pack.cell.capacity_ah = 1.0;
        pack.soc = 0.98;
        let options = BenchOptions {
            scpi: ScpiExposure::InMemory,
            pack: Some(pack),
            ..Default::default()
        };
        let bench = Bench::start_with(&rig, &root().join("rig/sim.yaml"), &options)
            .await
            .unwrap();
        let origin = tokio::time::Instant::now();
        bench.plant.lock().cell_models[4].soc = 0.9925;
        let start = bench.plant.snapshot();
        let spread = |s: &hilrig::sim::plant::PlantState| s.cells[4] - s.cells[0];
        assert!(spread(&start) > 0.030, "{}", spread(&start));
        tokio::time::sleep(Duration::from_secs(900)).await;
        let end = bench.plant.snapshot();
        assert!(
            end.cell_models[4].soc < 0.9925 - 0.005,
            "{}",
            end.cell_models[4].soc
        );
        assert_eq!(
            end.cell_models[0].soc, 0.98,
            "the other cells keep their charge"
        );
        assert!(spread(&end) < 0.010, "spread {} V", spread(&end));
        assert_eq!(end.balancing, 0, "balancing ended");

        let events = bench.truth.events(origin);
        let balancing: Vec<_> = events
            .iter()
            .filter(|e| e.kind.starts_with("balance_"))
            .collect();
        assert_eq!(balancing.len(), 2, "{balancing:?}");
        assert_eq!(balancing[0].kind, "balance_start");
        assert_eq!(balancing[0].index, Some(5));
        assert!(balancing[0].t < 1.0, "{}", balancing[0].t);
        assert_eq!(balancing[1].kind, "balance_stop");
        assert_eq!(balancing[1].index, Some(5));
        // 0.1 A from 1 Ah: the 8.5 ‰ of charge between 31 mV and 10 mV above takes ~300 s.
        let stopped = balancing[1].t;
        assert!((200.0..500.0).contains(&stopped), "{stopped}");
        let mv = balancing[1].value.unwrap();
        assert!(mv - end.cells[0] < 0.010, "{mv}");
    });
}

fn balancing_on(rig_file: &str, name: &str) -> hilrig::report::RunResults {
    let rig_path = root().join(rig_file);
    let rig = load_rig(&rig_path).unwrap().value;
    let plan = plan("test-plans/balancing.yaml", &rig);
    let dir = temp_dir(name);
    let rt = virtual_runtime();
    rt.block_on(async {
        let bench = memory_bench(&rig, &rig_path).await;
        run_plan(&bench, &rig, plan, &dir).await.0
    })
}

#[test]
fn the_scpi_cell_simulators_read_the_bleed_current_back() {
    let results = balancing_on("rig/sim-abs.yaml", "balancing-abs");
    let failed: Vec<_> = results
        .tests
        .iter()
        .filter(|t| t.verdict != Verdict::Pass)
        .map(|t| &t.test)
        .collect();
    assert_eq!(results.outcome, Outcome::Passed, "{failed:?}");
    let bleed = results
        .tests
        .iter()
        .find(|t| t.test == "bleed current on channel 5")
        .unwrap();
    let json = serde_json::to_value(bleed).unwrap();
    let value = json["measurements"][0]["value"].as_f64().unwrap();
    assert!((value - 0.1).abs() < 0.005, "{json}");
}

#[test]
fn a_can_cell_simulator_without_a_read_back_says_so() {
    let dir = temp_dir("balancing-no-readback");
    let text = std::fs::read_to_string(root().join("rig/sim.yaml")).unwrap();
    let cut: String = text
        .split_inclusive('\n')
        .filter(|l| {
            ![
                "      current:",
                "        request:",
                "        reply:",
                "        index_signal: CellIndex\n",
                "        value_signal: Current",
                "        accuracy: 2 mA",
            ]
            .iter()
            .any(|p| l.starts_with(p) || *l == *p)
        })
        .collect();
    assert!(!cut.contains("CellSim_GetCurrent"), "{cut}");
    let rig_path = dir.join("rig.yaml");
    std::fs::write(
        &rig_path,
        cut.replace("../", &format!("{}/", root().display())),
    )
    .unwrap();
    let rig = load_rig(&rig_path).unwrap().value;
    let plan = plan("test-plans/balancing.yaml", &rig);
    let rt = virtual_runtime();
    let results = rt.block_on(async {
        let bench = memory_bench(&rig, &rig_path).await;
        run_plan(&bench, &rig, plan, &dir.join("run")).await.0
    });
    assert_eq!(results.outcome, Outcome::Aborted);
    let cause = &results.abort.as_ref().unwrap().cause;
    assert!(
        cause.contains("cells.cell[4].i") && cause.contains("no `current:` read-back"),
        "{cause}"
    );
}
