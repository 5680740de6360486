//! Reading the four user files and checking them against each other.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_saphyr::Location;

use super::condition::Condition;
use super::error::{did_you_mean, InputError};
use super::fixture::{protection_dimension, Fixture, PROTECTION_KEYS};
use super::limits::LimitProfile;
use super::model::{Plan, Step, Suite};
use crate::dbc::Dbc;
use crate::rig::Rig;
use crate::units::Dimension;
use checker::Checker;
use params::substitute;

mod checker;
mod params;

/// A file as read: its path, text and parsed value.
#[derive(Debug)]
pub struct Source<T> {
    /// Path as given.
    pub path: PathBuf,
    /// Full text (for error snippets and evidence copies).
    pub text: String,
    /// Parsed value.
    pub value: T,
}

impl<T> Source<T> {
    fn error(&self, loc: &Location, message: impl Into<String>) -> InputError {
        InputError::at_location(&self.path, &self.text, loc, message)
    }
}

/// Where a logical signal's value comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum SignalSource {
    /// A DBC signal on the DUT bus.
    Can {
        /// Message name.
        message: String,
        /// Signal name.
        signal: String,
    },
    /// An instrument reading (`supply.v`, `load.i`, ...), in the given dimension.
    Instrument(Dimension),
    /// A register of the BMS's inverter-facing Modbus map (read where the rig wires a
    /// Modbus link to the BMS), with the map's unit.
    Modbus {
        /// The unit the map gives (`V`, `A`, empty).
        unit: String,
    },
}

/// A plan with everything it refers to, validated.
#[derive(Debug)]
pub struct LoadedPlan {
    /// The plan (after parameter substitution).
    pub plan: Source<Plan>,
    /// The DUT fixture.
    pub fixture: Source<Fixture>,
    /// The limit profile.
    pub limits: Source<LimitProfile>,
    /// The DUT's DBC.
    pub dbc: Dbc,
    /// Path of the DBC.
    pub dbc_path: PathBuf,
    /// Logical signal name -> source.
    pub signals: BTreeMap<String, SignalSource>,
    /// The parameter values in effect.
    pub parameters: BTreeMap<String, String>,
    /// The fixture's inverter-facing Modbus register map, when it declares one.
    pub modbus_map: Option<crate::modbus::RegisterMap>,
}

impl LoadedPlan {
    /// The delay the fixture declares for `protection` (0 s when it declares none).
    pub fn declared_delay(&self, protection: &str) -> f64 {
        self.fixture
            .value
            .protections
            .get(protection)
            .map(|p| p.value.delay.0)
            .unwrap_or(0.0)
    }

    /// The declared trip level of a protection of the fixture (0 when not declared), in its
    /// unit.
    pub fn declared_trip(&self, protection: &str) -> f64 {
        self.fixture
            .value
            .protections
            .get(protection)
            .map(|p| p.value.trip.0.value)
            .unwrap_or(0.0)
    }
}

/// The logical signal of the current of the cell-simulator channel driving cell `n`
/// (1-based), in amperes, positive when the channel sources.
pub fn cell_current_signal(n: u32) -> String {
    format!("cells.cell[{n}].i")
}

/// The cell a `cells.cell[N].i` signal reads, None for any other signal.
pub fn cell_current_index(name: &str) -> Option<u32> {
    name.strip_prefix("cells.cell[")?
        .strip_suffix("].i")?
        .parse()
        .ok()
}

