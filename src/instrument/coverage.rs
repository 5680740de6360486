//! What a rig's SCPI instruments can and cannot do for its safety envelope, per channel:
//! a channel index the model lacks, an envelope beyond a channel's range (setpoints
//! beyond it are refused and the protection sits at the channel's ceiling), and a channel
//! that has no protection to program. `validate` and `instruments check` report these.

use std::path::Path;

use crate::rig::{Rig, Role};
use crate::scpi::{resolve_dialect, split_channel, Dialect, OcpKind, Role as DialectRole};

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Worth knowing; runs go ahead.
    Warning,
    /// A run would be refused or the bench is not protected.
    Error,
}

/// One finding about one instrument.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// Instrument id from the rig file.
    pub instrument: String,
    /// How much it matters.
    pub severity: Severity,
    /// What, for people.
    pub message: String,
}

/// Review every SCPI instrument of `rig` (dialects resolved relative to `base`, the rig
/// file's directory).
pub fn review(rig: &Rig, base: &Path) -> Vec<Finding> {
    let mut findings = Vec::new();
    // Scopes and short-circuit switches have dialects of their own shapes, checked when a
    // plan drives them.
    for inst in rig
        .instruments
        .iter()
        .filter(|i| !matches!(i.role, Role::Scope | Role::Short))
    {
        let (Some(name), Some(address)) = (inst.dialect.as_deref(), inst.address.as_deref()) else {
            continue;
        };
        let mut add = |severity, message: String| {
            findings.push(Finding {
                instrument: inst.id.clone(),
                severity,
                message,
            })
        };
        let dialect = match resolve_dialect(name, base) {
            Ok(d) => d,
            Err(e) => {
                add(Severity::Error, e.to_string());
                continue;
            }
        };
        let channel = match split_channel(address) {
            Ok((_, channel)) => channel,
            Err(e) => {
                add(Severity::Error, e.to_string());
                continue;
            }
        };
        let numbers = dialect.channel_numbers();
        let channel = channel.unwrap_or(numbers[0]);
        if inst.role == Role::CellSim {
            continue;
        }
        let Some(narrowed) = dialect.for_channel(channel) else {
            add(
                Severity::Error,
                format!(
                    "`channel={channel}`: dialect `{}` ({}) has channels {numbers:?} only",
                    dialect.id,
                    dialect.model_text()
                ),
            );
            continue;
        };
        for (severity, message) in envelope_fit(rig, inst.role, &narrowed, channel) {
            add(severity, message);
        }
    }
    findings
}

/// How one channel covers the envelope.
fn envelope_fit(
    rig: &Rig,
    role: Role,
    channel_dialect: &Dialect,
    channel: u32,
) -> Vec<(Severity, String)> {
    let mut out = Vec::new();
    let e = &rig.envelope;
    let r = &channel_dialect.ranges;
    let id = &channel_dialect.id;
    match (role, channel_dialect.role) {
        (Role::Supply, DialectRole::Supply) => {
            let v = e.max_pack_voltage.0;
            if v > r.max_voltage {
                out.push((
                    Severity::Warning,
                    format!(
                        "channel {channel} of `{id}` goes to {} V, below the envelope's \
                         max_pack_voltage {v} V: setpoints above {} V are refused and OVP is \
                         set at the channel's ceiling {} V",
                        r.max_voltage,
                        r.max_voltage,
                        r.ovp_ceiling()
                    ),
                ));
            }
            if channel_dialect.commands.set_ovp.is_none() {
                out.push((
                    Severity::Error,
                    format!(
                        "`{id}` has no `set_ovp`: the envelope's {v} V cannot be protected by \
                         the instrument"
                    ),
                ));
            }
            let i = e.max_charge_current.0;
            if i > r.max_current {
                out.push((
                    Severity::Warning,
                    format!(
                        "channel {channel} of `{id}` goes to {} A, below the envelope's \
                         max_charge_current {i} A",
                        r.max_current
                    ),
                ));
            }
            match channel_dialect.protection.ocp {
                OcpKind::Level if channel_dialect.commands.set_ocp.is_none() => out.push((
                    Severity::Error,
                    format!("`{id}` has no `set_ocp`: the envelope's {i} A cannot be protected"),
                )),
                OcpKind::None => out.push((
                    Severity::Warning,
                    format!(
                        "`{id}` has no over-current protection; the current setting is the \
                         only bound on {i} A"
                    ),
                )),
                _ => {}
            }
        }
        (Role::Load, DialectRole::Load) => {
            let i = e.max_discharge_current.0;
            if i > r.max_current {
                out.push((
                    Severity::Warning,
                    format!(
                        "channel {channel} of `{id}` goes to {} A, below the envelope's \
                         max_discharge_current {i} A",
                        r.max_current
                    ),
                ));
            }
        }
        (role, dialect_role) => out.push((
            Severity::Error,
            format!("the rig's role {role:?} does not match dialect `{id}` ({dialect_role})"),
        )),
    }
    out
}

/// Print what the rig's instruments cannot do for its envelope (per channel); false when
/// something would refuse a run or leave the envelope unprotected.
pub fn report(file: &Path, rig: &Rig) -> bool {
    let base = file.parent().unwrap_or(Path::new("."));
    let mut ok = true;
    for finding in review(rig, base) {
        let word = match finding.severity {
            Severity::Warning => "warning",
            Severity::Error => {
                ok = false;
                "error"
            }
        };
        crate::stdio::eprint(&format!(
            "{word}: {}: instrument `{}`: {}\n",
            file.display(),
            finding.instrument,
            finding.message
        ));
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::load_rig;

    fn rig_with(instruments: &str, max_v: &str) -> Rig {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("hilrig-coverage-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rig.yaml");
        std::fs::write(
            &path,
            format!(
                "station: s\ninstruments:\n{instruments}\nbuses: []\nenvelope:\n  \
                 max_pack_voltage: {max_v}\n  max_charge_current: 1 A\n  \
                 max_discharge_current: 1 A\n  cell_voltage_min: 2 V\n  cell_voltage_max: 4 V\n  \
                 temperature_min: 0 °C\n  temperature_max: 50 °C\nsample_period: 100 ms\n"
            ),
        )
        .unwrap();
        let rig = load_rig(&path).unwrap().value;
        std::fs::remove_dir_all(&dir).unwrap();
        rig
    }

    #[test]
    fn a_channel_the_model_lacks_is_an_error() {
        let rig = rig_with(
            "  - {id: psu, role: supply, dialect: rigol-dp800, address: \"tcp://h:5555?channel=4\"}",
            "20 V",
        );
        let findings = review(&rig, Path::new("."));
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].severity, Severity::Error);
        assert!(findings[0].message.contains("channel=4"), "{findings:?}");
    }

    #[test]
    fn no_envelope_fits_both_channels_of_an_e36312a() {
        let rig = rig_with(
            "  - {id: psu1, role: supply, dialect: keysight-e36300, address: \"tcp://h?channel=1\"}\n  \
             - {id: psu2, role: supply, dialect: keysight-e36300, address: \"tcp://h?channel=2\"}",
            "25 V",
        );
        let findings = review(&rig, Path::new("."));
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].instrument, "psu1");
        assert_eq!(findings[0].severity, Severity::Warning);
        assert!(findings[0].message.contains("6.6 V"), "{findings:?}");
    }
}
