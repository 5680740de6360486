//! The fast path through a candump log: canonical classic frame lines read without copying.

/// One frame line, read without copying: the common `(secs.frac) iface ID#DATA` form.
pub(super) struct Line<'a> {
    pub(super) stamp: &'a [u8],
    pub(super) interface: &'a [u8],
    pub(super) id: u32,
    pub(super) extended: bool,
    pub(super) len: usize,
}

/// The fast path: a classic data frame in canonical form. Anything else (remote, FD, error
/// frames, dotted data, odd spacing, bad lines) returns `None` and goes through the full
/// candump parser, which accepts it or says precisely what is wrong.
pub(super) fn parse_fast<'a>(line: &'a [u8], data: &mut [u8; 64]) -> Option<Line<'a>> {
    let rest = line.strip_prefix(b"(")?;
    let close = memchr::memchr(b')', rest)?;
    let stamp = rest.get(..close)?;
    let dot = memchr::memchr(b'.', stamp)?;
    let (secs, frac) = (stamp.get(..dot)?, stamp.get(dot + 1..)?);
    let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    if !digits(secs) || !digits(frac) || secs.len() > 20 {
        return None;
    }
    let rest = rest.get(close + 1..)?.strip_prefix(b" ")?;
    let space = memchr::memchr(b' ', rest)?;
    let interface = rest.get(..space)?;
    if interface.is_empty() || !interface.iter().all(u8::is_ascii_graphic) {
        return None;
    }
    let frame = rest.get(space + 1..)?;
    let hash = memchr::memchr(b'#', frame)?;
    let (id_text, hex) = (frame.get(..hash)?, frame.get(hash + 1..)?);
    let extended = match id_text.len() {
        3 => false,
        8 => true,
        _ => return None,
    };
    if !id_text.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let id = u32::from_str_radix(std::str::from_utf8(id_text).ok()?, 16).ok()?;
    if (extended && id > 0x1FFF_FFFF) || (!extended && id > 0x7FF) {
        return None;
    }
    if hex.len() % 2 != 0 || hex.len() > 16 {
        return None;
    }
    hex::decode_to_slice(hex, data.get_mut(..hex.len() / 2)?).ok()?;
    Some(Line {
        stamp,
        interface,
        id,
        extended,
        len: hex.len() / 2,
    })
}
