//! The fast path through a candump log: canonical classic frame lines read without copying,
//! and newline search.

/// One frame line, read without copying: the common `(secs.frac) iface ID#DATA` form.
pub(super) struct Line<'a> {
    pub(super) stamp: &'a [u8],
    pub(super) interface: &'a [u8],
    pub(super) id: u32,
    pub(super) extended: bool,
    pub(super) len: usize,
}

/// Hex digit values; 0xFF for bytes that are not hex digits.
pub(super) const HEX: [u8; 256] = {
    let mut t = [0xFFu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

pub(super) fn hex_nibble(b: u8) -> Option<u8> {
    let v = HEX[usize::from(b)];
    (v != 0xFF).then_some(v)
}

/// The fast path: a classic data frame in canonical form. Anything else (remote, FD, error
/// frames, dotted data, odd spacing, bad lines) returns `None` and goes through the full
/// candump parser, which accepts it or says precisely what is wrong.
pub(super) fn parse_fast<'a>(line: &'a [u8], data: &mut [u8; 64]) -> Option<Line<'a>> {
    let rest = line.strip_prefix(b"(")?;
    let close = rest.iter().position(|&b| b == b')')?;
    let stamp = rest.get(..close)?;
    let dot = stamp.iter().position(|&b| b == b'.')?;
    let (secs, frac) = (stamp.get(..dot)?, stamp.get(dot + 1..)?);
    let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    if !digits(secs) || !digits(frac) || secs.len() > 20 {
        return None;
    }
    let rest = rest.get(close + 1..)?.strip_prefix(b" ")?;
    let space = rest.iter().position(|&b| b == b' ')?;
    let interface = rest.get(..space)?;
    if interface.is_empty() || !interface.iter().all(u8::is_ascii_graphic) {
        return None;
    }
    let frame = rest.get(space + 1..)?;
    let hash = frame.iter().position(|&b| b == b'#')?;
    let (id_text, hex) = (frame.get(..hash)?, frame.get(hash + 1..)?);
    let extended = match id_text.len() {
        3 => false,
        8 => true,
        _ => return None,
    };
    let mut id = 0u32;
    for &b in id_text {
        id = (id << 4) | u32::from(hex_nibble(b)?);
    }
    if (extended && id > 0x1FFF_FFFF) || (!extended && id > 0x7FF) {
        return None;
    }
    if hex.len() % 2 != 0 || hex.len() > 16 {
        return None;
    }
    for (slot, pair) in data.iter_mut().zip(hex.chunks_exact(2)) {
        *slot = (hex_nibble(pair[0])? << 4) | hex_nibble(pair[1])?;
    }
    Some(Line {
        stamp,
        interface,
        id,
        extended,
        len: hex.len() / 2,
    })
}

/// Index of the first `\n`, eight bytes at a time.
pub(super) fn find_newline(s: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const NL: u64 = 0x0A0A_0A0A_0A0A_0A0A;
    let mut words = s.chunks_exact(8);
    let mut at = 0;
    for w in words.by_ref() {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(w);
        let x = u64::from_le_bytes(bytes) ^ NL;
        let found = x.wrapping_sub(ONES) & !x & HIGHS;
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| at + i)
}
