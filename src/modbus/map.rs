//! Register maps: which register carries which logical signal, with its function code,
//! address, type, scale and word order. Loaded from YAML:
//!
//! ```yaml
//! map: sim-bms-inverter
//! title: Reference BMS, inverter-facing Modbus map
//! unit: 1
//! word_order: big
//! registers:
//!   inv.cvl: {function: input, address: 0x0100, type: u16, scale: 0.1, unit: V}
//!   inv.charge_enable: {function: discrete_input, address: 0x0000, type: bool}
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::ModbusError;

/// A Modbus read function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Function {
    /// Read coils (0x01).
    Coil,
    /// Read discrete inputs (0x02).
    DiscreteInput,
    /// Read holding registers (0x03).
    Holding,
    /// Read input registers (0x04).
    Input,
}

impl Function {
    /// The function code.
    pub fn code(self) -> u8 {
        match self {
            Function::Coil => 0x01,
            Function::DiscreteInput => 0x02,
            Function::Holding => 0x03,
            Function::Input => 0x04,
        }
    }

    /// Whether it reads bits (coils, discrete inputs) rather than 16-bit registers.
    pub fn reads_bits(self) -> bool {
        matches!(self, Function::Coil | Function::DiscreteInput)
    }
}

/// The type of a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueType {
    /// One bit (coil or discrete input).
    Bool,
    /// Unsigned 16-bit register.
    U16,
    /// Signed 16-bit register.
    I16,
    /// Unsigned 32-bit over two registers.
    U32,
    /// Signed 32-bit over two registers.
    I32,
}

impl ValueType {
    /// How many registers (or bits) it spans.
    pub fn width(self) -> u16 {
        match self {
            ValueType::U32 | ValueType::I32 => 2,
            _ => 1,
        }
    }
}

/// Order of the two 16-bit words of a 32-bit value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WordOrder {
    /// High word first (the Modbus convention).
    #[default]
    Big,
    /// Low word first ("word-swapped").
    Little,
}

/// One register (or bit) of a map.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Register {
    /// Read function.
    pub function: Function,
    /// Protocol address (0-based, as on the wire).
    pub address: u16,
    /// Value type.
    #[serde(rename = "type")]
    pub value_type: ValueType,
    /// Physical = raw × scale + offset.
    #[serde(default = "one")]
    pub scale: f64,
    /// Physical = raw × scale + offset.
    #[serde(default)]
    pub offset: f64,
    /// Unit of the physical value.
    #[serde(default)]
    pub unit: String,
    /// Word order for 32-bit values (default: the map's).
    #[serde(default)]
    pub word_order: Option<WordOrder>,
}

fn one() -> f64 {
    1.0
}

/// A register map file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterMap {
    /// Map id.
    pub map: String,
    /// Human title.
    pub title: String,
    /// Unit (slave) id of the device (default 1).
    #[serde(default = "unit_one")]
    pub unit: u8,
    /// Word order of 32-bit values unless a register says otherwise.
    #[serde(default)]
    pub word_order: WordOrder,
    /// Registers by logical signal name.
    pub registers: BTreeMap<String, Register>,
}

fn unit_one() -> u8 {
    1
}

