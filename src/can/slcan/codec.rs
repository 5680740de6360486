//! The SLCAN text codec: one line without its CR terminator to a frame, status or reply,
//! and a frame to its line. Pure, usable by fakes and tests.

use thiserror::Error;

use crate::can::{BusState, Frame, FrameKind, FD_LENGTHS};

/// One frame line: the frame and how it travelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlcanFrame {
    /// The frame and its kind; for a remote frame `data` holds the requested length as zero
    /// bytes.
    pub frame: Frame,
    /// Adapter timestamp in milliseconds (0..60000), when timestamps are on.
    pub timestamp_ms: Option<u16>,
}

/// One CR-terminated line from an adapter, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A received frame.
    Frame(SlcanFrame),
    /// A bare CR: the last command succeeded.
    Ok,
    /// `z` or `Z`: a transmitted frame was accepted (Lawicel).
    TxAck,
    /// `Fxx`: status flags (bit 2 error warning, bit 5 error passive, ...).
    Status(u8),
    /// `s<a|w|p|b>RRRTTT`: controller state with receive and transmit error counters.
    State {
        /// The state the adapter reports.
        state: BusState,
        /// Receive error counter.
        rx_errors: u16,
        /// Transmit error counter.
        tx_errors: u16,
    },
    /// `V...` / `v...`: hardware and software version.
    Version(String),
    /// `N...`: serial number.
    Serial(String),
}

/// Status flag: error warning (`F` bit 2).
pub const STATUS_ERROR_WARNING: u8 = 0x04;
/// Status flag: error passive (`F` bit 5).
pub const STATUS_ERROR_PASSIVE: u8 = 0x20;

/// The bus state that `F` status flags imply (the flags have no bus-off bit).
pub fn state_from_status(flags: u8) -> BusState {
    if flags & STATUS_ERROR_PASSIVE != 0 {
        BusState::ErrorPassive
    } else if flags & STATUS_ERROR_WARNING != 0 {
        BusState::ErrorWarning
    } else {
        BusState::ErrorActive
    }
}

/// What is wrong with one SLCAN line.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SlcanLineError {
    /// The line has bytes that are not printable ASCII.
    #[error("not ASCII text")]
    NotText,
    /// The first character is no reply or frame this codec knows.
    #[error("unknown line type `{0}`")]
    Unknown(char),
    /// The line ends before the id and DLC.
    #[error("frame line `{0}` is too short for its id and length digit")]
    Truncated(String),
    /// The id is not hexadecimal.
    #[error("id `{0}` is not hexadecimal")]
    BadId(String),
    /// The id is too large for its kind.
    #[error("id {id:X} is above {max:X}")]
    IdRange {
        /// The id.
        id: u32,
        /// The largest id of its kind.
        max: u32,
    },
    /// The length digit is not valid for the frame kind.
    #[error("length digit `{digit}` is not valid for a {kind} frame")]
    BadDlc {
        /// The digit.
        digit: char,
        /// Classic, remote or CAN FD.
        kind: &'static str,
    },
    /// The number of data digits does not match the length digit.
    #[error(
        "{got} hex digits after the length digit, but length {len} needs {want} \
         (or {want_ts} with a timestamp)"
    )]
    DataLength {
        /// Data bytes the DLC gives.
        len: usize,
        /// Digits found.
        got: usize,
        /// Digits needed without a timestamp.
        want: usize,
        /// Digits needed with a timestamp.
        want_ts: usize,
    },
    /// Data or timestamp digits that are not hexadecimal.
    #[error("`{0}` is not hexadecimal")]
    NotHex(String),
    /// A status reply that is not `F` and two hex digits.
    #[error("status reply `{0}` is not `F` and two hex digits")]
    BadStatus(String),
    /// A state line that is not `s<a|w|p|b>` and six decimal digits.
    #[error("state line `{0}` is not `s<a|w|p|b>RRRTTT`")]
    BadState(String),
    /// A frame that cannot be written as an SLCAN line.
    #[error("cannot encode: {0}")]
    Encode(String),
}

