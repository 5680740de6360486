//! Signals prepared for fast decoding, and how values are written: exact decimals for
//! decimal scalings, the shortest round-trip text otherwise, CSV fields and JSON strings.

use std::io::Write as _;

use crate::dbc::{ByteOrder, Signal, ValueType};

/// One signal, prepared for fast decoding.
pub(super) struct Compiled {
    /// Where the bits are, for frames of at most 8 bytes: `None` means use the codec.
    pub(super) fast: Option<FastBits>,
    pub(super) size: u32,
    pub(super) value_type: ValueType,
    pub(super) factor: f64,
    pub(super) offset: f64,
    /// physical = (raw * mantissa + offset_scaled) / 10^decimals, when the DBC's factor and
    /// offset are exact decimals: printed without binary floating-point noise.
    pub(super) decimal: Option<(i128, i128, u32)>,
}

#[derive(Clone, Copy)]
pub(super) struct FastBits {
    /// Shift right of the little-endian (Intel) or big-endian (Motorola) frame word.
    pub(super) shift: u32,
    pub(super) motorola: bool,
    pub(super) mask: u64,
}

impl Compiled {
    pub(super) fn new(s: &Signal, message_size: usize) -> Self {
        let mask = match s.size {
            1..=63 => (1u64 << s.size) - 1,
            _ => u64::MAX,
        };
        let fits = message_size <= 8 && s.bytes_needed().is_some_and(|n| n <= 8);
        let fast = match s.byte_order {
            _ if !fits || s.size == 0 || s.size > 64 => None,
            ByteOrder::Intel => Some(FastBits {
                shift: s.start_bit,
                motorola: false,
                mask,
            }),
            ByteOrder::Motorola => {
                let msb = (s.start_bit / 8) * 8 + (7 - s.start_bit % 8);
                (msb + s.size <= 64).then(|| FastBits {
                    shift: 64 - (msb + s.size),
                    motorola: true,
                    mask,
                })
            }
        };
        Self {
            fast,
            size: s.size,
            value_type: s.value_type,
            factor: s.factor,
            offset: s.offset,
            decimal: decimal_scaling(s.factor, s.offset),
        }
    }

    /// The raw bits of the signal in a frame (words are the frame as LE and BE u64).
    pub(super) fn bits(&self, signal: &Signal, data: &[u8], le: u64, be: u64) -> Option<u64> {
        match self.fast {
            Some(f) if data.len() <= 8 => {
                let word = if f.motorola { be } else { le };
                Some(word.checked_shr(f.shift).unwrap_or(0) & f.mask)
            }
            _ => signal.extract_bits(data),
        }
    }

    /// The physical value of raw bits, as a double.
    pub(super) fn physical(&self, bits: u64) -> f64 {
        let raw = match self.value_type {
            ValueType::Unsigned => bits as f64,
            ValueType::Signed => sign_extend(bits, self.size) as f64,
            ValueType::Float32 => f64::from(f32::from_bits(bits as u32)),
            ValueType::Float64 => f64::from_bits(bits),
        };
        raw * self.factor + self.offset
    }

    /// Write the physical value of raw bits.
    pub(super) fn write(&self, out: &mut Vec<u8>, bits: u64, json: bool) {
        let int = match self.value_type {
            ValueType::Unsigned => i128::from(bits),
            ValueType::Signed => i128::from(sign_extend(bits, self.size)),
            ValueType::Float32 => {
                let raw = f64::from(f32::from_bits(bits as u32));
                return number(out, raw * self.factor + self.offset, json);
            }
            ValueType::Float64 => {
                return number(out, f64::from_bits(bits) * self.factor + self.offset, json)
            }
        };
        match self.decimal {
            Some((mantissa, offset, decimals)) => match int
                .checked_mul(mantissa)
                .and_then(|v| v.checked_add(offset))
            {
                Some(scaled) => decimal(out, scaled, decimals),
                None => number(out, int as f64 * self.factor + self.offset, json),
            },
            None => number(out, int as f64 * self.factor + self.offset, json),
        }
    }
}

pub(super) fn sign_extend(bits: u64, size: u32) -> i64 {
    match size {
        1..=63 => {
            let shift = 64 - size;
            ((bits << shift) as i64) >> shift
        }
        _ => bits as i64,
    }
}

/// (factor * 10^k, offset * 10^k, k) for the smallest k <= 9 making both whole numbers.
pub(super) fn decimal_scaling(factor: f64, offset: f64) -> Option<(i128, i128, u32)> {
    let mut scale = 1.0f64;
    for k in 0..=9u32 {
        let f = factor * scale;
        let o = offset * scale;
        let whole = |v: f64| (v - v.round()).abs() <= 1e-12 * v.abs().max(1.0);
        if f.is_finite()
            && o.is_finite()
            && f.abs() < 1e15
            && o.abs() < 1e15
            && whole(f)
            && whole(o)
        {
            return Some((f.round() as i128, o.round() as i128, k));
        }
        scale *= 10.0;
    }
    None
}

/// Write `scaled / 10^decimals` exactly, without trailing zeros.
pub(super) fn decimal(out: &mut Vec<u8>, scaled: i128, decimals: u32) {
    const E19: u128 = 10_000_000_000_000_000_000;
    let mut buf = [0u8; 48];
    let mut i = buf.len();
    let negative = scaled < 0;
    let magnitude = scaled.unsigned_abs();
    // Nearly every value fits 64 bits, where division by 10 is a multiplication.
    let (mut high, mut v) = match u64::try_from(magnitude) {
        Ok(v) => (0u128, v),
        Err(_) => (magnitude / E19, (magnitude % E19) as u64),
    };
    let mut written = 0u32;
    let mut trailing = true;
    while written < decimals {
        let d = (v % 10) as u8;
        v /= 10;
        written += 1;
        if trailing && d == 0 {
            continue;
        }
        trailing = false;
        i -= 1;
        buf[i] = b'0' + d;
    }
    if !trailing {
        i -= 1;
        buf[i] = b'.';
    }
    if high > 0 {
        // The low 19 digits (zero-padded), then the high part.
        for _ in written..19 {
            i -= 1;
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        while high > 0 {
            i -= 1;
            buf[i] = b'0' + (high % 10) as u8;
            high /= 10;
        }
    } else {
        loop {
            i -= 1;
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
    }
    if negative && buf[i..].iter().any(|&b| b != b'0' && b != b'.') {
        i -= 1;
        buf[i] = b'-';
    }
    out.extend_from_slice(&buf[i..]);
}

pub(super) fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

pub(super) fn json_string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    for c in text.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let mut utf8 = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// Write a number the shortest way that reads back exactly; integers without a fraction.
pub(super) fn number(out: &mut Vec<u8>, v: f64, json: bool) {
    if !v.is_finite() {
        let text: &[u8] = if json {
            b"null"
        } else if v.is_nan() {
            b"NaN"
        } else if v > 0.0 {
            b"inf"
        } else {
            b"-inf"
        };
        out.extend_from_slice(text);
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        decimal(out, v as i128, 0);
    } else {
        let _ = write!(out, "{v}");
    }
}
