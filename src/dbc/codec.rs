//! The signal codec: raw bits in a frame <-> physical values.
//!
//! Bits are addressed as in the DBC format. Intel signals count up from the start bit
//! (byte `b / 8`, bit `b % 8`). Motorola signals start at their most significant bit in
//! sawtooth numbering (bit 7 of byte 0 is 7, ..., bit 0 of byte 0 is 0, bit 7 of byte 1 is
//! 15); converted to a linear big-endian index (`8 * byte + 7 - bit`) the signal occupies
//! consecutive indices from MSB to LSB.

use super::model::{ByteOrder, Decoded, Message, Multiplex, Signal, ValueType};
use super::DbcError;

impl Signal {
    /// Data bytes a frame needs to carry this signal; `None` if the layout overflows.
    pub fn bytes_needed(&self) -> Option<usize> {
        let last_byte = match self.byte_order {
            ByteOrder::Intel => {
                let last_bit = u64::from(self.start_bit) + u64::from(self.size.checked_sub(1)?);
                last_bit / 8
            }
            ByteOrder::Motorola => {
                let lsb = motorola_msb_index(self.start_bit) + u64::from(self.size.checked_sub(1)?);
                lsb / 8
            }
        };
        usize::try_from(last_byte.checked_add(1)?).ok()
    }

    /// The signal's raw bits (right-aligned); `None` if the frame is too short.
    pub fn extract_bits(&self, data: &[u8]) -> Option<u64> {
        if self.size == 0 || self.size > 64 || self.bytes_needed()? > data.len() {
            return None;
        }
        let mut value: u64 = 0;
        match self.byte_order {
            ByteOrder::Intel => {
                for i in 0..self.size {
                    let pos = u64::from(self.start_bit) + u64::from(i);
                    let byte = *data.get(usize::try_from(pos / 8).ok()?)?;
                    let bit = u64::from((byte >> (pos % 8)) & 1);
                    value |= bit << i;
                }
            }
            ByteOrder::Motorola => {
                let msb = motorola_msb_index(self.start_bit);
                for i in 0..u64::from(self.size) {
                    let pos = msb + i;
                    let byte = *data.get(usize::try_from(pos / 8).ok()?)?;
                    let bit = u64::from((byte >> (7 - pos % 8)) & 1);
                    value = (value << 1) | bit;
                }
            }
        }
        Some(value)
    }

    /// Write raw bits (right-aligned, masked to the signal length); `None` if they don't fit.
    pub fn insert_bits(&self, data: &mut [u8], bits: u64) -> Option<()> {
        if self.size == 0 || self.size > 64 || self.bytes_needed()? > data.len() {
            return None;
        }
        let bits = bits & mask(self.size);
        match self.byte_order {
            ByteOrder::Intel => {
                for i in 0..self.size {
                    let pos = u64::from(self.start_bit) + u64::from(i);
                    let byte = data.get_mut(usize::try_from(pos / 8).ok()?)?;
                    let m = 1u8 << (pos % 8);
                    if (bits >> i) & 1 == 1 {
                        *byte |= m;
                    } else {
                        *byte &= !m;
                    }
                }
            }
            ByteOrder::Motorola => {
                let msb = motorola_msb_index(self.start_bit);
                let size = u64::from(self.size);
                for i in 0..size {
                    let pos = msb + i;
                    let byte = data.get_mut(usize::try_from(pos / 8).ok()?)?;
                    let m = 1u8 << (7 - pos % 8);
                    if (bits >> (size - 1 - i)) & 1 == 1 {
                        *byte |= m;
                    } else {
                        *byte &= !m;
                    }
                }
            }
        }
        Some(())
    }

    /// Raw value of right-aligned bits: integer (sign-extended if signed) or float, as f64.
    pub fn raw_from_bits(&self, bits: u64) -> f64 {
        match self.value_type {
            ValueType::Unsigned => bits as f64,
            ValueType::Signed => sign_extend(bits, self.size) as f64,
            ValueType::Float32 => f64::from(f32::from_bits(bits as u32)),
            ValueType::Float64 => f64::from_bits(bits),
        }
    }