impl LoadedPlan {
    /// The cells whose channel current (`cells.cell[N].i`) a step of the plan reads, in
    /// order: the runner samples only these.
    pub fn cell_currents_read(&self) -> Vec<u32> {
        let p = &self.plan.value;
        let mut names: Vec<&str> = Vec::new();
        for s in p.setup.iter().chain(&p.steps).chain(&p.teardown) {
            match &s.value {
                Step::Expect(x) => names.extend(x.that.value.signals()),
                Step::WaitFor(w) => names.extend(w.until.value.signals()),
                Step::Trip(t) => {
                    names.extend(t.detect.value.signals());
                    if let Some(r) = &t.release {
                        names.extend(r.detect.value.signals());
                    }
                }
                Step::Measure(m) => names.push(&m.signal.value),
                _ => {}
            }
        }
        let cells: std::collections::BTreeSet<u32> =
            names.iter().filter_map(|n| cell_current_index(n)).collect();
        cells.into_iter().collect()
    }
}

/// Signals every rig provides from its instruments.
pub const INSTRUMENT_SIGNALS: [(&str, Dimension); 5] = [
    ("supply.v", Dimension::Voltage),
    ("supply.i", Dimension::Current),
    ("load.v", Dimension::Voltage),
    ("load.i", Dimension::Current),
    // The scope's record of the pack current (discharge positive); a trip's detect only.
    ("capture.i", Dimension::Current),
];

/// Read and parse one YAML file.
pub fn read_yaml<T: DeserializeOwned>(path: &Path) -> Result<Source<T>, InputError> {
    let text = read_text(path)?;
    parse_yaml(path, text)
}

/// Read a text file; bytes that are not UTF-8 are reported at their line and column.
pub fn read_text(path: &Path) -> Result<String, InputError> {
    let bytes = std::fs::read(path)
        .map_err(|e| InputError::file(path, format!("cannot read file: {e}")))?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let good = String::from_utf8_lossy(&bytes[..at]);
        let line = good.matches('\n').count() + 1;
        let column = good.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        let lossy = String::from_utf8_lossy(bytes).into_owned();
        InputError::at(
            path,
            &lossy,
            line,
            column,
            format!(
                "byte 0x{:02X} is not UTF-8 text; save the file as UTF-8",
                bytes[at]
            ),
        )
    })
}

fn parse_yaml<T: DeserializeOwned>(path: &Path, text: String) -> Result<Source<T>, InputError> {
    let value = serde_saphyr::from_str::<T>(&text)
        .map_err(|e| with_hint(InputError::from_yaml(path, &text, &e)))?;
    Ok(Source {
        path: path.to_path_buf(),
        text,
        value,
    })
}

/// Add "did you mean" to serde's unknown field/variant messages.
fn with_hint(mut e: InputError) -> InputError {
    let m = &e.message;
    let (Some(start), Some(exp)) = (m.find("unknown "), m.find("expected one of ")) else {
        return e;
    };
    let found = m[start..].split('`').nth(1).map(str::to_string);
    let list = &m[exp + "expected one of ".len()..];
    let candidates: Vec<String> = list
        .split(',')
        .map(|c| c.trim().trim_matches('`').to_string())
        .filter(|c| !c.is_empty())
        .collect();
    if let Some(found) = found {
        if let Some(best) = did_you_mean(&found, candidates.iter().map(String::as_str)) {
            e.message = format!("{m}; did you mean `{best}`?");
        }
    }
    e
}

/// Read a rig file and run its pre-flight checks; the first problem found is returned
/// (see [`load_rig_all`] for every one).
pub fn load_rig(path: &Path) -> Result<Source<Rig>, InputError> {
    load_rig_all(path).map_err(|mut e| e.remove(0))
}

/// Read a rig file (paths inside it become relative to the working directory) and run the
/// pre-flight checks `hilrig run` makes before it connects anything; all problems found.
pub fn load_rig_all(path: &Path) -> Result<Source<Rig>, Vec<InputError>> {
    let rig = read_rig(path).map_err(|e| vec![e])?;
    let errors = super::preflight::check_rig(&rig);
    if errors.is_empty() {
        Ok(rig)
    } else {
        Err(errors)
    }
}

