//! `junit.xml` read back with an independent XML parser (roxmltree, not quick-junit's own
//! reader), checked for the shape Jenkins and GitLab read; and `results.json` checked
//! against the JSON Schema generated from the types.

use crate::report_support;

use std::collections::BTreeSet;

use hilrig::report::schema::{manifest_schema, results_schema};
use hilrig::report::RunResults;
use report_support::*;
use serde_json::Value;

fn junit_text(fail_second: bool, repeat_names_twice: bool) -> String {
    let mut r = results(fail_second);
    if repeat_names_twice {
        // Two tests of one plan with the same name must still give unique test cases.
        let mut extra = r.tests[0].clone();
        extra.repeat = 4;
        r.tests.push(extra);
    }
    hilrig::report::junit::build(&r).to_string().unwrap()
}

#[test]
fn junit_has_the_shape_ci_consumers_read() {
    let xml = junit_text(true, false);
    let doc = roxmltree::Document::parse(&xml).expect("well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    let suites: Vec<_> = root
        .children()
        .filter(|n| n.has_tag_name("testsuite"))
        .collect();
    assert_eq!(suites.len(), 1);
    let suite = suites[0];
    let cases: Vec<_> = suite
        .children()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    // Counts agree with the elements, at both levels.
    assert_eq!(suite.attribute("tests"), Some("3"));
    assert_eq!(root.attribute("tests"), Some("3"));
    assert_eq!(cases.len(), 3);
    let failures = cases
        .iter()
        .filter(|c| c.children().any(|n| n.has_tag_name("failure")))
        .count();
    assert_eq!(failures, 1);
    assert_eq!(suite.attribute("failures"), Some("1"));
    assert_eq!(suite.attribute("errors"), Some("0"));

    // Names: one per repeat, unique, with a classname.
    let names: Vec<&str> = cases.iter().map(|c| c.attribute("name").unwrap()).collect();
    assert_eq!(names, ["OV cell 5 #1", "OV cell 5 #2", "OV cell 5 #3"]);
    for c in &cases {
        assert_eq!(
            c.attribute("classname"),
            Some("cell-overvoltage-charge.sim-bms-16s-lfp")
        );
        let t: f64 = c.attribute("time").unwrap().parse().unwrap();
        assert!(t > 0.0);
    }

    // Suite properties.
    let prop = |node: roxmltree::Node, name: &str| -> Vec<String> {
        node.children()
            .filter(|n| n.has_tag_name("properties"))
            .flat_map(|p| p.children().filter(|n| n.has_tag_name("property")))
            .filter(|p| p.attribute("name") == Some(name))
            .map(|p| p.attribute("value").unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(prop(suite, "decision_rule"), ["guarded"]);
    assert_eq!(prop(suite, "station"), ["sim-bench"]);
    assert!(prop(suite, "firmware")[0].contains("sha256:3c3ce841"));
    // Test case properties: measured value, uncertainty, limit, verdict, provenance,
    // requirement and decision rule.
    let c2 = cases[1];
    assert_eq!(prop(c2, "requirement"), ["IEC 62619:2022 8.2.2"]);
    assert_eq!(prop(c2, "ov_threshold.value"), ["3.7120 V"]);
    assert_eq!(prop(c2, "ov_threshold.uncertainty"), ["0.0035 V"]);
    assert_eq!(prop(c2, "ov_threshold.limit"), ["3.6000 V .. 3.7000 V"]);
    assert_eq!(prop(c2, "ov_threshold.verdict"), ["FAIL"]);
    assert_eq!(prop(c2, "decision_rule"), ["guarded"]);
    assert!(prop(c2, "cell_never_above_upper_limit.provenance")[0].contains("8.2.2"));

    // The failure says what broke, with numbers, in the message and the text.
    let failure = c2.children().find(|n| n.has_tag_name("failure")).unwrap();
    let msg = failure.attribute("message").unwrap();
    assert!(
        msg.starts_with("FAIL: ov_threshold FAIL: measured 3.7120 ± 0.0035 V (k = 2)"),
        "{msg}"
    );
    assert!(msg.contains("limit 3.6000 V .. 3.7000 V"), "{msg}");
    assert_eq!(failure.attribute("type"), Some("FAIL"));
    let body = failure.text().unwrap_or("");
    assert!(
        body.contains("uncertainty:") && body.contains("limit from:"),
        "{body}"
    );
}

#[test]
fn junit_names_stay_unique_when_a_name_repeats() {
    let xml = junit_text(false, true);
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let names: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|n| n.attribute("name").unwrap())
        .collect();
    let set: BTreeSet<&str> = names.iter().copied().collect();
    assert_eq!(names.len(), 4);
    assert_eq!(set.len(), 4, "{names:?}");
}

#[test]
fn an_aborted_run_adds_an_error_case() {
    let mut r = results(false);
    r.outcome = hilrig::report::Outcome::Aborted;
    r.abort = Some(hilrig::report::Abort {
        cause: "supply lost".into(),
        during: None,
        at_s: 3.0,
        stopped_by: None,
        kind: Some(hilrig::report::AbortKind::Instrument),
        stage: Some(hilrig::report::AbortStage::Steps),
    });
    let xml = hilrig::report::junit::build(&r).to_string().unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let err = doc
        .descendants()
        .find(|n| n.has_tag_name("error"))
        .expect("an <error>");
    assert!(err.attribute("message").unwrap().contains("supply lost"));
    assert_eq!(doc.root_element().attribute("errors"), Some("1"), "{xml}");
}

// ---- JSON Schema ----

/// A small validator for the JSON Schema subset schemars emits (type, properties, required,
/// enum/const, items, $ref into $defs, anyOf/oneOf/allOf, additionalProperties: false).
fn validate(schema: &Value, root: &Value, v: &Value, path: &str, errs: &mut Vec<String>) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/$defs/");
        match root["$defs"].get(name) {
            Some(s) => validate(s, root, v, path, errs),
            None => errs.push(format!("{path}: unresolved {r}")),
        }
        return;
    }
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let ok = types.iter().any(|t| match *t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "number" => v.is_number(),
            "integer" => v.is_i64() || v.is_u64(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            _ => false,
        });
        if !ok {
            errs.push(format!("{path}: {v} is not {types:?}"));
            return;
        }
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array) {
        if !e.contains(v) {
            errs.push(format!("{path}: {v} not in {e:?}"));
        }
    }
    if let Some(c) = schema.get("const") {
        if c != v {
            errs.push(format!("{path}: {v} != {c}"));
        }
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(alts) = schema.get(key).and_then(Value::as_array) {
            let n = alts
                .iter()
                .filter(|s| {
                    let mut e = Vec::new();
                    validate(s, root, v, path, &mut e);
                    e.is_empty()
                })
                .count();
            if n == 0 || (key == "oneOf" && n > 1) {
                errs.push(format!("{path}: {n} alternatives of {key} match {v}"));
            }
        }
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            validate(s, root, v, path, errs);
        }
    }
    if let (Some(obj), Some(props)) = (v.as_object(), schema.get("properties")) {
        let props = props.as_object().unwrap();
        for req in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let k = req.as_str().unwrap();
            if !obj.contains_key(k) {
                errs.push(format!("{path}: required `{k}` missing"));
            }
        }
        for (k, val) in obj {
            match props.get(k) {
                Some(s) => validate(s, root, val, &format!("{path}.{k}"), errs),
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    errs.push(format!("{path}: unexpected `{k}`"))
                }
                None => {}
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, x) in arr.iter().enumerate() {
            validate(items, root, x, &format!("{path}[{i}]"), errs);
        }
    }
}