    /// Integer raw value of right-aligned bits; `None` for float signals.
    pub fn int_from_bits(&self, bits: u64) -> Option<i128> {
        match self.value_type {
            ValueType::Unsigned => Some(i128::from(bits)),
            ValueType::Signed => Some(i128::from(sign_extend(bits, self.size))),
            ValueType::Float32 | ValueType::Float64 => None,
        }
    }

    /// Decode this signal from a frame.
    fn decode_from(&self, message: &str, data: &[u8]) -> Result<Decoded, DbcError> {
        let bits = self
            .extract_bits(data)
            .ok_or_else(|| self.too_short(message, data))?;
        let raw = self.raw_from_bits(bits);
        let label = self
            .int_from_bits(bits)
            .and_then(|r| i64::try_from(r).ok())
            .and_then(|r| self.value_table.get(&r).cloned());
        Ok(Decoded {
            name: self.name.clone(),
            raw,
            physical: raw * self.factor + self.offset,
            label,
            unit: self.unit.clone(),
        })
    }

    /// Raw bits for a physical value; rounds to the nearest raw integer.
    pub fn bits_for(&self, message: &str, physical: f64) -> Result<u64, DbcError> {
        let raw = (physical - self.offset) / self.factor;
        match self.value_type {
            ValueType::Unsigned | ValueType::Signed => {
                let rounded = raw.round();
                let (lo, hi) = self.raw_range();
                // NaN fails both comparisons and lands in the error branch.
                if !(rounded >= lo && rounded <= hi) {
                    return Err(self.out_of_range(message, physical));
                }
                Ok(if self.value_type == ValueType::Unsigned {
                    rounded as u64
                } else {
                    (rounded as i64) as u64 & mask(self.size)
                })
            }
            ValueType::Float32 => {
                let narrowed = raw as f32;
                if raw.is_finite() && !narrowed.is_finite() {
                    return Err(self.out_of_range(message, physical));
                }
                Ok(u64::from(narrowed.to_bits()))
            }
            ValueType::Float64 => Ok(raw.to_bits()),
        }
    }

    fn out_of_range(&self, message: &str, value: f64) -> DbcError {
        let (lo, hi) = self.physical_range();
        DbcError::OutOfRange {
            message: message.to_string(),
            signal: self.name.clone(),
            value,
            lo,
            hi,
            unit: self.unit.clone(),
        }
    }

    fn too_short(&self, message: &str, data: &[u8]) -> DbcError {
        DbcError::FrameTooShort {
            message: message.to_string(),
            signal: self.name.clone(),
            needed: self.bytes_needed().unwrap_or(usize::MAX),
            got: data.len(),
        }
    }
}

impl Message {
    /// The signal of this message with this name.
    pub fn signal(&self, name: &str) -> Option<&Signal> {
        self.signals.iter().find(|s| s.name == name)
    }

    /// The multiplexor signal (`M`), if the message is multiplexed.
    pub fn multiplexor(&self) -> Option<&Signal> {
        self.signals
            .iter()
            .find(|s| s.multiplex == Multiplex::Multiplexor)
    }

    /// Multiplexor raw value of a frame (`Ok(None)` when the message is not multiplexed).
    pub fn mux_value(&self, data: &[u8]) -> Result<Option<i128>, DbcError> {
        let Some(mux) = self.multiplexor() else {
            return Ok(None);
        };
        let bits = mux
            .extract_bits(data)
            .ok_or_else(|| mux.too_short(&self.name, data))?;
        Ok(mux.int_from_bits(bits))
    }

    /// True when the message uses extended multiplexing (`SG_MUL_VAL_`, `mNM` signals).
    pub fn extended_multiplexing(&self) -> bool {
        self.signals.iter().any(|s| {
            s.selector.is_some() || matches!(s.multiplex, Multiplex::MultiplexedMultiplexor(_))
        })
    }

    /// Which signals a frame carries, in signal order: plain signals always, multiplexed
    /// ones when their multiplexor is carried and its raw value selects them.
    pub fn carried(&self, data: &[u8]) -> Result<Vec<bool>, DbcError> {
        if !self.extended_multiplexing() {
            let mux = self.mux_value(data)?;
            return Ok(self.signals.iter().map(|s| s.is_active(mux)).collect());
        }
        let mut state: Vec<Option<bool>> = vec![None; self.signals.len()];
        for i in 0..self.signals.len() {
            self.resolve(i, data, &mut state, 0)?;
        }
        Ok(state.into_iter().map(|s| s.unwrap_or(false)).collect())
    }

