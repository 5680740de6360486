//! Oscilloscope waveform transfer: the `:WAVeform:PREamble?` reply and scaling the
//! `:WAVeform:DATA?` codes to volts (or amperes through a current probe) and seconds.
//!
//! Both the Rigol DS1000Z and the Keysight InfiniiVision families answer the preamble as ten
//! comma-separated fields: format (0 BYTE, 1 WORD, 2 ASCII), type, points, count,
//! xincrement, xorigin, xreference, yincrement, yorigin, yreference. They differ in how the
//! y fields scale a code ([`YScaling`]); confidence marks as in rig/dialects:
//! - [M] Rigol DS1000Z: the ten fields in this order and format 0 BYTE, 1 WORD, 2 ASC
//!   (DS1000Z programming guide, `:WAVeform:PREamble?`); the DS2000 family numbers the
//!   formats differently (0 WORD, 1 BYTE), so a family's codes must be checked;
//! - [L] Rigol DS1000Z: value = (code - yorigin - yreference) * yincrement;
//! - [L] Keysight InfiniiVision: value = (code - yreference) * yincrement + yorigin;
//! - [L] both: time of point i = (i - xreference) * xincrement + xorigin, relative to the
//!   trigger.
//!
//! BYTE and WORD data come as one IEEE 488.2 definite-length block (parsed by
//! [`super::reply::parse_block`]); WORD is big-endian unless told otherwise (the Keysight
//! default, `:WAVeform:BYTeorder MSBFirst`). ASCII data are comma-separated values already
//! in volts.

/// How a family turns a code into a value with the preamble's y fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum YScaling {
    /// (code - yorigin - yreference) * yincrement (Rigol DS1000Z).
    Rigol,
    /// (code - yreference) * yincrement + yorigin (Keysight InfiniiVision).
    Keysight,
}

/// Data format of the transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One unsigned byte per point.
    Byte,
    /// Two bytes per point, unsigned, big-endian.
    Word,
    /// Comma-separated values in volts.
    Ascii,
}

/// A parsed `:WAVeform:PREamble?` reply.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Preamble {
    /// Data format.
    pub format: Format,
    /// Points in the record.
    pub points: usize,
    /// Seconds between points.
    pub xincrement: f64,
    /// Time of the reference point, in seconds from the trigger.
    pub xorigin: f64,
    /// Index of the reference point.
    pub xreference: f64,
    /// Value per code.
    pub yincrement: f64,
    /// Value offset (its meaning depends on [`YScaling`]).
    pub yorigin: f64,
    /// Code of the reference level.
    pub yreference: f64,
}

