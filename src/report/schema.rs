//! JSON Schemas of the files a run writes, generated from the Rust types (schemars).
//!
//! `hilrig schema` prints them. A few types of the report model live in other modules
//! (`Verdict`, `Limit`, `DecisionRule`, `Provenance`); their schemas are described here by
//! mirror types with the same serde shape, and a unit test keeps the mirrors in step.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::manifest::Manifest;
use super::rejudge::RejudgedResults;
use super::RunResults;

/// Mirror of `crate::verdict::Verdict` for the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum VerdictDef {
    /// Within the limit.
    Pass,
    /// Inside the guard band: neither pass nor fail can be stated.
    Inconclusive,
    /// Outside the limit.
    Fail,
}

/// Mirror of `crate::verdict::Limit` for the schema.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LimitDef {
    /// Lowest acceptable value (SI unit), or null when open.
    pub low: Option<f64>,
    /// Highest acceptable value (SI unit), or null when open.
    pub high: Option<f64>,
}

/// Mirror of `crate::plan::DecisionRule` for the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DecisionRuleDef {
    /// Simple acceptance: the measured value alone is compared with the limit.
    Simple,
    /// Guarded acceptance (ILAC-G8): pass only when value ± uncertainty is inside the limit,
    /// fail only when it is all outside, otherwise inconclusive.
    Guarded,
}

/// Mirror of `crate::plan::limits::Provenance` for the schema.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ProvenanceDef {
    /// Standard or source, e.g. `IEC 62619:2022`.
    pub source: String,
    /// Clause, where there is one.
    pub clause: Option<String>,
    /// What the criterion rests on.
    pub basis: String,
    /// How sure we are of it, with a reason.
    pub confidence: String,
}

/// Names of the schemas `schema_for` knows.
pub const SCHEMAS: [&str; 3] = ["results", "rejudged", "manifest"];

/// The JSON Schema of `results.json`.
pub fn results_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(RunResults)).unwrap_or_default()
}

/// The JSON Schema of `results.json` in a re-judged result (`rejudge-*/results.json`).
pub fn rejudged_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(RejudgedResults)).unwrap_or_default()
}

/// The JSON Schema of `manifest.json`.
pub fn manifest_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Manifest)).unwrap_or_default()
}

/// A schema by name (`results`, `rejudged`, `manifest`), or None for an unknown name.
pub fn schema_for(name: &str) -> Option<serde_json::Value> {
    match name {
        "results" => Some(results_schema()),
        "rejudged" => Some(rejudged_schema()),
        "manifest" => Some(manifest_schema()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::limits::Provenance;
    use crate::verdict::{DecisionRule, Limit, Verdict};

    fn same<A: Serialize, B: Serialize + for<'de> Deserialize<'de>>(a: &A) {
        let ja = serde_json::to_value(a).unwrap();
        let b: B = serde_json::from_value(ja.clone()).unwrap();
        assert_eq!(serde_json::to_value(&b).unwrap(), ja);
    }

    #[test]
    fn mirrors_have_the_same_serde_shape() {
        for v in [Verdict::Pass, Verdict::Inconclusive, Verdict::Fail] {
            same::<_, VerdictDef>(&v);
        }
        for r in [DecisionRule::Simple, DecisionRule::Guarded] {
            same::<_, DecisionRuleDef>(&r);
        }
        same::<_, LimitDef>(&Limit::between(1.0, 2.0));
        same::<_, LimitDef>(&Limit::at_most(2.0));
        let p: Provenance = serde_json::from_value(serde_json::json!({
            "source": "IEC 62619:2022", "clause": "8.2.2", "basis": "b", "confidence": "medium"
        }))
        .unwrap();
        same::<_, ProvenanceDef>(&p);
        // And back: every mirror value is accepted by the real type.
        let v: Verdict =
            serde_json::from_value(serde_json::to_value(VerdictDef::Fail).unwrap()).unwrap();
        assert_eq!(v, Verdict::Fail);
    }

    #[test]
    fn results_schema_names_every_top_level_field() {
        let s = results_schema();
        let props = s["properties"].as_object().unwrap();
        for k in [
            "schema",
            "run_id",
            "tests",
            "decision_rule",
            "outcome",
            "trace_rows",
        ] {
            assert!(props.contains_key(k), "{k} missing from {s}");
        }
    }
}