    /// Whether signal `i` is carried (memoised in `state`); selector chains are checked
    /// for cycles when the DBC is loaded, `depth` only bounds a malformed model.
    fn resolve(
        &self,
        i: usize,
        data: &[u8],
        state: &mut [Option<bool>],
        depth: usize,
    ) -> Result<bool, DbcError> {
        if let Some(Some(known)) = state.get(i) {
            return Ok(*known);
        }
        let Some(s) = self.signals.get(i) else {
            return Ok(false);
        };
        let carried = match (s.multiplex, &s.selector) {
            (Multiplex::Plain | Multiplex::Multiplexor, _) => true,
            (_, Some(sel)) => match self.signals.iter().position(|m| m.name == sel.multiplexor) {
                // The selecting multiplexor is carried itself: its raw value decides.
                Some(p)
                    if depth <= self.signals.len()
                        && self.resolve(p, data, state, depth + 1)? =>
                {
                    let m = self
                        .signals
                        .get(p)
                        .ok_or_else(|| self.unknown(&sel.multiplexor))?;
                    let bits = m
                        .extract_bits(data)
                        .ok_or_else(|| m.too_short(&self.name, data))?;
                    m.int_from_bits(bits).is_some_and(|raw| sel.selects(raw))
                }
                _ => false,
            },
            (Multiplex::Multiplexed(_) | Multiplex::MultiplexedMultiplexor(_), None) => {
                s.is_active(self.mux_value(data)?)
            }
        };
        if let Some(slot) = state.get_mut(i) {
            *slot = Some(carried);
        }
        Ok(carried)
    }

    /// Decode every signal carried by the frame (those selected by the multiplexor value).
    pub fn decode(&self, data: &[u8]) -> Result<Vec<Decoded>, DbcError> {
        let carried = self.carried(data)?;
        self.signals
            .iter()
            .zip(carried)
            .filter(|(_, c)| *c)
            .map(|(s, _)| s.decode_from(&self.name, data))
            .collect()
    }

    /// Decode one signal; `Ok(None)` when the frame's multiplexor value does not carry it.
    pub fn decode_signal(&self, name: &str, data: &[u8]) -> Result<Option<Decoded>, DbcError> {
        let index = self
            .signals
            .iter()
            .position(|s| s.name == name)
            .ok_or_else(|| self.unknown(name))?;
        let signal = self.signals.get(index).ok_or_else(|| self.unknown(name))?;
        let carried = if self.extended_multiplexing() {
            self.carried(data)?.get(index).copied().unwrap_or(false)
        } else {
            signal.is_active(self.mux_value(data)?)
        };
        if !carried {
            return Ok(None);
        }
        signal.decode_from(&self.name, data).map(Some)
    }

    /// Encode physical values into a frame of `size` bytes.
    ///
    /// Signals not given are raw 0. A multiplexed signal is written only when the
    /// multiplexor value (given, or 0) selects it; giving one it does not select is an error.
    pub fn encode(&self, values: &[(&str, f64)]) -> Result<Vec<u8>, DbcError> {
        let mut given: Vec<Option<f64>> = vec![None; self.signals.len()];
        for (name, value) in values {
            let index = self
                .signals
                .iter()
                .position(|s| s.name == *name)
                .ok_or_else(|| self.unknown(name))?;
            let slot = given.get_mut(index).ok_or_else(|| self.unknown(name))?;
            if slot.is_some() {
                return Err(DbcError::DuplicateValue {
                    message: self.name.clone(),
                    signal: (*name).to_string(),
                });
            }
            *slot = Some(*value);
        }

        let mut data = vec![0u8; self.size];
        if self.extended_multiplexing() {
            self.encode_extended(&given, &mut data)?;
            return Ok(data);
        }
        let mut mux_raw = None;
        if let Some(pos) = self
            .signals
            .iter()
            .position(|s| s.multiplex == Multiplex::Multiplexor)
        {
            if let (Some(mux), Some(slot)) = (self.signals.get(pos), given.get(pos)) {
                let bits = match slot {
                    Some(v) => mux.bits_for(&self.name, *v)?,
                    None => 0,
                };
                mux_raw = mux.int_from_bits(bits);
            }
        }

        for (signal, value) in self.signals.iter().zip(&given) {
            if !signal.is_active(mux_raw) {
                if value.is_some() {
                    return Err(self.not_selected(signal, mux_raw));
                }
                continue;
            }
            let bits = match value {
                Some(v) => signal.bits_for(&self.name, *v)?,
                None => 0,
            };
            signal
                .insert_bits(&mut data, bits)
                .ok_or_else(|| signal.too_short(&self.name, &data))?;
        }
        Ok(data)
    }

