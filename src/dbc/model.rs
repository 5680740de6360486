//! The typed DBC model: messages, signals and decoded values.

use std::collections::BTreeMap;

/// One CAN message (frame layout) of a DBC file.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// CAN identifier without the DBC extended flag (bit 31).
    pub id: u32,
    /// True for a 29-bit identifier.
    pub extended: bool,
    /// Message name.
    pub name: String,
    /// Frame length in bytes (0..=64).
    pub size: usize,
    /// True for a CAN FD message (`VFrameFormat` StandardCAN_FD/ExtendedCAN_FD, or longer
    /// than 8 bytes).
    pub fd: bool,
    /// Signals in the order the DBC lists them.
    pub signals: Vec<Signal>,
    /// Cycle time from the `GenMsgCycleTime` attribute, when set and non-zero.
    pub cycle_time_ms: Option<u32>,
    /// Message comment (`CM_ BO_`).
    pub comment: Option<String>,
}

/// Bit layout of a signal in the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteOrder {
    /// Little-endian (`@1`): the start bit is the least significant bit.
    Intel,
    /// Big-endian (`@0`): the start bit is the most significant bit, sawtooth numbering.
    Motorola,
}

/// How the raw bits of a signal are interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// Unsigned integer.
    Unsigned,
    /// Two's complement over the signal length.
    Signed,
    /// IEEE 754 single precision (`SIG_VALTYPE_ ... : 1`).
    Float32,
    /// IEEE 754 double precision (`SIG_VALTYPE_ ... : 2`).
    Float64,
}

/// A signal's role in a multiplexed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Multiplex {
    /// Always present.
    Plain,
    /// The multiplexor (`M`): its raw value selects the multiplexed signals.
    Multiplexor,
    /// Present only when the multiplexor's raw value equals this (`mN`).
    Multiplexed(u64),
    /// Extended multiplexing (`mNM`): present when its own multiplexor selects it (see
    /// [`Signal::selector`]), and itself the multiplexor of other signals.
    MultiplexedMultiplexor(u64),
}

/// Extended multiplexing (`SG_MUL_VAL_`): the multiplexor that selects a signal and the
/// raw values (inclusive ranges) for which it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MuxSelector {
    /// Name of the selecting multiplexor (an `M` or `mNM` signal of the same message).
    pub multiplexor: String,
    /// Inclusive raw-value ranges of the multiplexor that carry the signal.
    pub ranges: Vec<(u64, u64)>,
}

impl MuxSelector {
    /// True when the multiplexor raw value `raw` selects the signal.
    pub fn selects(&self, raw: i128) -> bool {
        self.ranges
            .iter()
            .any(|&(lo, hi)| i128::from(lo) <= raw && raw <= i128::from(hi))
    }
}

/// One signal of a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    /// Signal name.
    pub name: String,
    /// Start bit: LSB for Intel, MSB (sawtooth numbering) for Motorola.
    pub start_bit: u32,
    /// Length in bits (1..=64).
    pub size: u32,
    /// Bit layout.
    pub byte_order: ByteOrder,
    /// Raw value interpretation.
    pub value_type: ValueType,
    /// physical = raw * factor + offset.
    pub factor: f64,
    /// physical = raw * factor + offset.
    pub offset: f64,
    /// Advisory minimum physical value from the DBC.
    pub min: f64,
    /// Advisory maximum physical value from the DBC.
    pub max: f64,
    /// Unit of the physical value.
    pub unit: String,
    /// Multiplexing role.
    pub multiplex: Multiplex,
    /// Extended multiplexing: which multiplexor selects this signal, for which values
    /// (`SG_MUL_VAL_`); `None` for plain multiplexing by the message's `M` signal.
    pub selector: Option<MuxSelector>,
    /// Labels for raw values (`VAL_`).
    pub value_table: BTreeMap<i64, String>,
    /// Signal comment (`CM_ SG_`).
    pub comment: Option<String>,
}

/// One decoded signal of a frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// Signal name.
    pub name: String,
    /// Raw value (integer or float) as f64.
    pub raw: f64,
    /// raw * factor + offset.
    pub physical: f64,
    /// The `VAL_` label of the raw value, if any.
    pub label: Option<String>,
    /// Unit of the physical value.
    pub unit: String,
}

impl Signal {
    /// Physical value for a `VAL_` label (exact match first, then ASCII case-insensitive).
    pub fn label_value(&self, label: &str) -> Option<f64> {
        let raw = self
            .value_table
            .iter()
            .find(|(_, l)| l.as_str() == label)
            .or_else(|| {
                self.value_table
                    .iter()
                    .find(|(_, l)| l.eq_ignore_ascii_case(label))
            })
            .map(|(raw, _)| *raw)?;
        Some(raw as f64 * self.factor + self.offset)
    }

    /// The `VAL_` label for a physical value, if the value maps to a labelled raw value.
    pub fn label_for(&self, physical: f64) -> Option<&str> {
        let raw = self.raw_integer_for(physical)?;
        self.value_table.get(&raw).map(String::as_str)
    }

    /// Lowest and highest physical values the signal can carry.
    pub fn physical_range(&self) -> (f64, f64) {
        let (lo, hi) = self.raw_range();
        let a = lo * self.factor + self.offset;
        let b = hi * self.factor + self.offset;
        if a <= b {
            (a, b)
        } else {
            (b, a)
        }
    }

    /// True for a signal that selects others (`M` or `mNM`).
    pub fn is_multiplexor(&self) -> bool {
        matches!(
            self.multiplex,
            Multiplex::Multiplexor | Multiplex::MultiplexedMultiplexor(_)
        )
    }

    /// Lowest and highest raw values of the signal's type and length.
    pub fn raw_range(&self) -> (f64, f64) {
        match self.value_type {
            ValueType::Unsigned => (0.0, pow2(self.size) - 1.0),
            ValueType::Signed => {
                let half = pow2(self.size.saturating_sub(1));
                (-half, half - 1.0)
            }
            ValueType::Float32 => (f64::from(f32::MIN), f64::from(f32::MAX)),
            ValueType::Float64 => (f64::MIN, f64::MAX),
        }
    }

    /// True when the signal is carried in a frame whose multiplexor raw value is `mux`
    /// (plain multiplexing; [`Message::carried`] also follows extended multiplexing).
    pub fn is_active(&self, mux: Option<i128>) -> bool {
        match self.multiplex {
            Multiplex::Plain | Multiplex::Multiplexor => true,
            Multiplex::Multiplexed(n) | Multiplex::MultiplexedMultiplexor(n) => {
                mux == Some(i128::from(n))
            }
        }
    }

    /// The integer raw value that a physical value maps to exactly, if any.
    fn raw_integer_for(&self, physical: f64) -> Option<i64> {
        let raw = (physical - self.offset) / self.factor;
        let rounded = raw.round();
        if !rounded.is_finite() || (raw - rounded).abs() > 1e-6 * rounded.abs().max(1.0) {
            return None;
        }
        if rounded < -(pow2(63)) || rounded >= pow2(63) {
            return None;
        }
        Some(rounded as i64)
    }
}

/// 2^n as f64 (exact for n <= 1023).
pub(crate) fn pow2(n: u32) -> f64 {
    f64::powi(2.0, i32::try_from(n).unwrap_or(i32::MAX))
}
