//! Which bench a command runs on: `--rig`, else the `HILRIG_RIG` environment variable, else
//! `rig = "…"` in `./hilrig.toml`, else in the user's `hilrig.toml`
//! (`$XDG_CONFIG_HOME/hilrig/hilrig.toml`, or `~/.config/hilrig/hilrig.toml`), else the
//! simulated bench `rig/sim.yaml`.
//!
//! A machine that names a real rig never falls back to the simulated one: a rig file named by
//! `HILRIG_RIG` or a `hilrig.toml` that does not load is an error naming where the name came
//! from. A `hilrig.toml` is read only when neither `--rig` nor `HILRIG_RIG` names a rig; its
//! `rig` path is relative to the toml file's directory; a syntax error is reported as
//! `file:line:column`, an unknown key is an error with the closest known key. A
//! `hilrig.toml` without `rig` passes the choice on to the next place.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::plan::InputError;

/// Environment variable naming the default rig of this machine.
pub const RIG_ENV: &str = "HILRIG_RIG";

/// The simulated bench, used only when nothing names a rig.
pub const SIM_RIG: &str = "rig/sim.yaml";

/// File name of the per-directory and per-user settings.
pub const CONFIG_FILE: &str = "hilrig.toml";

/// Keys a `hilrig.toml` may hold.
const CONFIG_KEYS: &[&str] = &["rig"];

/// Where the chosen rig path came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RigSource {
    /// The `--rig` option.
    Flag,
    /// The `HILRIG_RIG` environment variable.
    Env,
    /// `rig` in this `hilrig.toml` (the working directory's or the user's).
    Config(PathBuf),
    /// Nothing named a rig: the simulated bench.
    Default,
}

impl fmt::Display for RigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RigSource::Flag => f.write_str("from --rig"),
            RigSource::Env => write!(f, "from {RIG_ENV}"),
            RigSource::Config(p) => write!(f, "from {}", p.display()),
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

/// Everything the choice looks at, so that it can be tested without this process's state.
#[derive(Debug, Clone, Default)]
pub struct ChoiceInputs {
    /// The `--rig` option.
    pub flag: Option<PathBuf>,
    /// The value of `HILRIG_RIG` (empty is unset).
    pub env: Option<String>,
    /// The working directory's `hilrig.toml` (read when it exists).
    pub local_config: Option<PathBuf>,
    /// The user's `hilrig.toml` (read when it exists).
    pub user_config: Option<PathBuf>,
}

impl ChoiceInputs {
    /// This process's inputs: `./hilrig.toml` and the user's config directory.
    pub fn from_process(flag: Option<PathBuf>) -> Self {
        Self {
            flag,
            env: std::env::var(RIG_ENV).ok(),
            local_config: Some(PathBuf::from(CONFIG_FILE)),
            user_config: user_config_path(
                std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from),
                std::env::var_os("HOME").map(PathBuf::from),
            ),
        }
    }
}

/// The user's `hilrig.toml`: under `$XDG_CONFIG_HOME` when set (and absolute), else under
/// `~/.config`.
pub fn user_config_path(xdg: Option<PathBuf>, home: Option<PathBuf>) -> Option<PathBuf> {
    let base = xdg.filter(|p| p.is_absolute()).or_else(|| {
        home.filter(|h| !h.as_os_str().is_empty())
            .map(|h| h.join(".config"))
    })?;
    Some(base.join("hilrig").join(CONFIG_FILE))
}

/// Choose the rig: `--rig`, `HILRIG_RIG`, `./hilrig.toml`, the user's `hilrig.toml`, the
/// simulated bench, in that order. Err: a `hilrig.toml` that cannot be read or is invalid.
pub fn choose(inputs: ChoiceInputs) -> Result<RigChoice, InputError> {
    if let Some(path) = inputs.flag {
        return Ok(RigChoice {
            path,
            source: RigSource::Flag,
        });
    }
    if let Some(v) = inputs.env.filter(|v| !v.trim().is_empty()) {
        return Ok(RigChoice {
            path: PathBuf::from(v.trim()),
            source: RigSource::Env,
        });
    }
    for file in [inputs.local_config, inputs.user_config]
        .into_iter()
        .flatten()
    {
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(InputError::file(&file, format!("cannot read: {e}"))),
        };
        if let Some(rig) = parse_config(&text, &file)? {
            let dir = file.parent().unwrap_or(Path::new(""));
            return Ok(RigChoice {
                path: dir.join(rig),
                source: RigSource::Config(file),
            });
        }
    }
    Ok(RigChoice {
        path: PathBuf::from(SIM_RIG),
        source: RigSource::Default,
    })
}

/// [`choose`] with this process's environment, working directory and user config.
pub fn choose_from_env(flag: Option<PathBuf>) -> Result<RigChoice, InputError> {
    choose(ChoiceInputs::from_process(flag))
}

