//! Reading dialect YAML: names, command templates (one, a list, or ranged), quantities with
//! units, fractions, durations and accuracy specifications.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::{AccuracySpec, QuantityAccuracy, RangedSteps, Template};
use crate::units::parse_quantity;

/// One name or a list of names.
pub(super) fn de_names<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct NamesVisitor;
    impl<'de> Visitor<'de> for NamesVisitor {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a name or a list of names")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(vec![v.to_string()])
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(vec![v.to_string()])
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(vec![v.to_string()])
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut names = Vec::new();
            while let Some(name) = seq.next_element::<String>()? {
                names.push(name);
            }
            Ok(names)
        }
    }
    d.deserialize_any(NamesVisitor)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRanged {
    pub(super) ranges: Vec<RawRange>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRange {
    pub(super) up_to: Scalar,
    #[serde(deserialize_with = "de_steps")]
    pub(super) send: Vec<String>,
}

/// A command or a list of commands.
pub(super) fn de_steps<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct StepsVisitor;
    impl<'de> Visitor<'de> for StepsVisitor {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a command or a list of commands")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(vec![v.to_string()])
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut steps = Vec::new();
            while let Some(step) = seq.next_element::<String>()? {
                steps.push(step);
            }
            Ok(steps)
        }
    }
    d.deserialize_any(StepsVisitor)
}

/// A template: a command, a list of commands, or `{ranges: [...]}`.
pub(super) fn de_template<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Template>, D::Error> {
    struct TemplateVisitor;
    impl<'de> Visitor<'de> for TemplateVisitor {
        type Value = Option<Template>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a command, a list of commands, or `ranges:` of commands")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(TemplateVisitor)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(Template::one(v)))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            let steps = StepsDeserialize::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
            Ok(Some(Template {
                steps: steps.0,
                ranges: Vec::new(),
            }))
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            let raw = RawRanged::deserialize(de::value::MapAccessDeserializer::new(map))?;
            let mut ranges = Vec::new();
            for r in raw.ranges {
                let up_to = match r.up_to {
                    Scalar::Number(v) => v,
                    Scalar::Text(text) => {
                        parse_quantity(&text, None)
                            .map_err(de::Error::custom)?
                            .value
                    }
                };
                ranges.push(RangedSteps {
                    up_to,
                    steps: r.send,
                });
            }
            if ranges.is_empty() {
                return Err(de::Error::custom("`ranges` is empty"));
            }
            Ok(Some(Template {
                steps: Vec::new(),
                ranges,
            }))
        }
    }
    d.deserialize_option(TemplateVisitor)
}

/// A list of commands, through [`de_steps`].
pub(super) struct StepsDeserialize(Vec<String>);

impl<'de> Deserialize<'de> for StepsDeserialize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        de_steps(d).map(StepsDeserialize)
    }
}

/// A YAML scalar that may be a number or text.
pub(super) enum Scalar {
    Number(f64),
    Text(String),
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl Visitor<'_> for ScalarVisitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number or a quantity such as `80 V`")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar::Number(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Number(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar::Number(v as f64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Text(v.to_string()))
            }
        }
        d.deserialize_any(ScalarVisitor)
    }
}

/// A non-negative number, either bare or with `unit` (SI prefixes allowed: `80 mV`).
pub(super) fn quantity<E: de::Error>(scalar: Scalar, unit: &str) -> Result<f64, E> {
    let value = match scalar {
        Scalar::Number(v) => v,
        Scalar::Text(text) => parse_quantity(&text, Some(unit)).map_err(E::custom)?.value,
    };
    if !value.is_finite() || value < 0.0 {
        return Err(E::custom(format!(
            "expected a value of zero or more {unit}, got {value}"
        )));
    }
    Ok(value)
}

pub(super) fn de_volts<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    quantity(Scalar::deserialize(d)?, "V")
}

pub(super) fn de_amps<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    quantity(Scalar::deserialize(d)?, "A")
}

pub(super) fn de_opt_volts<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Option::<Scalar>::deserialize(d)?
        .map(|s| quantity(s, "V"))
        .transpose()
}

pub(super) fn de_opt_amps<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Option::<Scalar>::deserialize(d)?
        .map(|s| quantity(s, "A"))
        .transpose()
}

/// A fraction: `0.001` or `0.1 %`.
pub(super) fn fraction<E: de::Error>(scalar: Scalar) -> Result<f64, E> {
    let value = match scalar {
        Scalar::Number(v) => v,
        Scalar::Text(text) => match text.trim().strip_suffix('%') {
            Some(percent) => percent
                .trim()
                .parse::<f64>()
                .map(|p| p / 100.0)
                .map_err(|_| E::custom(format!("`{text}` is not a percentage such as `0.1 %`")))?,
            None => text.trim().parse::<f64>().map_err(|_| {
                E::custom(format!(
                    "`{text}` is not a fraction such as `0.001` or `0.1 %`"
                ))
            })?,
        },
    };
    if !value.is_finite() || value < 0.0 {
        return Err(E::custom(format!(
            "expected a fraction of zero or more, got {value}"
        )));
    }
    Ok(value)
}

/// A duration: `10 ms`, `0.5 s`, `200 us` (the plans' syntax, [`crate::units::parse_duration`]),
/// or a bare number of seconds.
pub(super) fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let seconds = match Scalar::deserialize(d)? {
        Scalar::Number(v) => v,
        Scalar::Text(text) => match text.trim().parse::<f64>() {
            Ok(v) => v,
            Err(_) => {
                return crate::units::parse_duration(&text).map_err(|e| {
                    de::Error::custom(format!(
                        "`{}` is not a duration such as `10 ms` or `1 s`: {e}",
                        text.trim()
                    ))
                })
            }
        },
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| {
        de::Error::custom(format!(
            "expected a duration of zero or more, got {seconds} s"
        ))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSpec {
    pub(super) gain: Scalar,
    pub(super) offset: Scalar,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawQuantityAccuracy {
    #[serde(default)]
    pub(super) set: Option<RawSpec>,
    pub(super) measure: RawSpec,
}

pub(super) fn quantity_accuracy<'de, D: Deserializer<'de>>(
    d: D,
    unit: &str,
) -> Result<QuantityAccuracy, D::Error> {
    let raw = RawQuantityAccuracy::deserialize(d)?;
    let spec = |raw: RawSpec| -> Result<AccuracySpec, D::Error> {
        Ok(AccuracySpec {
            gain: fraction(raw.gain)?,
            offset: quantity(raw.offset, unit)?,
        })
    };
    Ok(QuantityAccuracy {
        set: raw.set.map(spec).transpose()?,
        measure: spec(raw.measure)?,
    })
}

pub(super) fn de_voltage_accuracy<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<QuantityAccuracy, D::Error> {
    quantity_accuracy(d, "V")
}

pub(super) fn de_current_accuracy<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<QuantityAccuracy, D::Error> {
    quantity_accuracy(d, "A")
}
