//! Conditions over named signals: `bms.chg_fet == open`, `supply.i < 0.2 A`,
//! `cell[5].v > 3.6 V and bms.fault.ov`.
//!
//! Grammar: `or` of `and` of terms; a term is `not TERM`, `( EXPR )`, a bare signal
//! (true when non-zero), or `SIGNAL OP VALUE` where OP is one of `== != < <= > >=` and
//! VALUE is a quantity with a unit, a plain number, `true`/`false`, or an enum name from
//! the DBC value table of the signal. Enum names are bound to numbers when the plan is
//! validated against the DUT fixture.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Deserializer};

use crate::units::Quantity;

/// Signals of the rig's scope, read from its captured record (`capture.i`, amperes,
/// discharge positive).
pub const CAPTURE_PREFIX: &str = "capture.";

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl Op {
    fn symbol(self) -> &'static str {
        match self {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }

    /// Apply to two numbers (equality within 1e-9 relative).
    pub fn apply(self, a: f64, b: f64) -> bool {
        let eq = (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0);
        match self {
            Op::Eq => eq,
            Op::Ne => !eq,
            Op::Lt => a < b && !eq,
            Op::Le => a < b || eq,
            Op::Gt => a > b && !eq,
            Op::Ge => a > b || eq,
        }
    }
}

/// The right-hand side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A number, in SI units when it came with a unit.
    Number(f64),
    /// A quantity as written (kept for its dimension).
    Quantity(Quantity),
    /// An enum name, to be bound from the DBC value table.
    Name(String),
}

/// A parsed condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// A signal compared with a value.
    Compare {
        /// Logical signal name.
        signal: String,
        /// Operator.
        op: Op,
        /// Value.
        value: Value,
    },
    /// A signal that is true when non-zero.
    Truthy(String),
    /// Negation.
    Not(Box<Condition>),
    /// Both.
    And(Box<Condition>, Box<Condition>),
    /// Either.
    Or(Box<Condition>, Box<Condition>),
}

/// A signal's current value as the runner knows it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// Physical value.
    pub value: f64,
}

impl Condition {
    /// Parse a condition; the error says what was expected and at which character.
    pub fn parse(text: &str) -> Result<Condition, String> {
        let tokens = tokenize(text)?;
        // Bounded size and nesting keep every recursive walk (parse, bind, eval, drop) far
        // from the stack's end, whatever a file holds.
        if tokens.len() > MAX_TOKENS {
            return Err(format!(
                "condition has {} words and symbols; at most {MAX_TOKENS} are accepted",
                tokens.len()
            ));
        }
        let mut p = Parser {
            tokens,
            pos: 0,
            text,
            depth: 0,
        };
        let c = p.or()?;
        if p.pos < p.tokens.len() {
            return Err(format!(
                "unexpected `{}` in condition `{text}`",
                p.tokens[p.pos]
            ));
        }
        Ok(c)
    }

    /// Whether the condition reads a captured waveform (`capture.i`): only a trip's
    /// `detect` may, and it is then judged on the scope's record, not on live signals.
    pub fn on_capture(&self) -> bool {
        self.signals().iter().any(|s| s.starts_with(CAPTURE_PREFIX))
    }

    /// Every signal named in the condition.
    pub fn signals(&self) -> BTreeSet<&str> {
        let mut out = BTreeSet::new();
        self.collect(&mut out);
        out
    }

    fn collect<'a>(&'a self, out: &mut BTreeSet<&'a str>) {
        match self {
            Condition::Compare { signal, .. } | Condition::Truthy(signal) => {
                out.insert(signal);
            }
            Condition::Not(c) => c.collect(out),
            Condition::And(a, b) | Condition::Or(a, b) => {
                a.collect(out);
                b.collect(out);
            }
        }
    }

    /// Replace enum names by numbers using `bind(signal, name)`; the error names what failed.
    pub fn bind(&mut self, bind: &dyn Fn(&str, &str) -> Result<f64, String>) -> Result<(), String> {
        match self {
            Condition::Compare { signal, value, .. } => {
                if let Value::Name(name) = value {
                    *value = Value::Number(bind(signal, name)?);
                }
                Ok(())
            }
            Condition::Truthy(_) => Ok(()),
            Condition::Not(c) => c.bind(bind),
            Condition::And(a, b) | Condition::Or(a, b) => {
                a.bind(bind)?;
                b.bind(bind)
            }
        }
    }

    /// Evaluate; `None` while any signal involved has no value yet.
    pub fn eval(&self, read: &dyn Fn(&str) -> Option<Reading>) -> Option<bool> {
        match self {
            Condition::Compare { signal, op, value } => {
                let r = read(signal)?;
                let rhs = match value {
                    Value::Number(n) => *n,
                    Value::Quantity(q) => q.value,
                    Value::Name(_) => return None,
                };
                Some(op.apply(r.value, rhs))
            }
            Condition::Truthy(signal) => read(signal).map(|r| r.value != 0.0),
            Condition::Not(c) => c.eval(read).map(|b| !b),
            Condition::And(a, b) => Some(a.eval(read)? && b.eval(read)?),
            Condition::Or(a, b) => Some(a.eval(read)? || b.eval(read)?),
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Condition::Compare { signal, op, value } => {
                write!(f, "{signal} {} ", op.symbol())?;
                match value {
                    Value::Number(n) => write!(f, "{n}"),
                    // Exactly as parsed (SI value, shortest form that reads back to the same
                    // number), not rounded for display: a printed condition means what the
                    // parsed one does. `+ 0.0` prints -0 as 0, as the parser reads it back.
                    Value::Quantity(q) => write!(f, "{} {}", q.value + 0.0, q.dim.unit()),
                    Value::Name(n) => write!(f, "{n}"),
                }
            }
            Condition::Truthy(s) => write!(f, "{s}"),
            Condition::Not(c) => write!(f, "not ({c})"),
            Condition::And(a, b) => write!(f, "({a}) and ({b})"),
            Condition::Or(a, b) => write!(f, "({a}) or ({b})"),
        }
    }
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Condition::parse(&s).map_err(serde::de::Error::custom)
    }
}