/// The `rig` of a `hilrig.toml` (as written, relative to its directory), or None when it
/// names none. Errors point at the file, line and column.
pub fn parse_config(text: &str, file: &Path) -> Result<Option<PathBuf>, InputError> {
    type Table = BTreeMap<toml::Spanned<String>, toml::Spanned<toml::Value>>;
    let at = |offset: usize, message: String| {
        let (line, column) = line_column(text, offset);
        InputError::at(file, text, line, column, message)
    };
    let table: Table = toml::from_str(text).map_err(|e| match e.span() {
        Some(s) => at(s.start, e.message().trim().to_string()),
        None => InputError::file(file, e.message().trim()),
    })?;
    let mut rig = None;
    for (key, value) in table {
        match key.get_ref().as_str() {
            "rig" => match value.get_ref() {
                toml::Value::String(s) if !s.trim().is_empty() => rig = Some(PathBuf::from(s)),
                _ => {
                    return Err(at(
                        value.span().start,
                        "`rig` must be the path of a rig file, as a non-empty string".into(),
                    ))
                }
            },
            other => {
                let hint = crate::plan::error::did_you_mean(other, CONFIG_KEYS.iter().copied())
                    .map(|k| format!("; did you mean `{k}`?"))
                    .unwrap_or_else(|| format!("; known keys: {}", CONFIG_KEYS.join(", ")));
                return Err(at(key.span().start, format!("unknown key `{other}`{hint}")));
            }
        }
    }
    Ok(rig)
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    /// A fresh directory under the system temp dir.
    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("hilrig-choice-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn inputs(flag: Option<&str>, env: Option<&str>) -> ChoiceInputs {
        ChoiceInputs {
            flag: flag.map(PathBuf::from),
            env: env.map(String::from),
            ..Default::default()
        }
    }

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
        let c = choose(inputs(flag, env)).unwrap();
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
        let c = choose(inputs(None, Some("rig/lab-example.yaml"))).unwrap();
        assert_eq!(c.to_string(), "rig rig/lab-example.yaml (from HILRIG_RIG)");
    }

    /// Flag > env > ./hilrig.toml > user hilrig.toml > simulated; each toml's path is
    /// relative to its own directory, and a toml without `rig` passes on.
    #[rstest]
    #[case::flag_wins(
        Some("f.yaml"),
        Some("e.yaml"),
        Some("rig = \"l.yaml\""),
        Some("rig = \"u.yaml\""),
        "f.yaml",
        "flag"
    )]
    #[case::env_over_toml(
        None,
        Some("e.yaml"),
        Some("rig = \"l.yaml\""),
        Some("rig = \"u.yaml\""),
        "e.yaml",
        "env"
    )]
    #[case::local_over_user(
        None,
        None,
        Some("rig = \"l.yaml\""),
        Some("rig = \"u.yaml\""),
        "local/l.yaml",
        "local"
    )]
    #[case::user(None, None, None, Some("rig = \"u.yaml\""), "user/u.yaml", "user")]
    #[case::local_without_rig(
        None,
        None,
        Some("# nothing here"),
        Some("rig = \"u.yaml\""),
        "user/u.yaml",
        "user"
    )]
    #[case::nothing(None, None, None, None, SIM_RIG, "default")]
    fn tomls_come_after_flag_and_env(
        #[case] flag: Option<&str>,
        #[case] env: Option<&str>,
        #[case] local: Option<&str>,
        #[case] user: Option<&str>,
        #[case] want: &str,
        #[case] source: &str,
    ) {
        let d = scratch(&format!("order-{source}-{want}").replace('/', "_"));
        let write = |sub: &str, text: Option<&str>| {
            std::fs::create_dir_all(d.join(sub)).unwrap();
            let f = d.join(sub).join(CONFIG_FILE);
            if let Some(t) = text {
                std::fs::write(&f, t).unwrap();
            }
            f
        };
        let (local_file, user_file) = (write("local", local), write("user", user));
        let c = choose(ChoiceInputs {
            local_config: Some(local_file.clone()),
            user_config: Some(user_file.clone()),
            ..inputs(flag, env)
        })
        .unwrap();
        let want_path = if want.contains('/') && source != "default" {
            d.join(want)
        } else {
            PathBuf::from(want)
        };
        assert_eq!(c.path, want_path);
        let want_source = match source {
            "flag" => RigSource::Flag,
            "env" => RigSource::Env,
            "local" => RigSource::Config(local_file),
            "user" => RigSource::Config(user_file),
            _ => RigSource::Default,
        };
        assert_eq!(c.source, want_source);
    }

    #[rstest]
    #[case::syntax("rig = \"a.yaml\"\nrig2 = = 3\n", 2, 0, "")]
    #[case::unknown_key("rgi = \"a.yaml\"\n", 1, 1, "unknown key `rgi`; did you mean `rig`?")]
    #[case::far_key(
        "\n  station = \"x\"\n",
        2,
        3,
        "unknown key `station`; known keys: rig"
    )]
    #[case::not_a_string("rig = 3\n", 1, 7, "`rig` must be the path")]
    fn bad_tomls_say_where(
        #[case] text: &str,
        #[case] line: usize,
        #[case] column: usize,
        #[case] message: &str,
    ) {
        let e = parse_config(text, Path::new("hilrig.toml")).unwrap_err();
        assert_eq!(e.file, Path::new("hilrig.toml"));
        assert_eq!(e.line, line, "{e}");
        if column > 0 {
            assert_eq!(e.column, column, "{e}");
        }
        assert!(e.message.starts_with(message), "{e}");
        assert!(
            e.to_string().contains(&format!("hilrig.toml:{line}:")),
            "{e}"
        );
    }

    #[rstest]
    #[case(Some("/x"), Some("/home/u"), Some("/x/hilrig/hilrig.toml"))]
    #[case(None, Some("/home/u"), Some("/home/u/.config/hilrig/hilrig.toml"))]
    #[case(
        Some("relative"),
        Some("/home/u"),
        Some("/home/u/.config/hilrig/hilrig.toml")
    )]
    #[case(None, None, None)]
    fn user_config_lives_in_the_config_dir(
        #[case] xdg: Option<&str>,
        #[case] home: Option<&str>,
        #[case] want: Option<&str>,
    ) {
        assert_eq!(
            user_config_path(xdg.map(PathBuf::from), home.map(PathBuf::from)),
            want.map(PathBuf::from)
        );
    }
}
