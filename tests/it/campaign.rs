//! The runner library behind `hilrig run`, driven as a test drives it: a campaign on the
//! simulated bench (from the simulated bench's provider) tells its sink what happens in
//! order, and a campaign whose bench provider starts nothing for a simulated rig cannot
//! connect: its abort is recorded as a bus failure while connecting, as data.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use hilrig::campaign::{
    self, BenchProvider, CampaignDeps, CampaignEvent, CampaignSink, CampaignSpec, NoBench,
};
use hilrig::report::{AbortKind, AbortStage, Outcome};
use hilrig::rig::choice::{RigChoice, RigSource};
use hilrig::run::operator::Operator;
use hilrig::sim::SimBenchProvider;
use tokio_util::sync::CancellationToken;

/// Keeps the name of each event, and the executor's events by kind.
#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl CampaignSink for Recorder {
    fn event(&self, e: &CampaignEvent<'_>) {
        let name = match e {
            CampaignEvent::Run(run) => format!("run:{}", run.to_json()["event"].as_str().unwrap()),
            other => format!("{other:?}")
                .split(['(', ' ', '{'])
                .next()
                .unwrap()
                .to_string(),
        };
        self.0.lock().unwrap().push(name);
    }
}

fn spec(out: &std::path::Path) -> CampaignSpec {
    CampaignSpec {
        plan: root().join("test-plans/overcharge.yaml"),
        rig: RigChoice {
            path: root().join("rig/sim.yaml"),
            source: RigSource::Flag,
        },
        out: out.to_path_buf(),
        junit: Some(out.join("junit.xml")),
        decision_rule: None,
        virtual_time: true,
        wait: Duration::from_secs(60),
        tests: Vec::new(),
        params: Default::default(),
        allow_expired_calibration: true,
        db: None,
        dut_serial: Some("SN-CAMPAIGN-1".into()),
        operator: Some("campaign test".into()),
        ambient_c: None,
    }
}

async fn run_with(
    provider: &dyn BenchProvider,
    out: &std::path::Path,
) -> (campaign::CampaignOutcome, Vec<String>) {
    let spec = spec(out);
    let (rig, plans) = campaign::load(&spec).unwrap_or_else(|e| panic!("{e}"));
    let sink = Arc::new(Recorder::default());
    let deps = CampaignDeps {
        bench: provider,
        sink: sink.clone(),
        cancel: CancellationToken::new(),
        operator: Operator::default(),
    };
    let done = campaign::run(&spec, rig, plans, deps)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let events = sink.0.lock().unwrap().clone();
    (done, events)
}

/// One test for both campaigns: they hold the same simulated station's lock, which a
/// paused clock would give up waiting for at once.
#[tokio::test(start_paused = true)]
async fn campaigns_report_their_stages_in_order_and_record_the_abort_kind() {
    a_campaign_on_the_simulated_bench_reports_each_stage_in_order().await;
    without_its_bench_a_simulated_rig_aborts_while_connecting_as_a_bus_failure().await;
}

async fn a_campaign_on_the_simulated_bench_reports_each_stage_in_order() {
    let out = temp_dir("campaign");
    let (done, events) = run_with(&SimBenchProvider, &out).await;
    assert_eq!(done.outcome, Outcome::Passed, "{events:?}");
    assert_eq!(done.exit_code, 0);
    assert!(done.simulated);
    let order: Vec<&str> = events
        .iter()
        .map(String::as_str)
        .filter(|e| !e.starts_with("run:") && *e != "Warning")
        .collect();
    assert_eq!(
        order,
        [
            "Bench",
            "Plans",
            "Firmware",
            "PlanStarted",
            "Sealed",
            "PlanFinished",
            "Finished"
        ],
        "{events:?}"
    );
    assert!(events.iter().any(|e| e == "run:test"), "{events:?}");
    let r = &done.runs[0];
    assert_eq!(r.context.dut_serial.as_deref(), Some("SN-CAMPAIGN-1"));
    assert!(
        out.join("junit.xml").is_file(),
        "the --junit copy is written"
    );
}

async fn without_its_bench_a_simulated_rig_aborts_while_connecting_as_a_bus_failure() {
    let out = temp_dir("campaign-nobench");
    let (done, _) = run_with(&NoBench, &out).await;
    assert_eq!(done.outcome, Outcome::Aborted);
    assert_eq!(done.exit_code, 2);
    let abort = done.runs[0].abort.as_ref().unwrap();
    assert_eq!(abort.stage, Some(AbortStage::Connecting), "{abort:?}");
    assert_eq!(abort.kind, Some(AbortKind::Bus), "{abort:?}");
    assert!(abort.cause.contains("no virtual CAN bus"), "{abort:?}");
    assert!(done.runs[0]
        .safe_state
        .iter()
        .all(|a| a.instrument != "supply" || a.ok));
}