    /// Encode with extended multiplexing: multiplexors first, parents before children (each
    /// written only when carried), then every carried signal.
    fn encode_extended(&self, given: &[Option<f64>], data: &mut [u8]) -> Result<(), DbcError> {
        let mut written = vec![false; self.signals.len()];
        loop {
            let carried = self.carried(data)?;
            let mut progress = false;
            for (i, s) in self.signals.iter().enumerate() {
                let due = s.is_multiplexor()
                    && carried.get(i).copied().unwrap_or(false)
                    && !written.get(i).copied().unwrap_or(true);
                if !due {
                    continue;
                }
                let bits = match given.get(i).copied().flatten() {
                    Some(v) => s.bits_for(&self.name, v)?,
                    None => 0,
                };
                s.insert_bits(data, bits)
                    .ok_or_else(|| s.too_short(&self.name, data))?;
                if let Some(w) = written.get_mut(i) {
                    *w = true;
                }
                progress = true;
            }
            if !progress {
                break;
            }
        }
        let carried = self.carried(data)?;
        for ((s, value), carried) in self.signals.iter().zip(given).zip(carried) {
            if !carried {
                if value.is_some() {
                    return Err(self.not_selected_extended(s, data));
                }
                continue;
            }
            if s.is_multiplexor() {
                continue;
            }
            let bits = match value {
                Some(v) => s.bits_for(&self.name, *v)?,
                None => 0,
            };
            s.insert_bits(data, bits)
                .ok_or_else(|| s.too_short(&self.name, data))?;
        }
        Ok(())
    }

    fn not_selected_extended(&self, signal: &Signal, data: &[u8]) -> DbcError {
        let Some(sel) = &signal.selector else {
            return self.not_selected(signal, self.mux_value(data).ok().flatten());
        };
        let actual = self
            .signal(&sel.multiplexor)
            .and_then(|m| m.int_from_bits(m.extract_bits(data)?))
            .unwrap_or_default();
        DbcError::NotSelected {
            message: self.name.clone(),
            signal: signal.name.clone(),
            multiplexor: sel.multiplexor.clone(),
            wanted: sel.ranges.first().map_or(0, |r| r.0),
            actual,
        }
    }

    fn unknown(&self, name: &str) -> DbcError {
        DbcError::UnknownSignal {
            message: self.name.clone(),
            signal: name.to_string(),
            known: self
                .signals
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    fn not_selected(&self, signal: &Signal, actual: Option<i128>) -> DbcError {
        let wanted = match signal.multiplex {
            Multiplex::Multiplexed(n) | Multiplex::MultiplexedMultiplexor(n) => n,
            Multiplex::Plain | Multiplex::Multiplexor => 0,
        };
        DbcError::NotSelected {
            message: self.name.clone(),
            signal: signal.name.clone(),
            multiplexor: self
                .multiplexor()
                .map(|m| m.name.clone())
                .unwrap_or_default(),
            wanted,
            actual: actual.unwrap_or_default(),
        }
    }
}

/// Linear big-endian index (`8 * byte + 7 - bit`) of a Motorola start bit.
fn motorola_msb_index(start_bit: u32) -> u64 {
    let start = u64::from(start_bit);
    (start / 8) * 8 + (7 - start % 8)
}

/// The low `size` bits set (size 1..=64; 0 for 0).
fn mask(size: u32) -> u64 {
    match size {
        0 => 0,
        1..=63 => (1u64 << size) - 1,
        _ => u64::MAX,
    }
}

/// Interpret the low `size` bits as two's complement.
fn sign_extend(bits: u64, size: u32) -> i64 {
    match size {
        0 => 0,
        1..=63 => {
            let shift = 64 - size;
            ((bits << shift) as i64) >> shift
        }
        _ => bits as i64,
    }
}
