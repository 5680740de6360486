//! Switch-unit dialects: how a relay or actuator unit spells closing, opening and reading
//! back one channel, for the rig's short-circuit switch (`role: short`).
//!
//! A switch unit has no setpoint and no range of values, only channel numbers, so its
//! dialect is its own small shape, read from the same `rig/dialects/` directory. Templates
//! take `{ch}` (the channel number).

use serde::Deserialize;

use super::yaml::de_names;
use super::{default_error_query, default_terminator, identity_matches, Role};
use crate::scpi::ScpiError;

/// The switch dialects shipped with hilrig, as `(id, yaml)`.
const BUILTIN: &[(&str, &str)] = &[(
    "keysight-daq970a",
    include_str!("../../../rig/dialects/keysight-daq970a.yaml"),
)];

/// Command templates of a switch unit.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchCommands {
    /// Close a channel.
    pub close: String,
    /// Open a channel.
    pub open: String,
    /// Query whether a channel is closed.
    pub closed: String,
}

/// The replies of the `closed` query.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchReplies {
    /// The channel is closed.
    pub closed: String,
    /// The channel is open.
    pub open: String,
}

/// A block of consecutive channel numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelBlock {
    /// First channel.
    pub from: u32,
    /// Last channel.
    pub to: u32,
}

/// A switch unit's dialect.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchDialect {
    /// Short name used in rig files (`keysight-daq970a`).
    pub id: String,
    /// Makers as in the first `*IDN?` field (any of them, as a substring, any case).
    #[serde(deserialize_with = "de_names")]
    pub maker: Vec<String>,
    /// Models as in the second `*IDN?` field.
    #[serde(deserialize_with = "de_names")]
    pub model: Vec<String>,
    /// Always `short`.
    pub role: Role,
    /// Raw-socket TCP port used when an address gives none.
    pub default_port: u16,
    /// Message terminator.
    #[serde(default = "default_terminator")]
    pub terminator: String,
    /// Query that reads one error-queue entry.
    #[serde(default = "default_error_query")]
    pub error_query: String,
    /// Commands sent (and error-checked) right after connecting.
    #[serde(default)]
    pub on_connect: Vec<String>,
    /// Command templates.
    pub commands: SwitchCommands,
    /// Replies of the `closed` query.
    pub replies: SwitchReplies,
    /// Channel numbers the unit accepts.
    pub channels: Vec<ChannelBlock>,
    /// Where this dialect was read from.
    #[serde(skip)]
    pub origin: String,
}

/// A channel the switch dialect does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("channel {channel} is not a channel of dialect `{dialect}` ({channels}); nothing was sent")]
pub struct SwitchChannelError {
    /// Dialect id.
    pub dialect: String,
    /// The channel asked for.
    pub channel: u32,
    /// The channels it has, in words.
    pub channels: String,
}

impl SwitchDialect {
    /// Read a switch dialect from YAML text; `origin` appears in errors.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Self, ScpiError> {
        let bad = |message: String| ScpiError::Dialect {
            origin: origin.to_string(),
            message,
        };
        let mut d: SwitchDialect = serde_saphyr::from_str(text).map_err(|e| bad(e.to_string()))?;
        d.origin = origin.to_string();
        d.validate().map_err(bad)?;
        Ok(d)
    }

    fn validate(&self) -> Result<(), String> {
        if self.role != Role::Short {
            return Err(format!(
                "`role: {}`: a switch unit's dialect has `role: short`",
                self.role
            ));
        }
        if self.maker.is_empty() || self.model.is_empty() {
            return Err("`maker` and `model` need at least one name each".into());
        }
        if self.channels.is_empty() || self.channels.iter().any(|b| b.from > b.to) {
            return Err("`channels` needs at least one block with from <= to".into());
        }
        let c = &self.commands;
        for (name, t, query) in [
            ("close", &c.close, false),
            ("open", &c.open, false),
            ("closed", &c.closed, true),
        ] {
            if super::is_query(t) != query {
                return Err(format!(
                    "`commands.{name}` (`{t}`) {} a query",
                    if query { "must be" } else { "must not be" }
                ));
            }
            if !t.contains("{ch}") {
                return Err(format!("`commands.{name}` (`{t}`) has no `{{ch}}`"));
            }
        }
        if self.replies.closed.trim() == self.replies.open.trim() {
            return Err("`replies.closed` and `replies.open` are the same".into());
        }
        Ok(())
    }

    /// Does an `*IDN?` reply name one of this dialect's makers and models?
    pub fn matches_identity(&self, idn: &str) -> bool {
        identity_matches(&self.maker, &self.model, idn)
    }

    /// Check a channel number against the dialect's channels.
    pub fn check_channel(&self, ch: u32) -> Result<(), SwitchChannelError> {
        if self.channels.iter().any(|b| (b.from..=b.to).contains(&ch)) {
            return Ok(());
        }
        let channels = self
            .channels
            .iter()
            .map(|b| format!("{}..={}", b.from, b.to))
            .collect::<Vec<_>>()
            .join(", ");
        Err(SwitchChannelError {
            dialect: self.id.clone(),
            channel: ch,
            channels,
        })
    }

    /// A command template with the channel filled in.
    pub fn render(&self, template: &str, ch: u32) -> String {
        template.replace("{ch}", &ch.to_string())
    }

    /// What a `closed` reply says: Some(true) closed, Some(false) open, None neither.
    pub fn parse_closed(&self, reply: &str) -> Option<bool> {
        let r = reply.trim().trim_matches('"');
        if r == self.replies.closed.trim() {
            Some(true)
        } else if r == self.replies.open.trim() {
            Some(false)
        } else {
            None
        }
    }
}