pub(super) fn hex_u32(text: &[u8]) -> Option<u32> {
    if text.is_empty() || text.len() > 8 {
        return None;
    }
    let mut v: u32 = 0;
    for &b in text {
        v = (v << 4) | u32::from(hex_digit(b)?);
    }
    Some(v)
}

pub(super) fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

pub(super) fn text(line: &[u8]) -> String {
    String::from_utf8_lossy(line).into_owned()
}

/// Decode one line from an adapter, without its CR terminator.
pub fn decode_line(line: &[u8]) -> Result<Incoming, SlcanLineError> {
    if !line.iter().all(|b| (0x20..0x7F).contains(b)) {
        return Err(SlcanLineError::NotText);
    }
    let Some((&first, rest)) = line.split_first() else {
        return Ok(Incoming::Ok);
    };
    match first {
        b't' | b'T' | b'r' | b'R' | b'd' | b'D' | b'b' | b'B' => {
            decode_frame(first, rest, line).map(Incoming::Frame)
        }
        b'z' | b'Z' if rest.is_empty() => Ok(Incoming::TxAck),
        b'F' => match rest {
            [h, l] => match (hex_digit(*h), hex_digit(*l)) {
                (Some(h), Some(l)) => Ok(Incoming::Status((h << 4) | l)),
                _ => Err(SlcanLineError::BadStatus(text(line))),
            },
            _ => Err(SlcanLineError::BadStatus(text(line))),
        },
        b's' => decode_state(rest).ok_or_else(|| SlcanLineError::BadState(text(line))),
        b'V' | b'v' => Ok(Incoming::Version(text(rest))),
        b'N' => Ok(Incoming::Serial(text(rest))),
        other => Err(SlcanLineError::Unknown(char::from(other))),
    }
}

pub(super) fn decode_state(rest: &[u8]) -> Option<Incoming> {
    let (&code, counters) = rest.split_first()?;
    let state = match code {
        b'a' => BusState::ErrorActive,
        b'w' => BusState::ErrorWarning,
        b'p' => BusState::ErrorPassive,
        b'b' => BusState::BusOff,
        _ => return None,
    };
    if counters.len() != 6 || !counters.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let number = |digits: &[u8]| {
        digits
            .iter()
            .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'))
    };
    Some(Incoming::State {
        state,
        rx_errors: number(counters.get(..3)?),
        tx_errors: number(counters.get(3..)?),
    })
}

