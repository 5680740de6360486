//! Lenient readings of the input copies in a bundle (`inputs/*.yaml`), for the report.
//!
//! The report must still render a bundle written by an older or newer hilrig, so these
//! views read only the fields the report shows and ignore the rest; the strict models in
//! `plan` and `rig` stay the authority for running.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::plan::Condition;
use crate::units::{Dimension, Quantity};

/// What the report needs from the rig copy.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RigView {
    /// Station id.
    #[serde(default)]
    pub station: String,
    /// Present for the simulated bench.
    #[serde(default)]
    pub simulation: Option<serde_json::Value>,
    /// Instruments.
    #[serde(default)]
    pub instruments: Vec<InstrumentView>,
    /// Calibration records: serial -> due date (YYYY-MM-DD).
    #[serde(default)]
    pub calibration: BTreeMap<String, String>,
}

/// One instrument as the rig names it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct InstrumentView {
    /// Id.
    #[serde(default)]
    pub id: String,
    /// Role.
    #[serde(default)]
    pub role: String,
    /// SCPI dialect.
    #[serde(default)]
    pub dialect: Option<String>,
    /// Address.
    #[serde(default)]
    pub address: Option<String>,
    /// CAN bus.
    #[serde(default)]
    pub bus: Option<String>,
    /// Serial number.
    #[serde(default)]
    pub serial: Option<String>,
}

/// What the report needs from the fixture copy.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct FixtureView {
    /// Fixture id.
    #[serde(default)]
    pub dut: String,
    /// Title.
    #[serde(default)]
    pub title: String,
    /// Chemistry.
    #[serde(default)]
    pub chemistry: String,
    /// Cells in series.
    #[serde(default)]
    pub cells_in_series: Option<u32>,
    /// Declared pack energy, as written (`5120 Wh`).
    #[serde(default)]
    pub energy: Option<String>,
    /// Declared installation location (`indoor`, `outdoor`, `detached`, ...), when given.
    #[serde(default)]
    pub location: Option<String>,
    /// Declared protections, as written.
    #[serde(default)]
    pub protections: BTreeMap<String, ProtectionView>,
    /// Cell-maker limits, as written.
    #[serde(default)]
    pub cell_limits: BTreeMap<String, String>,
    /// The inverter interface's declared keep-alive loss reaction time, as written.
    #[serde(default)]
    pub inverter: Option<InverterView>,
}

/// What re-judging needs from the fixture's `inverter:` section.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct InverterView {
    /// The declared reaction to a lost keep-alive.
    #[serde(default)]
    pub keepalive_loss: Option<KeepAliveLossView>,
}

/// The declared keep-alive loss reaction, as written.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct KeepAliveLossView {
    /// Reaction time (`3 s`).
    #[serde(default)]
    pub within: Option<String>,
}

/// A declared protection, as written.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ProtectionView {
    /// Trip level.
    #[serde(default)]
    pub trip: Option<String>,
    /// Release level.
    #[serde(default)]
    pub release: Option<String>,
    /// Delay.
    #[serde(default)]
    pub delay: Option<String>,
}

impl FixtureView {
    /// Declared energy in Wh, when declared and readable.
    pub fn energy_wh(&self) -> Option<f64> {
        let q = Quantity::parse(self.energy.as_deref()?).ok()?;
        (q.dim == Dimension::Energy).then_some(q.value)
    }
}

/// A value as written (`3.65 V`) parsed into SI.
pub fn quantity(text: Option<&str>) -> Option<Quantity> {
    Quantity::parse(text?).ok()
}

/// The plan copy: id, title, parameters and the steps as plain data.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PlanView {
    /// Plan id.
    #[serde(default)]
    pub plan: String,
    /// Title.
    #[serde(default)]
    pub title: String,
    /// Parameter defaults.
    #[serde(default)]
    pub parameters: BTreeMap<String, serde_json::Value>,
    /// Test steps.
    #[serde(default)]
    pub steps: Vec<serde_json::Value>,
    /// Setup steps (a trip run once before the repeats is a test too).
    #[serde(default)]
    pub setup: Vec<serde_json::Value>,
}

