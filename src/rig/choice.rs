//! Which bench a command runs on: `--rig`, else the `HILRIG_RIG` environment variable,
//! else the simulated bench `rig/sim.yaml`.
//!
//! A machine that names a real rig never falls back to the simulated one by accident.

use std::fmt;
use std::path::PathBuf;

/// Environment variable naming the default rig of this machine.
pub const RIG_ENV: &str = "HILRIG_RIG";

/// The simulated bench, used only when nothing names a rig.
pub const SIM_RIG: &str = "rig/sim.yaml";

/// Where the chosen rig path came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RigSource {
    /// The `--rig` option.
    Flag,
    /// The `HILRIG_RIG` environment variable.
    Env,
    /// Nothing named a rig: the simulated bench.
    Default,
}

impl fmt::Display for RigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RigSource::Flag => f.write_str("from --rig"),
            RigSource::Env => write!(f, "from {RIG_ENV}"),
            RigSource::Default => f.write_str("default, SIMULATED"),
        }
    }
}

/// A chosen rig path and its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RigChoice {
    /// Path of the rig file.
    pub path: PathBuf,
    /// Where the path came from.
    pub source: RigSource,
}

impl fmt::Display for RigChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rig {} ({})", self.path.display(), self.source)
    }
}

/// Choose the rig from `--rig` (`flag`), else the value of `HILRIG_RIG` (`env`, empty is
/// unset), else the simulated bench.
pub fn choose(flag: Option<PathBuf>, env: Option<String>) -> RigChoice {
    if let Some(path) = flag {
        return RigChoice {
            path,
            source: RigSource::Flag,
        };
    }
    match env.filter(|v| !v.trim().is_empty()) {
        Some(v) => RigChoice {
            path: PathBuf::from(v.trim()),
            source: RigSource::Env,
        },
        None => RigChoice {
            path: PathBuf::from(SIM_RIG),
            source: RigSource::Default,
        },
    }
}

/// [`choose`] with this process's `HILRIG_RIG`.
pub fn choose_from_env(flag: Option<PathBuf>) -> RigChoice {
    choose(flag, std::env::var(RIG_ENV).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(Some("a.yaml"), Some("b.yaml"), "a.yaml", RigSource::Flag)]
    #[case(
        None,
        Some("rig/lab-example.yaml"),
        "rig/lab-example.yaml",
        RigSource::Env
    )]
    #[case(None, Some("  "), SIM_RIG, RigSource::Default)]
    #[case(None, None, SIM_RIG, RigSource::Default)]
    fn chooses_in_order(
        #[case] flag: Option<&str>,
        #[case] env: Option<&str>,
        #[case] path: &str,
        #[case] source: RigSource,
    ) {
        let c = choose(flag.map(PathBuf::from), env.map(String::from));
        assert_eq!(
            c,
            RigChoice {
                path: PathBuf::from(path),
                source
            }
        );
    }

    #[test]
    fn names_rig_and_source() {
        let c = choose(None, Some("rig/lab-example.yaml".into()));
        assert_eq!(c.to_string(), "rig rig/lab-example.yaml (from HILRIG_RIG)");
    }
}