/// The shipped switch dialect with this id.
pub fn builtin_switch_dialect(id: &str) -> Option<SwitchDialect> {
    BUILTIN
        .iter()
        .find(|(builtin_id, _)| *builtin_id == id)
        .and_then(|(id, text)| SwitchDialect::from_yaml(text, &format!("builtin:{id}")).ok())
}

/// The ids of the shipped switch dialects.
pub fn builtin_switch_dialect_ids() -> Vec<&'static str> {
    BUILTIN.iter().map(|(id, _)| *id).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn daq() -> SwitchDialect {
        builtin_switch_dialect("keysight-daq970a").expect("shipped")
    }

    #[test]
    fn every_shipped_switch_dialect_loads() {
        for (id, text) in BUILTIN {
            let d = SwitchDialect::from_yaml(text, id).unwrap_or_else(|e| panic!("{id}: {e}"));
            assert_eq!(d.id, *id);
        }
    }

    #[rstest]
    #[case(101, true)]
    #[case(120, true)]
    #[case(121, false)]
    #[case(100, false)]
    #[case(0, false)]
    #[case(320, true)]
    #[case(401, false)]
    fn channels_are_checked(#[case] ch: u32, #[case] ok: bool) {
        let r = daq().check_channel(ch);
        assert_eq!(r.is_ok(), ok, "{r:?}");
        if let Err(e) = r {
            assert!(e.to_string().contains("101..=120"), "{e}");
        }
    }

    #[rstest]
    #[case("1", Some(true))]
    #[case("0\n", Some(false))]
    #[case(" 1 ", Some(true))]
    #[case("1,0", None)]
    #[case("", None)]
    fn closed_replies(#[case] reply: &str, #[case] expect: Option<bool>) {
        assert_eq!(daq().parse_closed(reply), expect);
    }

    #[test]
    fn identity_and_rendering() {
        let d = daq();
        assert!(d.matches_identity("Keysight Technologies,DAQ970A,MY58001234,A.03.01"));
        assert!(d.matches_identity("Agilent Technologies,34970A,0,13-2-2"));
        assert!(!d.matches_identity("RIGOL TECHNOLOGIES,DL3021,X,1"));
        assert_eq!(d.render(&d.commands.close, 101), "ROUT:CLOS (@101)");
        assert_eq!(d.render(&d.commands.closed, 205), "ROUT:CLOS? (@205)");
    }

    #[rstest]
    #[case::not_short("role: short", "role: scope", "role: short")]
    #[case::no_channel_in_close("ROUT:CLOS (@{ch})", "ROUT:CLOS (@101)", "{ch}")]
    #[case::close_as_query(
        "close: \"ROUT:CLOS (@{ch})\"",
        "close: \"ROUT:CLOS? (@{ch})\"",
        "query"
    )]
    #[case::same_replies("open: \"0\"", "open: \"1\"", "the same")]
    #[case::reversed_block("{from: 101, to: 120}", "{from: 120, to: 101}", "from <= to")]
    fn bad_dialects_are_refused(#[case] from: &str, #[case] to: &str, #[case] says: &str) {
        let text = BUILTIN[0].1.replacen(from, to, 1);
        assert_ne!(text, BUILTIN[0].1, "the case changes the file");
        let err = SwitchDialect::from_yaml(&text, "t.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains(says), "{err}");
        assert!(err.contains("t.yaml"), "{err}");
    }
}