pub(super) fn decode_frame(
    kind: u8,
    rest: &[u8],
    line: &[u8],
) -> Result<SlcanFrame, SlcanLineError> {
    let extended = kind.is_ascii_uppercase();
    let remote = matches!(kind, b'r' | b'R');
    let fd = matches!(kind, b'd' | b'D' | b'b' | b'B');
    let brs = matches!(kind, b'b' | b'B');
    let id_len = if extended { 8 } else { 3 };
    let (id_text, rest) = rest
        .split_at_checked(id_len)
        .ok_or_else(|| SlcanLineError::Truncated(text(line)))?;
    let (&dlc, digits) = rest
        .split_first()
        .ok_or_else(|| SlcanLineError::Truncated(text(line)))?;

    let id = hex_u32(id_text).ok_or_else(|| SlcanLineError::BadId(text(id_text)))?;
    let max = if extended { 0x1FFF_FFFF } else { 0x7FF };
    if id > max {
        return Err(SlcanLineError::IdRange { id, max });
    }

    let kind_name = if fd {
        "CAN FD"
    } else if remote {
        "remote"
    } else {
        "classic"
    };
    let code = hex_digit(dlc).ok_or(SlcanLineError::BadDlc {
        digit: char::from(dlc),
        kind: kind_name,
    })?;
    let len = if fd {
        FD_LENGTHS[usize::from(code)]
    } else if code <= 8 {
        usize::from(code)
    } else {
        return Err(SlcanLineError::BadDlc {
            digit: char::from(dlc),
            kind: kind_name,
        });
    };

    let want = if remote { 0 } else { 2 * len };
    let (data_digits, stamp) = if digits.len() == want {
        (digits, None)
    } else if digits.len() == want + 4 {
        let (d, s) = digits.split_at(want);
        (d, Some(s))
    } else {
        return Err(SlcanLineError::DataLength {
            len,
            got: digits.len(),
            want,
            want_ts: want + 4,
        });
    };

    let data = if remote {
        vec![0; len]
    } else {
        data_digits
            .chunks_exact(2)
            .map(|pair| match (hex_digit(pair[0]), hex_digit(pair[1])) {
                (Some(h), Some(l)) => Ok((h << 4) | l),
                _ => Err(SlcanLineError::NotHex(text(data_digits))),
            })
            .collect::<Result<Vec<u8>, _>>()?
    };
    let timestamp_ms = match stamp {
        Some(s) => Some(
            hex_u32(s)
                .and_then(|v| u16::try_from(v).ok())
                .ok_or_else(|| SlcanLineError::NotHex(text(s)))?,
        ),
        None => None,
    };
    let kind = if remote {
        FrameKind::Remote
    } else if fd {
        FrameKind::Fd { brs, esi: false }
    } else {
        FrameKind::Classic
    };
    Ok(SlcanFrame {
        frame: Frame {
            id,
            extended,
            data,
            kind,
        },
        timestamp_ms,
    })
}

/// Encode a frame as one SLCAN line, CR included (`t1232AABB\r`).
pub fn encode_frame(f: &SlcanFrame) -> Result<String, SlcanLineError> {
    let frame = &f.frame;
    let len = frame.data.len();
    let err = |m: String| Err(SlcanLineError::Encode(m));
    let (remote, fd, brs) = match frame.kind {
        FrameKind::Classic => (false, false, false),
        FrameKind::Remote => (true, false, false),
        FrameKind::Fd { brs, .. } => (false, true, brs),
        FrameKind::Error => return err("error frames cannot be sent".into()),
    };
    let dlc = if fd {
        match FD_LENGTHS.iter().position(|&l| l == len) {
            Some(code) => code,
            None => {
                return err(format!(
                    "{len} data bytes: a CAN FD frame carries 0-8, 12, 16, 20, 24, 32, 48 or 64"
                ))
            }
        }
    } else if len <= 8 {
        len
    } else {
        return err(format!(
            "{len} data bytes: a classic frame carries at most 8"
        ));
    };
    let kind = match (remote, fd, brs, frame.extended) {
        (true, _, _, false) => 'r',
        (true, _, _, true) => 'R',
        (false, true, true, false) => 'b',
        (false, true, true, true) => 'B',
        (false, true, false, false) => 'd',
        (false, true, false, true) => 'D',
        (false, false, _, false) => 't',
        (false, false, _, true) => 'T',
    };
    let mut out = String::with_capacity(1 + 8 + 1 + 2 * len + 5);
    out.push(kind);
    if frame.extended {
        if frame.id > 0x1FFF_FFFF {
            return err(format!("extended id {:X} is above 1FFFFFFF", frame.id));
        }
        out.push_str(&format!("{:08X}", frame.id));
    } else {
        if frame.id > 0x7FF {
            return err(format!("standard id {:X} is above 7FF", frame.id));
        }
        out.push_str(&format!("{:03X}", frame.id));
    }
    out.push_str(&format!("{dlc:X}"));
    if !remote {
        out.push_str(&hex::encode_upper(&frame.data));
    }
    if let Some(ms) = f.timestamp_ms {
        out.push_str(&format!("{ms:04X}"));
    }
    out.push('\r');
    Ok(out)
}