fn read_rig(path: &Path) -> Result<Source<Rig>, InputError> {
    let mut rig: Source<Rig> = read_yaml(path)?;
    if let Some(sim) = &mut rig.value.simulation {
        sim.firmware = relative(path, &sim.firmware);
    }
    for inst in &mut rig.value.instruments {
        if let Some(m) = &mut inst.mapping {
            m.dbc = relative(path, &m.dbc);
        }
    }
    Ok(rig)
}

/// Read a suite file.
pub fn load_suite(path: &Path) -> Result<Source<Suite>, InputError> {
    read_yaml(path)
}

/// A plan on its own, or a suite and its plans in order.
#[derive(Debug)]
pub struct PlanSet {
    /// The suite, when the file is one.
    pub suite: Option<Source<Suite>>,
    /// The plans, validated.
    pub plans: Vec<LoadedPlan>,
}

/// Load a plan, or every plan of a suite (the suite's parameter overrides, then `params` on
/// top), each validated against `rig` when given; every problem of every plan is returned.
pub fn load_plans(
    path: &Path,
    rig: Option<&Rig>,
    params: &BTreeMap<String, String>,
) -> Result<PlanSet, Vec<InputError>> {
    if !is_suite(path) {
        return Ok(PlanSet {
            suite: None,
            plans: vec![load_plan_with(path, rig, params)?],
        });
    }
    let suite = load_suite(path).map_err(|e| vec![e])?;
    let mut plans = Vec::new();
    let mut errors = Vec::new();
    for entry in &suite.value.plans {
        let mut overrides = entry.parameters.clone();
        overrides.extend(params.clone());
        match load_plan_with(&relative(path, &entry.plan), rig, &overrides) {
            Ok(p) => plans.push(p),
            Err(e) => errors.extend(e),
        }
    }
    if errors.is_empty() {
        Ok(PlanSet {
            suite: Some(suite),
            plans,
        })
    } else {
        Err(errors)
    }
}

/// Whether a YAML file is a suite (it has a top-level `suite:` key).
pub fn is_suite(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .map(|t| t.lines().any(|l| l.starts_with("suite:")))
        .unwrap_or(false)
}

/// Resolve `p` against the directory of the file `base`.
pub fn relative(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.parent().unwrap_or(Path::new(".")).join(p)
    }
}

/// Load a plan with its defaults; see [`load_plan_with`].
pub fn load_plan(path: &Path, rig: Option<&Rig>) -> Result<LoadedPlan, Vec<InputError>> {
    load_plan_with(path, rig, &BTreeMap::new())
}

/// Load a plan, its fixture, limit profile and DBC, substitute parameters (overrides win),
/// and validate everything (and, when a rig is given, every setpoint against its envelope).
/// All problems found are returned.
pub fn load_plan_with(
    path: &Path,
    rig: Option<&Rig>,
    overrides: &BTreeMap<String, String>,
) -> Result<LoadedPlan, Vec<InputError>> {
    let raw = read_text(path).map_err(|e| vec![e])?;
    let (text, parameters) = substitute(path, &raw, overrides).map_err(|e| vec![e])?;
    let plan: Source<Plan> = parse_yaml(path, text).map_err(|e| vec![e])?;
    let fixture_path = relative(path, &plan.value.dut);
    let fixture: Source<Fixture> = read_yaml(&fixture_path).map_err(|e| vec![e])?;
    let limits_ref = &plan.value.limits.value;
    let limits_path = if limits_ref.ends_with(".yaml") || limits_ref.contains('/') {
        relative(path, Path::new(limits_ref))
    } else {
        relative(
            &fixture_path,
            &Path::new("limits").join(format!("{limits_ref}.yaml")),
        )
    };
    if !limits_path.exists() {
        return Err(vec![plan.error(
            &plan.value.limits.referenced,
            format!(
                "limit profile `{limits_ref}` not found (looked for {})",
                limits_path.display()
            ),
        )]);
    }
    let limits = load_limits(&limits_path)?;
    let (dbc, dbc_path) = load_fixture_dbc(&fixture)?;

    let mut errors = super::preflight::check_fixture(&fixture);
    let mut signals = check_fixture(&fixture, &dbc, &mut errors);
    let modbus_map = match super::inverter::inverter_map(&fixture.path, &fixture.value) {
        Ok(map) => map,
        Err(e) => {
            errors.push(InputError::file(&fixture.path, e));
            None
        }
    };
    add_modbus_signals(&mut signals, modbus_map.as_ref());
    Checker {
        plan: &plan,
        fx: &fixture,
        limits: &limits,
        dbc: &dbc,
        signals: &signals,
        rig,
        errors: &mut errors,
    }
    .check();
    if errors.is_empty() {
        Ok(LoadedPlan {
            plan,
            fixture,
            limits,
            dbc,
            dbc_path,
            signals,
            parameters,
            modbus_map,
        })
    } else {
        Err(errors)
    }
}