impl RegisterMap {
    /// Load and check a map file.
    pub fn load(path: &Path) -> Result<Self, ModbusError> {
        let err = |message: String| ModbusError::Map {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
        Self::parse(&text).map_err(err)
    }

    /// Parse and check map text; the error says what and where (line and column).
    pub fn parse(text: &str) -> Result<Self, String> {
        let map: RegisterMap = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
        map.check()?;
        Ok(map)
    }

    fn check(&self) -> Result<(), String> {
        let mut used: BTreeMap<(u8, u32), &str> = BTreeMap::new();
        for (name, r) in &self.registers {
            if r.function.reads_bits() != (r.value_type == ValueType::Bool) {
                return Err(format!(
                    "`{name}`: type {:?} does not fit function {:?} (bits are `bool`, registers are numbers)",
                    r.value_type, r.function
                ));
            }
            if !r.scale.is_finite() || r.scale == 0.0 || !r.offset.is_finite() {
                return Err(format!(
                    "`{name}`: scale must be finite and not 0, offset finite"
                ));
            }
            for k in 0..r.value_type.width() {
                let a = r.address as u32 + k as u32;
                if a > u16::MAX as u32 {
                    return Err(format!("`{name}`: spans past address 0xFFFF"));
                }
                if let Some(other) = used.insert((r.function.code(), a), name) {
                    return Err(format!(
                        "`{name}` and `{other}` overlap at {:?} address {a:#06X}",
                        r.function
                    ));
                }
            }
        }
        Ok(())
    }

    /// The word order of a register.
    pub fn word_order(&self, r: &Register) -> WordOrder {
        r.word_order.unwrap_or(self.word_order)
    }

    /// The physical value of a register from the words (or bits as 0/1) read for it.
    pub fn decode(&self, r: &Register, words: &[u16]) -> Option<f64> {
        let raw = match r.value_type {
            ValueType::Bool | ValueType::U16 => *words.first()? as f64,
            ValueType::I16 => *words.first()? as i16 as f64,
            ValueType::U32 | ValueType::I32 => {
                let (a, b) = (*words.first()? as u32, *words.get(1)? as u32);
                let v = match self.word_order(r) {
                    WordOrder::Big => (a << 16) | b,
                    WordOrder::Little => (b << 16) | a,
                };
                if r.value_type == ValueType::I32 {
                    v as i32 as f64
                } else {
                    v as f64
                }
            }
        };
        // A scale like 0.1 divides by 10, so that 568 reads 56.8 rather than 56.800000000000004.
        let inverse = 1.0 / r.scale;
        let scaled = if inverse.abs() >= 1.0 && (inverse - inverse.round()).abs() < 1e-9 {
            raw / inverse.round()
        } else {
            raw * r.scale
        };
        Some(scaled + r.offset)
    }

    /// The words (or bits as 0/1) that carry `physical` in a register (rounded to the scale,
    /// saturating at the type's range): the inverse of [`RegisterMap::decode`].
    pub fn encode(&self, r: &Register, physical: f64) -> Vec<u16> {
        let raw = ((physical - r.offset) / r.scale).round();
        match r.value_type {
            ValueType::Bool => vec![(raw != 0.0) as u16],
            ValueType::U16 => vec![raw.clamp(0.0, u16::MAX as f64) as u16],
            ValueType::I16 => vec![raw.clamp(i16::MIN as f64, i16::MAX as f64) as i16 as u16],
            ValueType::U32 | ValueType::I32 => {
                let v = if r.value_type == ValueType::I32 {
                    raw.clamp(i32::MIN as f64, i32::MAX as f64) as i32 as u32
                } else {
                    raw.clamp(0.0, u32::MAX as f64) as u32
                };
                let (hi, lo) = ((v >> 16) as u16, v as u16);
                match self.word_order(r) {
                    WordOrder::Big => vec![hi, lo],
                    WordOrder::Little => vec![lo, hi],
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const MAP: &str = "map: t\ntitle: T\nword_order: big\nregisters:\n  \
        a: {function: input, address: 0x0100, type: u16, scale: 0.1, unit: V}\n  \
        b: {function: input, address: 0x0101, type: i16, scale: 0.1, unit: A}\n  \
        c: {function: holding, address: 0x0200, type: i32, scale: 0.1, unit: W}\n  \
        d: {function: holding, address: 0x0202, type: u32, word_order: little}\n  \
        e: {function: discrete_input, address: 0, type: bool}\n";

    #[rstest]
    #[case("a", &[568], 56.8)]
    #[case("b", &[0xFFCE], -5.0)]
    #[case("c", &[0xFFFF, 0xFF38], -20.0)]
    #[case("d", &[0x0002, 0x0001], 65538.0)]
    #[case("e", &[1], 1.0)]
    fn registers_decode_with_type_scale_and_word_order(
        #[case] name: &str,
        #[case] words: &[u16],
        #[case] physical: f64,
    ) {
        let m = RegisterMap::parse(MAP).unwrap();
        let r = &m.registers[name];
        let got = m.decode(r, words).unwrap();
        assert!((got - physical).abs() < 1e-9, "{name}: {got}");
        assert_eq!(m.encode(r, physical), words, "{name}");
    }

    #[rstest]
    #[case("  x: {function: input, address: 1, type: bool}", "does not fit")]
    #[case("  x: {function: input, address: 0x0100, type: u16}", "overlap")]
    #[case("  x: {function: input, address: 0xFFFF, type: u32}", "past address")]
    #[case("  x: {function: input, address: 1, type: u16, scale: 0}", "scale")]
    #[case("  x: {function: input, address: 1, type: f64}", "unknown variant")]
    fn bad_maps_are_refused_with_the_reason(#[case] line: &str, #[case] why: &str) {
        let text = format!("{MAP}{line}\n");
        let e = RegisterMap::parse(&text).unwrap_err();
        assert!(e.contains(why), "{e}");
    }

    #[test]
    fn the_shipped_map_loads() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let m = RegisterMap::load(&root.join("fixtures/modbus/sim-bms-inverter.yaml")).unwrap();
        assert!(m.registers.contains_key("inv.cvl"));
    }
}