#[test]
fn results_json_matches_its_schema_and_round_trips() {
    let dir = temp_dir("schema");
    let r = results(true);
    r.write(&dir).unwrap();
    let text = std::fs::read_to_string(dir.join("results.json")).unwrap();
    let value: Value = serde_json::from_str(&text).unwrap();
    let schema = results_schema();
    let mut errs = Vec::new();
    validate(&schema, &schema, &value, "$", &mut errs);
    assert!(errs.is_empty(), "{errs:#?}");

    // The validator does reject what the schema forbids.
    let mut bad = value.clone();
    bad["outcome"] = Value::String("maybe".into());
    bad["tests"][0]["measurements"][0]["value"] = Value::String("3.6".into());
    bad.as_object_mut().unwrap().remove("run_id");
    let mut errs = Vec::new();
    validate(&schema, &schema, &bad, "$", &mut errs);
    assert_eq!(errs.len(), 3, "{errs:#?}");

    // Round trip: read back, write again, same JSON.
    let back = RunResults::read(&dir).unwrap();
    assert_eq!(serde_json::to_value(&back).unwrap(), value);

    // And a results.json from an earlier layout without optional values still reads.
    let mut older = value.clone();
    older["firmware"] = Value::Null;
    older["abort"] = Value::Null;
    let _: RunResults = serde_json::from_value(older).unwrap();
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_real_manifest_matches_its_schema_and_the_cli_prints_schemas() {
    let base = temp_dir("manifest-schema");
    let dir = base.join("run");
    sealed_run(&dir, false, true, "");
    let m: Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let schema = manifest_schema();
    let mut errs = Vec::new();
    validate(&schema, &schema, &m, "$", &mut errs);
    assert!(errs.is_empty(), "{errs:#?}");

    let (code, out, _) = hilrig(&["schema"]);
    assert_eq!(code, 0);
    let printed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(printed, results_schema());
    let (code, _, err) = hilrig(&["schema", "nonsense"]);
    assert_eq!(code, 2);
    assert!(err.contains("results, rejudged, manifest"), "{err}");
    std::fs::remove_dir_all(base).ok();
}