/// The fixture's DBC (a missing file is reported at the fixture's `dbc:` line).
fn load_fixture_dbc(fixture: &Source<Fixture>) -> Result<(Dbc, PathBuf), Vec<InputError>> {
    let dbc_path = relative(&fixture.path, &fixture.value.dbc);
    if !dbc_path.is_file() {
        let (line, column) = super::preflight::locate(&fixture.text, "dbc", 0);
        return Err(vec![InputError::at(
            &fixture.path,
            &fixture.text,
            line,
            column,
            format!("DBC file {} not found", dbc_path.display()),
        )]);
    }
    let dbc =
        Dbc::from_file(&dbc_path).map_err(|e| vec![InputError::file(&dbc_path, e.to_string())])?;
    let dbc = super::inverter::with_inverter_dbc(&fixture.path, &fixture.value, dbc)
        .map_err(|e| vec![InputError::file(&fixture.path, e)])?;
    Ok((dbc, dbc_path))
}

/// Read a DUT fixture on its own and check it with its DBC, as a plan's load would.
pub fn load_fixture(path: &Path) -> Result<Source<Fixture>, Vec<InputError>> {
    let fixture: Source<Fixture> = read_yaml(path).map_err(|e| vec![e])?;
    let (dbc, _) = load_fixture_dbc(&fixture)?;
    let mut errors = super::preflight::check_fixture(&fixture);
    check_fixture(&fixture, &dbc, &mut errors);
    if let Err(e) = super::inverter::inverter_map(&fixture.path, &fixture.value) {
        errors.push(InputError::file(&fixture.path, e));
    }
    if errors.is_empty() {
        Ok(fixture)
    } else {
        Err(errors)
    }
}

/// Read a limit profile on its own.
pub fn load_limits(path: &Path) -> Result<Source<LimitProfile>, Vec<InputError>> {
    let limits = read_yaml(path).map_err(|e| vec![e])?;
    let errors = super::preflight::check_limits(&limits);
    if errors.is_empty() {
        Ok(limits)
    } else {
        Err(errors)
    }
}

fn hint<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    did_you_mean(word, candidates)
        .map(|b| format!("; did you mean `{b}`?"))
        .unwrap_or_default()
}

/// The Modbus map's registers as signals, for names the fixture's CAN signal map does not
/// give (a BMS that speaks to the inverter over Modbus only). Where both give a name, the
/// rig decides at run time: a Modbus link with `dut: true` reads it over Modbus.
fn add_modbus_signals(
    signals: &mut BTreeMap<String, SignalSource>,
    map: Option<&crate::modbus::RegisterMap>,
) {
    for (name, r) in map.into_iter().flat_map(|m| &m.registers) {
        signals
            .entry(name.clone())
            .or_insert_with(|| SignalSource::Modbus {
                unit: r.unit.clone(),
            });
    }
}