/// What the plan says about one test step.
#[derive(Debug, Clone, Default)]
pub struct TestSpec {
    /// Test name as in the plan.
    pub name: String,
    /// Step kind (`trip`, `expect`, `measure`).
    pub kind: String,
    /// Declared protection key exercised (`ov`, ...).
    pub protection: Option<String>,
    /// Trace channel of the stimulus setpoint.
    pub stimulus_channel: Option<String>,
    /// Stimulus kind as written (`step`, `ramp`, ...).
    pub stimulus_kind: Option<String>,
    /// Signals the detect condition (or expectation) reads.
    pub detect_signals: Vec<String>,
    /// The condition as written.
    pub condition: Option<String>,
}

impl PlanView {
    /// The test steps the report can describe.
    pub fn tests(&self) -> Vec<TestSpec> {
        let subst = |s: &str| -> String {
            let mut out = s.to_string();
            for (k, v) in &self.parameters {
                let val = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                out = out.replace(&format!("${{{k}}}"), &val);
            }
            out
        };
        let text = |v: &serde_json::Value| -> Option<String> {
            match v {
                serde_json::Value::String(s) => Some(subst(s)),
                serde_json::Value::Number(n) => Some(n.to_string()),
                serde_json::Value::Bool(b) => Some(b.to_string()),
                _ => None,
            }
        };
        let mut out = Vec::new();
        for step in self.setup.iter().chain(&self.steps) {
            let Some(obj) = step.as_object() else {
                continue;
            };
            for (kind, body) in obj {
                let mut spec = TestSpec {
                    kind: kind.clone(),
                    ..TestSpec::default()
                };
                match kind.as_str() {
                    "trip" => {
                        spec.name = body.get("name").and_then(text).unwrap_or_default();
                        spec.protection = body.get("protection").and_then(text);
                        spec.condition = body.get("detect").and_then(text);
                        if let Some(stim) = body.get("stimulus").and_then(|s| s.as_object()) {
                            for (skind, params) in stim {
                                spec.stimulus_kind = Some(skind.clone());
                                spec.stimulus_channel = params
                                    .get("of")
                                    .and_then(text)
                                    .and_then(|t| target_channel(&t))
                                    .or_else(|| {
                                        params
                                            .get("cell")
                                            .and_then(text)
                                            .map(|n| format!("cells.cell[{n}].v_set"))
                                    });
                            }
                        }
                    }
                    "expect" => {
                        spec.condition = body.get("that").and_then(text);
                        spec.name = body
                            .get("name")
                            .and_then(text)
                            .or_else(|| spec.condition.clone())
                            .unwrap_or_default();
                    }
                    "measure" => {
                        spec.name = body.get("name").and_then(text).unwrap_or_default();
                        spec.detect_signals =
                            body.get("signal").and_then(text).into_iter().collect();
                    }
                    _ => continue,
                }
                if let Some(c) = &spec.condition {
                    if let Ok(cond) = Condition::parse(c) {
                        spec.detect_signals =
                            cond.signals().into_iter().map(str::to_string).collect();
                    }
                }
                out.push(spec);
            }
        }
        out
    }
}

/// The trace channel of a stimulus target as written in plans (`cell[5]`, `ntc[1]`,
/// `supply.current`, `supply.voltage`, `load.current`).
pub fn target_channel(target: &str) -> Option<String> {
    if let Ok(t) = crate::plan::model::Target::parse(target) {
        return Some(t.channel());
    }
    let t = target.trim();
    let idx = |p: &str| {
        t.strip_prefix(p)?
            .strip_prefix('[')?
            .strip_suffix(']')?
            .parse::<u32>()
            .ok()
    };
    if let Some(n) = idx("cell") {
        return Some(format!("cells.cell[{n}].v_set"));
    }
    if let Some(n) = idx("ntc") {
        return Some(format!("cells.ntc[{n}].t_set"));
    }
    Some(
        match t {
            "supply.current" => "supply.i_set",
            "supply.voltage" => "supply.v_set",
            "load.current" => "load.i_set",
            _ => return None,
        }
        .to_string(),
    )
}