impl Preamble {
    /// Parse the ten-field reply.
    pub fn parse(reply: &str) -> Result<Self, String> {
        let f: Vec<&str> = reply.trim().split(',').map(str::trim).collect();
        if f.len() != 10 {
            return Err(format!(
                "waveform preamble has {} fields, 10 expected: `{}`",
                f.len(),
                reply.trim()
            ));
        }
        let num = |k: usize, name: &str| -> Result<f64, String> {
            f[k].parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("waveform preamble field {name} `{}` is not a number", f[k]))
        };
        let format = match num(0, "format")? as i64 {
            0 => Format::Byte,
            1 => Format::Word,
            2 => Format::Ascii,
            other => return Err(format!("waveform preamble format {other} is not 0, 1 or 2")),
        };
        let points = num(2, "points")?;
        if !(0.0..=1e9).contains(&points) {
            return Err(format!("waveform preamble points {points} out of range"));
        }
        Ok(Self {
            format,
            points: points as usize,
            xincrement: num(4, "xincrement")?,
            xorigin: num(5, "xorigin")?,
            xreference: num(6, "xreference")?,
            yincrement: num(7, "yincrement")?,
            yorigin: num(8, "yorigin")?,
            yreference: num(9, "yreference")?,
        })
    }

    /// Time of point `i`, in seconds from the trigger.
    pub fn time(&self, i: usize) -> f64 {
        (i as f64 - self.xreference) * self.xincrement + self.xorigin
    }

    /// The value of a code.
    pub fn value(&self, code: f64, scaling: YScaling) -> f64 {
        match scaling {
            YScaling::Rigol => (code - self.yorigin - self.yreference) * self.yincrement,
            YScaling::Keysight => (code - self.yreference) * self.yincrement + self.yorigin,
        }
    }

    /// Scale the payload of `:WAVeform:DATA?` (the block's bytes for BYTE and WORD, the
    /// text for ASCII) to values.
    pub fn values(&self, payload: &[u8], scaling: YScaling) -> Result<Vec<f64>, String> {
        match self.format {
            Format::Byte => Ok(payload
                .iter()
                .map(|b| self.value(*b as f64, scaling))
                .collect()),
            Format::Word => {
                if !payload.len().is_multiple_of(2) {
                    return Err(format!(
                        "WORD waveform data has an odd length ({} bytes)",
                        payload.len()
                    ));
                }
                Ok(payload
                    .chunks_exact(2)
                    .map(|w| self.value(u16::from_be_bytes([w[0], w[1]]) as f64, scaling))
                    .collect())
            }
            Format::Ascii => std::str::from_utf8(payload)
                .map_err(|_| "ASCII waveform data is not text".to_string())?
                .trim()
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .enumerate()
                .map(|(k, s)| {
                    s.trim().parse::<f64>().map_err(|_| {
                        format!("ASCII waveform point {k} `{}` is not a number", s.trim())
                    })
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const RIGOL: &str = "0,0,1200,1,1.000000e-06,-6.000000e-04,0,4.000000e-01,0,127";

    #[test]
    fn parses_a_preamble_and_times_the_points() {
        let p = Preamble::parse(RIGOL).unwrap();
        assert_eq!(p.format, Format::Byte);
        assert_eq!(p.points, 1200);
        assert!((p.time(600) - 0.0).abs() < 1e-12);
        assert!((p.time(0) + 6e-4).abs() < 1e-12);
    }

    #[rstest]
    #[case::rigol_zero(YScaling::Rigol, 127.0, 0.0)]
    #[case::rigol_up(YScaling::Rigol, 137.0, 4.0)]
    #[case::keysight_zero(YScaling::Keysight, 127.0, 0.0)]
    #[case::keysight_up(YScaling::Keysight, 137.0, 4.0)]
    fn scales_codes(#[case] s: YScaling, #[case] code: f64, #[case] want: f64) {
        let p = Preamble::parse(RIGOL).unwrap();
        assert!((p.value(code, s) - want).abs() < 1e-9);
    }

    #[test]
    fn the_families_differ_when_yorigin_is_not_zero() {
        let p = Preamble::parse("0,0,10,1,1e-6,0,0,0.5,2,100").unwrap();
        assert!((p.value(110.0, YScaling::Rigol) - 4.0).abs() < 1e-9);
        assert!((p.value(110.0, YScaling::Keysight) - 7.0).abs() < 1e-9);
    }

    #[test]
    fn scales_a_byte_block_word_and_ascii() {
        let block = crate::scpi::reply::parse_block(b"#13\x7f\x89\x00").unwrap();
        let p = Preamble::parse(RIGOL).unwrap();
        let v = p.values(block, YScaling::Rigol).unwrap();
        assert_eq!(v.len(), 3);
        for (got, want) in v.iter().zip([0.0, 4.0, -50.8]) {
            assert!((got - want).abs() < 1e-9, "{v:?}");
        }
        let w = Preamble::parse("1,0,2,1,1e-6,0,0,0.001,0,32768").unwrap();
        let v = w
            .values(&[0x80, 0x00, 0x80, 0x0a], YScaling::Keysight)
            .unwrap();
        assert!((v[1] - 0.01).abs() < 1e-12);
        assert!(w.values(&[0x80], YScaling::Keysight).is_err());
        let a = Preamble::parse("2,0,2,1,1e-6,0,0,1,0,0").unwrap();
        assert_eq!(
            a.values(b"1.5,-2e-1\n", YScaling::Rigol).unwrap(),
            vec![1.5, -0.2]
        );
        assert!(a.values(b"1.5,x", YScaling::Rigol).is_err());
    }

    #[rstest]
    #[case::short("0,0,10")]
    #[case::not_a_number("0,0,10,1,x,0,0,1,0,0")]
    #[case::bad_format("7,0,10,1,1e-6,0,0,1,0,0")]
    fn refuses_a_bad_preamble(#[case] reply: &str) {
        assert!(Preamble::parse(reply).is_err());
    }
}