fn check_fixture(
    fx: &Source<Fixture>,
    dbc: &Dbc,
    errors: &mut Vec<InputError>,
) -> BTreeMap<String, SignalSource> {
    let mut signals = BTreeMap::new();
    for (name, dim) in INSTRUMENT_SIGNALS {
        signals.insert(name.to_string(), SignalSource::Instrument(dim));
    }
    // Bounded: a fixture beyond the limit is refused by the pre-flight, not looped over.
    let cells = fx
        .value
        .cells_in_series
        .min(super::preflight::MAX_CELLS_IN_SERIES);
    for n in 1..=cells {
        signals.insert(
            cell_current_signal(n),
            SignalSource::Instrument(Dimension::Current),
        );
    }
    for (logical, target) in &fx.value.signals {
        let Some((msg, sig)) = target.value.split_once('.') else {
            errors.push(fx.error(
                &target.referenced,
                format!("`{}` should be `Message.Signal`", target.value),
            ));
            continue;
        };
        match dbc.signal(&target.value) {
            Some(_) => {
                signals.insert(
                    logical.clone(),
                    SignalSource::Can {
                        message: msg.to_string(),
                        signal: sig.to_string(),
                    },
                );
            }
            None => {
                let all: Vec<String> = dbc
                    .messages()
                    .iter()
                    .flat_map(|m| {
                        m.signals
                            .iter()
                            .map(move |s| format!("{}.{}", m.name, s.name))
                    })
                    .collect();
                let h = hint(&target.value, all.iter().map(String::as_str));
                errors.push(fx.error(
                    &target.referenced,
                    format!("`{}` is not a signal in the DBC{h}", target.value),
                ));
            }
        }
    }
    for (key, p) in &fx.value.protections {
        let Some(dim) = protection_dimension(key) else {
            let h = hint(key, PROTECTION_KEYS);
            errors.push(fx.error(
                &p.referenced,
                format!(
                    "`{key}` is not a protection (known: {}){h}",
                    PROTECTION_KEYS.join(", ")
                ),
            ));
            continue;
        };
        for (what, q) in [("trip", p.value.trip.0), ("release", p.value.release.0)] {
            if q.dim != dim {
                errors.push(fx.error(
                    &p.referenced,
                    format!(
                        "{key}.{what} is {}, but {} is expected",
                        q.dim.name(),
                        dim.name()
                    ),
                ));
            }
        }
    }
    if let Some(sr) = &fx.value.state_request {
        match dbc.message(&sr.message).and_then(|m| m.signal(&sr.signal)) {
            None => errors.push(InputError::file(
                &fx.path,
                format!(
                    "state_request: `{}.{}` is not in the DBC",
                    sr.message, sr.signal
                ),
            )),
            Some(sig) => crate::plan::signal_map::check_state_labels(&fx.path, sr, sig, errors),
        }
        if let Some(confirm) = &sr.confirm {
            // The BMS's answer is read from its own CAN signals: the instrument readings are
            // no longer sampled in the safe state.
            let bms: BTreeMap<String, SignalSource> = signals
                .iter()
                .filter(|(_, src)| matches!(src, SignalSource::Can { .. }))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            for msg in condition_problems(&bms, dbc, &confirm.value) {
                errors.push(fx.error(
                    &confirm.referenced,
                    format!(
                        "state_request.confirm: {msg} (it reads the BMS's CAN signals of the \
                         `signals:` map)"
                    ),
                ));
            }
        }
    }
    signals
}

/// What is wrong with a condition over `signals`: each signal it names that is not there
/// (with a "did you mean"); when all are, an enum name their DBC value tables lack.
fn condition_problems(
    signals: &BTreeMap<String, SignalSource>,
    dbc: &Dbc,
    cond: &Condition,
) -> Vec<String> {
    let mut problems: Vec<String> = cond
        .signals()
        .into_iter()
        .filter(|s| !signals.contains_key(*s))
        .map(|s| {
            let h = hint(s, signals.keys().map(String::as_str));
            format!("signal `{s}` is not defined in the DUT fixture{h}")
        })
        .collect();
    if problems.is_empty() {
        if let Err(msg) = bind_with(signals, dbc, &mut cond.clone()) {
            problems.push(msg);
        }
    }
    problems
}

