//! Results for the report modules' unit tests.

use super::{RunResults, RESULTS_SCHEMA};

/// A passed run with one passing test, on the simulated bench or not, with the tests
/// `run --test` chose.
pub fn results(simulated: bool, selected: &[&str]) -> RunResults {
    serde_json::from_value(serde_json::json!({
        "schema": RESULTS_SCHEMA, "run_id": "r-1", "plan": "p", "title": "t",
        "requirements": [], "station": "bench-7", "dut": "d", "limit_profile": "l",
        "decision_rule": "guarded", "firmware": null, "clock_anchor": "2026-01-01T00:00:00Z",
        "duration_s": 1.0, "outcome": "passed", "abort": null,
        "safe_state_reached": true, "safe_state": [], "trace_rows": 0,
        "tests": [{"name": "OV cell 5", "repeat": 1, "verdict": "pass", "requirements": [],
                   "measurements": [], "message": null, "started_s": 0.0,
                   "detected_s": null}],
        "simulated": simulated, "selected_tests": selected
    }))
    .expect("sample results")
}