/// The plan step of a result: by its test name when recorded, else by its unique name
/// (`OV cell 5 #2` -> `OV cell 5`).
pub fn spec_for<'a>(specs: &'a [TestSpec], test: &str, name: &str) -> Option<&'a TestSpec> {
    if !test.is_empty() {
        if let Some(s) = specs.iter().find(|s| s.name == test) {
            return Some(s);
        }
    }
    specs.iter().find(|s| s.name == name).or_else(|| {
        let base = name.rsplit_once(" #").map(|(b, _)| b)?;
        specs.iter().find(|s| s.name == base)
    })
}

/// A limit profile copy: id, title, rule, and each criterion's provenance.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LimitsView {
    /// Profile id.
    #[serde(default)]
    pub profile: String,
    /// Title.
    #[serde(default)]
    pub title: String,
    /// The rule the profile asks for.
    #[serde(default)]
    pub decision_rule: Option<String>,
}

/// One event of the simulated bench's ground truth (`truth.json`).
#[derive(Debug, Clone, Deserialize)]
pub struct TruthEvent {
    /// Seconds on the run clock.
    pub t: f64,
    /// What happened (`chg_fet_open`, `fault_set`, ...).
    pub kind: String,
    /// Protection involved, when any.
    #[serde(default)]
    pub protection: Option<String>,
}

/// Parse YAML text into a view, or None (the report then says the copy was unreadable).
pub fn parse_yaml<T: for<'de> Deserialize<'de>>(text: &str) -> Option<T> {
    serde_saphyr::from_str(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_old_and_new_plan_shapes() {
        let old = "plan: p\ntitle: t\nsteps:\n  - trip:\n      name: OV cell 5\n      protection: ov\n      stimulus: {ramp: {cell: 5, from: 3.6 V, to: 3.7 V, rate: 5 mV/s}}\n      detect: bms.chg_fet == open\n  - cells: {all: 3.3 V}\n";
        let v: PlanView = parse_yaml(old).unwrap();
        let t = v.tests();
        assert_eq!(t.len(), 1);
        assert_eq!(
            t[0].stimulus_channel.as_deref(),
            Some("cells.cell[5].v_set")
        );
        assert_eq!(t[0].detect_signals, vec!["bms.chg_fet".to_string()]);
        assert_eq!(
            spec_for(&t, "", "OV cell 5 #3")
                .unwrap()
                .protection
                .as_deref(),
            Some("ov")
        );
        assert_eq!(spec_for(&t, "OV cell 5", "x").unwrap().name, "OV cell 5");
        let shipped: PlanView =
            parse_yaml("steps:\n  - trip: {name: a, stimulus: {ramp: {of: cell 5}}}\n").unwrap();
        assert_eq!(
            shipped.tests()[0].stimulus_channel.as_deref(),
            Some("cells.cell[5].v_set")
        );

        let new = "plan: p\ntitle: t\nparameters: {cell: '7'}\nsteps:\n  - trip:\n      name: OTC\n      protection: otc\n      stimulus: {step: {of: 'ntc[${cell}]', from: 50 °C, to: 60 °C}}\n      detect: bms.fault.otc == 1\n  - expect: {that: bms.warning == 1, within: 2 s}\n";
        let v: PlanView = parse_yaml(new).unwrap();
        let t = v.tests();
        assert_eq!(t[0].stimulus_channel.as_deref(), Some("cells.ntc[7].t_set"));
        assert_eq!(t[1].kind, "expect");
        assert_eq!(t[1].detect_signals, vec!["bms.warning".to_string()]);
    }

    #[test]
    fn a_trip_in_the_setup_is_a_test_with_its_stimulus_kind() {
        let v: PlanView = parse_yaml(
            "setup:\n  - trip: {name: once, stimulus: {step: {of: cell 5, from: 3.6 V, to: 3.7 V}}}\nsteps:\n  - trip: {name: a, stimulus: {ramp: {of: cell 5}}}\n",
        )
        .unwrap();
        let t = v.tests();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].name, "once");
        assert_eq!(t[0].stimulus_kind.as_deref(), Some("step"));
        assert_eq!(t[1].stimulus_kind.as_deref(), Some("ramp"));
    }

    #[test]
    fn fixture_energy_and_location() {
        let f: FixtureView =
            parse_yaml("dut: x\nenergy: 5120 Wh\nlocation: indoor\nextra: {a: 1}\n").unwrap();
        assert_eq!(f.energy_wh(), Some(5120.0));
        assert_eq!(f.location.as_deref(), Some("indoor"));
    }
}