fn bind_with(
    signals: &BTreeMap<String, SignalSource>,
    dbc: &Dbc,
    c: &mut Condition,
) -> Result<(), String> {
    c.bind(&|sig, name| match signals.get(sig) {
        Some(SignalSource::Can { message, signal }) => {
            let s = dbc
                .message(message)
                .and_then(|m| m.signal(signal))
                .ok_or_else(|| format!("{message}.{signal} missing"))?;
            s.label_value(name).ok_or_else(|| {
                let known: Vec<&str> = s.value_table.values().map(String::as_str).collect();
                format!(
                    "`{name}` is not a value of `{sig}` (known: {})",
                    known.join(", ")
                )
            })
        }
        _ => Err(format!(
            "`{sig}` has no named values; compare it with a number or quantity"
        )),
    })
}

/// A condition with its enum names replaced by numbers from the DUT's DBC.
pub fn bind_condition(plan: &LoadedPlan, c: &Condition) -> Result<Condition, String> {
    let mut c = c.clone();
    bind_with(&plan.signals, &plan.dbc, &mut c)?;
    Ok(c)
}

/// The dimension of a logical signal, when its unit is known.
pub fn signal_dimension(
    signals: &BTreeMap<String, SignalSource>,
    dbc: &Dbc,
    name: &str,
) -> Option<Dimension> {
    match signals.get(name)? {
        SignalSource::Instrument(d) => Some(*d),
        SignalSource::Can { message, signal } => {
            let unit = dbc.message(message)?.signal(signal)?.unit.clone();
            crate::units::Quantity::parse(&format!("1 {unit}"))
                .ok()
                .map(|q| q.dim)
        }
        SignalSource::Modbus { unit } => crate::units::Quantity::parse(&format!("1 {unit}"))
            .ok()
            .map(|q| q.dim),
    }
}

#[cfg(test)]
mod tests {
    #[rstest::rstest]
    #[case("cells.cell[5].i", Some(5))]
    #[case("cells.cell[16].i", Some(16))]
    #[case("cells.cell[5].v_set", None)]
    #[case("cell[5].v", None)]
    #[case("cells.cell[x].i", None)]
    fn cell_current_signals(#[case] name: &str, #[case] cell: Option<u32>) {
        assert_eq!(cell_current_index(name), cell);
        if let Some(n) = cell {
            assert_eq!(cell_current_signal(n), name);
        }
    }

    use super::*;
    use rstest::rstest;