fn tokenize(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' || c == ')' {
            out.push(c.to_string());
            i += 1;
        } else if "=!<>".contains(c) {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            if ["==", "!=", "<=", ">="].contains(&two.as_str()) {
                out.push(two);
                i += 2;
            } else if c == '<' || c == '>' {
                out.push(c.to_string());
                i += 1;
            } else {
                return Err(format!(
                    "`{c}` at character {} of `{text}`: use `==` or `!=`",
                    i + 1
                ));
            }
        } else {
            let start = i;
            while i < chars.len() && !chars[i].is_whitespace() && !"()=!<>".contains(chars[i]) {
                i += 1;
            }
            out.push(chars[start..i].iter().collect());
        }
    }
    Ok(out)
}

/// The most words and symbols a condition may have.
pub const MAX_TOKENS: usize = 1000;

/// The deepest nesting of parentheses and `not` a condition may have.
pub const MAX_NESTING: usize = 64;

struct Parser<'a> {
    tokens: Vec<String>,
    pos: usize,
    text: &'a str,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.pos).map(String::as_str)
    }

    fn next(&mut self) -> Option<String> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn or(&mut self) -> Result<Condition, String> {
        let mut left = self.and()?;
        while self.peek() == Some("or") {
            self.pos += 1;
            left = Condition::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Condition, String> {
        let mut left = self.term()?;
        while self.peek() == Some("and") {
            self.pos += 1;
            left = Condition::And(Box::new(left), Box::new(self.term()?));
        }
        Ok(left)
    }

    fn paren(&mut self) -> Result<Condition, String> {
        let c = self.or()?;
        match self.next().as_deref() {
            Some(")") => Ok(c),
            _ => Err(format!("missing `)` in condition `{}`", self.text)),
        }
    }

    fn term(&mut self) -> Result<Condition, String> {
        let text = self.text;
        match self.next() {
            None => Err(format!(
                "condition `{text}` ends where a signal was expected"
            )),
            Some(t) if t == "not" || t == "(" => {
                self.depth += 1;
                if self.depth > MAX_NESTING {
                    return Err(format!(
                        "condition is nested more than {MAX_NESTING} deep (parentheses and `not`)"
                    ));
                }
                let c = if t == "not" {
                    self.term().map(|c| Condition::Not(Box::new(c)))
                } else {
                    self.paren()
                };
                self.depth -= 1;
                c
            }
            Some(t) if is_signal_name(&t) => {
                let op = match self.peek() {
                    Some("==") => Op::Eq,
                    Some("!=") => Op::Ne,
                    Some("<") => Op::Lt,
                    Some("<=") => Op::Le,
                    Some(">") => Op::Gt,
                    Some(">=") => Op::Ge,
                    _ => return Ok(Condition::Truthy(t)),
                };
                self.pos += 1;
                let v = self
                    .next()
                    .ok_or_else(|| format!("condition `{text}` ends after `{}`", op.symbol()))?;
                // A quantity may be written with a space: `3.6 V`.
                let value = if let Ok(n) = v.parse::<f64>() {
                    if !n.is_finite() {
                        return Err(format!(
                            "`{v}` in condition `{text}` is not a finite number"
                        ));
                    }
                    match self.peek() {
                        Some(unit) if !matches!(unit, "and" | "or" | ")") => {
                            let joined = format!("{v} {unit}");
                            let q = Quantity::parse(&joined).map_err(|e| e.to_string())?;
                            self.pos += 1;
                            Value::Quantity(q)
                        }
                        _ => Value::Number(n),
                    }
                } else if v
                    .starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+' || c == '.')
                {
                    Value::Quantity(Quantity::parse(&v).map_err(|e| e.to_string())?)
                } else if v == "true" {
                    Value::Number(1.0)
                } else if v == "false" {
                    Value::Number(0.0)
                } else {
                    Value::Name(v)
                };
                Ok(Condition::Compare {
                    signal: t,
                    op,
                    value,
                })
            }
            Some(t) => Err(format!("`{t}` is not a signal name in condition `{text}`")),
        }
    }
}

fn is_signal_name(t: &str) -> bool {
    t.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._[]".contains(c))
        && !matches!(t, "and" | "or" | "not")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn reader(name: &str) -> Option<Reading> {
        match name {
            "bms.chg_fet" => Some(Reading { value: 0.0 }),
            "cell[5].v" => Some(Reading { value: 3.7 }),
            "bms.fault.ov" => Some(Reading { value: 1.0 }),
            "supply.i" => Some(Reading { value: 0.1 }),
            _ => None,
        }
    }

    #[rstest]
    #[case("bms.chg_fet == 0", Some(true))]
    #[case("supply.i < 0.2 A", Some(true))]
    #[case("supply.i < 200 mA", Some(true))]
    #[case("supply.i >= 0.2A", Some(false))]
    #[case("cell[5].v > 3.6 V and bms.fault.ov", Some(true))]
    #[case("cell[5].v > 3.8 V or not bms.fault.ov", Some(false))]
    #[case("(cell[5].v > 3.8 V or bms.fault.ov) and supply.i < 1 A", Some(true))]
    #[case("unknown.signal == 1", None)]
    fn evaluates(#[case] text: &str, #[case] expected: Option<bool>) {
        assert_eq!(Condition::parse(text).unwrap().eval(&reader), expected);
    }

    #[rstest]
    #[case("", "ends where a signal was expected")]
    #[case("bms.chg_fet =", "use `==`")]
    #[case("bms.chg_fet ==", "ends after")]
    #[case("(bms.chg_fet == 1", "missing `)`")]
    #[case("3 == bms.x", "not a signal name")]
    #[case("cell[5].v > 3.6 furlong", "not a known unit")]
    #[case("bms.x == NaN", "not a finite number")]
    #[case("bms.x < 1e400", "not a finite number")]
    #[case("bms.x < 1e308 kV", "out of range")]
    fn rejects(#[case] text: &str, #[case] msg: &str) {
        let err = Condition::parse(text).unwrap_err();
        assert!(err.contains(msg), "{err}");
    }

    #[rstest]
    #[case("supply.i < 200 mA", "supply.i < 0.2 A")]
    #[case("a == 0.99996 V", "a == 0.99996 V")]
    #[case("x == 0.00001 s", "x == 0.00001 s")]
    #[case("a >= -0 V and b", "(a >= 0 V) and (b)")]
    #[case("not a == -0", "not (a == -0)")]
    fn prints_exactly_what_was_parsed(#[case] text: &str, #[case] printed: &str) {
        let c = Condition::parse(text).unwrap();
        assert_eq!(c.to_string(), printed);
        assert_eq!(Condition::parse(printed).unwrap(), c);
    }

    #[test]
    fn binds_enum_names() {
        let mut c = Condition::parse("bms.chg_fet == open and bms.state != fault").unwrap();
        c.bind(&|sig, name| match (sig, name) {
            ("bms.chg_fet", "open") => Ok(0.0),
            ("bms.state", "fault") => Ok(4.0),
            _ => Err(format!("{sig} has no value `{name}`")),
        })
        .unwrap();
        let read = |s: &str| match s {
            "bms.chg_fet" => Some(Reading { value: 0.0 }),
            "bms.state" => Some(Reading { value: 1.0 }),
            _ => None,
        };
        assert_eq!(c.eval(&read), Some(true));
        assert_eq!(
            c.signals().into_iter().collect::<Vec<_>>(),
            vec!["bms.chg_fet", "bms.state"]
        );
    }

    #[test]
    fn nesting_limit_refuses_10000_parentheses_and_100000_nots() {
        let parens = format!("{}bms.chg_fet{}", "(".repeat(10_000), ")".repeat(10_000));
        let e = Condition::parse(&parens).unwrap_err();
        assert!(e.contains("at most"), "{}", &e[..e.len().min(200)]);
        let nots = format!("{}bms.chg_fet", "not ".repeat(100_000));
        assert!(Condition::parse(&nots).is_err());
        let deep = format!("{}bms.chg_fet{}", "(".repeat(65), ")".repeat(65));
        let e = Condition::parse(&deep).unwrap_err();
        assert!(e.contains("nested more than 64"), "{e}");
        let ok = format!("{}bms.chg_fet{}", "(".repeat(64), ")".repeat(64));
        assert!(Condition::parse(&ok).is_ok());
        let chain = vec!["bms.chg_fet"; 600].join(" and ");
        assert!(Condition::parse(&chain).is_err(), "1199 tokens");
    }
}