    /// The shipped simulated fixture with its `confirm:` line replaced (`None`: removed),
    /// written beside its absolute DBC path and loaded.
    fn fixture_with_confirm(
        name: &str,
        confirm: Option<&str>,
    ) -> Result<Source<Fixture>, Vec<InputError>> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(root.join("fixtures/sim-bms-16s-lfp.yaml")).unwrap();
        let line = "  confirm: bms.state == standby\n";
        assert!(
            text.contains(line),
            "the shipped fixture declares its confirm"
        );
        let text = text.replace(
            line,
            &confirm
                .map(|c| format!("  confirm: {c}\n"))
                .unwrap_or_default(),
        );
        let text = crate::plan::fixture::absolute_paths(&text, &root.join("fixtures"));
        let dir =
            std::env::temp_dir().join(format!("hilrig-confirm-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("fixture.yaml");
        std::fs::write(&path, text).unwrap();
        let r = load_fixture(&path);
        std::fs::remove_dir_all(&dir).unwrap();
        r
    }

    #[rstest]
    #[case::shipped("shipped", Some("bms.state == standby"), "")]
    #[case::none("none", None, "")]
    #[case::two_signals("two", Some("bms.state == standby and not bms.chg_fet"), "")]
    #[case::unknown_signal(
        "unknown",
        Some("bms.stat == standby"),
        "signal `bms.stat` is not defined in the DUT fixture; did you mean `bms.state`?"
    )]
    #[case::instrument_reading(
        "instrument",
        Some("supply.v < 1 V"),
        "signal `supply.v` is not defined"
    )]
    #[case::unknown_name(
        "name",
        Some("bms.state == asleep"),
        "`asleep` is not a value of `bms.state` (known: standby, charge, discharge, idle, fault)"
    )]
    fn a_state_request_confirm_names_the_fixtures_bms_signals(
        #[case] name: &str,
        #[case] confirm: Option<&str>,
        #[case] error: &str,
    ) {
        match fixture_with_confirm(name, confirm) {
            Ok(fx) => {
                assert!(error.is_empty(), "accepted, but `{error}` was expected");
                let parsed = fx.value.state_request.unwrap().confirm;
                assert_eq!(
                    parsed.map(|c| c.value),
                    confirm.map(|c| Condition::parse(c).unwrap())
                );
            }
            Err(errors) => {
                let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
                assert!(!error.is_empty(), "refused: {text:?}");
                assert_eq!(text.len(), 1, "{text:?}");
                assert!(
                    text[0].contains("state_request.confirm: ") && text[0].contains(error),
                    "{text:?}"
                );
                // Reported at the `confirm:` line of the fixture.
                let shipped = std::fs::read_to_string(
                    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sim-bms-16s-lfp.yaml"),
                )
                .unwrap();
                let line = 1 + shipped
                    .lines()
                    .position(|l| l.trim_start().starts_with("confirm:"))
                    .unwrap();
                assert!(
                    text[0].contains(&format!("fixture.yaml:{line}:")),
                    "{text:?}"
                );
            }
        }
    }

    #[rstest]
    #[case::near_name(
        "parameters:\n  rate: 20 mV/s\nsteps: []\n",
        "rat",
        "(declared: rate); did you mean `rate`?"
    )]
    #[case::no_parameters("steps: []\n", "cel", "(the plan declares no parameters)")]
    fn an_override_of_an_undeclared_parameter_says_what_is_declared(
        #[case] text: &str,
        #[case] name: &str,
        #[case] says: &str,
    ) {
        let over = BTreeMap::from([(name.to_string(), "3".to_string())]);
        let err = substitute(Path::new("p.yaml"), text, &over).unwrap_err();
        assert!(err.message.contains(says), "{}", err.message);
    }

    #[test]
    fn substitution_keeps_lines_and_reports_undefined_names() {
        let text =
            "parameters:\n  rate: 20 mV/s\nsteps:\n  - ramp: {rate: ${rate}}\n  - x: ${nope}\n";
        let err = substitute(Path::new("p.yaml"), text, &BTreeMap::new()).unwrap_err();
        assert_eq!((err.line, err.column), (5, 8));
        assert!(
            err.message.contains("`nope` is not declared"),
            "{}",
            err.message
        );
        let ok = "parameters:\n  rate: 20 mV/s\nsteps:\n  - ramp: {rate: ${rate}}\n";
        let (out, values) = substitute(Path::new("p.yaml"), ok, &BTreeMap::new()).unwrap();
        assert!(out.contains("{rate: 20 mV/s}"));
        assert_eq!(out.lines().count(), ok.lines().count());
        assert_eq!(values["rate"], "20 mV/s");
        let over = BTreeMap::from([("rate".to_string(), "5 mV/s".to_string())]);
        assert!(substitute(Path::new("p.yaml"), ok, &over)
            .unwrap()
            .0
            .contains("{rate: 5 mV/s}"));
        let bad = BTreeMap::from([("rte".to_string(), "5 mV/s".to_string())]);
        let e = substitute(Path::new("p.yaml"), ok, &bad).unwrap_err();
        assert!(e.message.contains("did you mean `rate`"), "{}", e.message);
    }
}
