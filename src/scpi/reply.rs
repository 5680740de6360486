//! Parsing of SCPI replies: numbers (NR1/NR2/NR3, with units), booleans, error-queue
//! entries, definite-length blocks, and finding where a reply ends.

/// Values at or above this magnitude are SCPI's "overrange" / "not a number" markers (9.9E37).
const SCPI_OVERRANGE: f64 = 9.9e37;

/// A number as read from a reply, with the unit the instrument wrote after it (if any).
pub use crate::units::UnitValue as Quantity;

/// Parse a numeric reply: NR1 (`48`), NR2 (`48.00`), NR3 (`+4.800000E+01`), or a number
/// followed by a unit (`48.00 V`, `10.00A`, `250 mA`).
pub fn parse_number(text: &str) -> Result<f64, String> {
    parse_reading(text, None).map(|q| q.value)
}

/// Parse a numeric reply and, when the reply carries a unit, check it is `expected_unit`:
/// [`crate::units::parse_quantity`] on the reply without its quotes, refusing SCPI's
/// overrange and not-a-number markers (`9.9E37`).
pub fn parse_reading<'a>(
    text: &'a str,
    expected_unit: Option<&str>,
) -> Result<Quantity<'a>, String> {
    let trimmed = text.trim();
    let trimmed = trimmed
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .map(str::trim)
        .unwrap_or(trimmed);
    if trimmed.is_empty() {
        return Err("empty reply where a number was expected".into());
    }
    let (number, _) = crate::units::split_numeral(trimmed);
    if let Ok(value) = number.parse::<f64>() {
        if !value.is_finite() || value.abs() >= SCPI_OVERRANGE {
            return Err(format!(
                "instrument reported overrange or not-a-number ({number})"
            ));
        }
    }
    crate::units::parse_quantity(trimmed, expected_unit)
}

/// Parse a boolean reply: `1`/`0`, `ON`/`OFF`, `YES`/`NO` (Rigol trip queries), any case,
/// optional sign or quotes.
pub fn parse_bool(text: &str) -> Result<bool, String> {
    let t = text.trim().trim_matches('"').trim();
    match t.to_ascii_uppercase().as_str() {
        "1" | "+1" | "ON" | "YES" => Ok(true),
        "0" | "+0" | "-0" | "OFF" | "NO" => Ok(false),
        _ => Err(format!(
            "`{t}` is not a boolean (expected 1, 0, ON, OFF, YES or NO)"
        )),
    }
}

/// Parse an error-queue entry: `-113,"Undefined header"`, `+0,"No error"`, `0` or `0,No error`.
pub fn parse_error_reply(text: &str) -> Result<(i32, String), String> {
    let t = text.trim();
    let (code_text, message) = match t.split_once(',') {
        Some((code, message)) => (code.trim(), message.trim()),
        None => (t, ""),
    };
    let code: i32 = code_text
        .strip_prefix('+')
        .unwrap_or(code_text)
        .parse()
        .map_err(|_| {
            format!("`{t}` is not an error-queue entry (expected e.g. -113,\"Undefined header\")")
        })?;
    Ok((code, unquote(message)))
}

/// Remove one level of SCPI string quotes (`"..."` or `'...'`), undoubling inner quotes.
pub fn unquote(text: &str) -> String {
    for quote in ['"', '\''] {
        if text.len() >= 2 && text.starts_with(quote) && text.ends_with(quote) {
            let inner = &text[1..text.len() - 1];
            let doubled: String = [quote, quote].iter().collect();
            return inner.replace(&doubled, &quote.to_string());
        }
    }
    text.to_string()
}

/// Split a reply with several fields (`48.00 V, 10.00 A, 480.0 W`) at commas outside quotes.
pub fn split_fields(text: &str) -> Vec<&str> {
    let mut fields = Vec::new();
    let mut start = 0;
    let mut quote: Option<u8> = None;
    for (i, b) in text.bytes().enumerate() {
        match (quote, b) {
            (None, b'"' | b'\'') => quote = Some(b),
            (Some(q), _) if b == q => quote = None,
            (None, b',') => {
                fields.push(text[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    fields.push(text[start..].trim());
    fields
}

/// Where the first reply in a receive buffer ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyEnd {
    /// The reply is `buf[..body_end]`; the terminator ends at `consumed`.
    Complete {
        /// Length of the reply without terminator.
        body_end: usize,
        /// Length including the terminator (bytes to remove from the buffer).
        consumed: usize,
    },
    /// More bytes are needed.
    Incomplete,
    /// The bytes cannot be a reply (e.g. a block header whose length is not a number).
    Malformed(String),
}

/// Find the end of the first reply in `buf`: the first `terminator` that is not inside a
/// definite-length block `#<n><len><bytes>`. A `#` inside a quoted string is not a block.
pub fn find_reply_end(buf: &[u8], terminator: &[u8]) -> ReplyEnd {
    let terminator = if terminator.is_empty() {
        b"\n".as_slice()
    } else {
        terminator
    };
    let mut i = 0;
    let mut quote: Option<u8> = None;
    while i < buf.len() {
        if buf[i..].starts_with(terminator) {
            return ReplyEnd::Complete {
                body_end: i,
                consumed: i + terminator.len(),
            };
        }
        let b = buf[i];
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None if b == b'#' => match block_extent(&buf[i..]) {
                BlockExtent::NotABlock => {}
                BlockExtent::Incomplete => return ReplyEnd::Incomplete,
                BlockExtent::Malformed(reason) => return ReplyEnd::Malformed(reason),
                BlockExtent::Length(len) => {
                    i += len;
                    continue;
                }
            },
            None => {}
        }
        i += 1;
    }
    ReplyEnd::Incomplete
}

enum BlockExtent {
    NotABlock,
    Incomplete,
    Malformed(String),
    Length(usize),
}

/// Largest definite-length block accepted (64 MiB), so a corrupt header cannot exhaust memory.
pub const MAX_BLOCK_LEN: usize = 64 * 1024 * 1024;

/// Extent of a block starting at `buf[0] == b'#'`, header included.
fn block_extent(buf: &[u8]) -> BlockExtent {
    let Some(&n_digit) = buf.get(1) else {
        return BlockExtent::Incomplete;
    };
    // `#0` is an indefinite-length block, which ends at the terminator; `#H`, `#Q`, `#B`
    // are non-decimal numbers. Neither needs skipping.
    if !(b'1'..=b'9').contains(&n_digit) {
        return BlockExtent::NotABlock;
    }
    let n = (n_digit - b'0') as usize;
    let Some(len_digits) = buf.get(2..2 + n) else {
        return BlockExtent::Incomplete;
    };
    if !len_digits.iter().all(u8::is_ascii_digit) {
        return BlockExtent::Malformed(format!(
            "block header `#{}{}` announces {n} length digits but they are not all digits",
            n,
            String::from_utf8_lossy(len_digits)
        ));
    }
    let len: usize = std::str::from_utf8(len_digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(usize::MAX);
    if len > MAX_BLOCK_LEN {
        return BlockExtent::Malformed(format!(
            "block of {len} bytes is larger than the {MAX_BLOCK_LEN}-byte limit"
        ));
    }
    let total = 2 + n + len;
    if buf.len() < total {
        BlockExtent::Incomplete
    } else {
        BlockExtent::Length(total)
    }
}

/// The payload of a reply that is one definite-length block (`#15hello` -> `hello`).
pub fn parse_block(reply: &[u8]) -> Result<&[u8], String> {
    if reply.first() != Some(&b'#') {
        return Err("reply does not start with a `#` block header".into());
    }
    match block_extent(reply) {
        BlockExtent::Length(total) => {
            let n = (reply[1] - b'0') as usize;
            let rest = &reply[total..];
            if !rest.iter().all(|b| matches!(b, b'\r' | b'\n')) {
                return Err(format!("{} bytes follow the block", rest.len()));
            }
            Ok(&reply[2 + n..total])
        }
        BlockExtent::Incomplete => Err("block is shorter than its header announces".into()),
        BlockExtent::Malformed(reason) => Err(reason),
        BlockExtent::NotABlock => {
            Err("`#0` indefinite or non-decimal `#` data is not a definite-length block".into())
        }
    }
}

/// Format a setting for a command: fixed-point, at most 6 decimals, no trailing zeros.
pub fn format_setting(value: f64) -> String {
    let text = format!("{value:.6}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    match text {
        "-0" | "" => "0".to_string(),
        _ => text.to_string(),
    }
}

/// Format a number as NR3 with 6 decimals and a signed two-digit exponent: `4.800000E+01`.
pub fn format_nr3(value: f64) -> String {
    let text = format!("{value:.6E}");
    match text.split_once('E') {
        Some((mantissa, exponent)) => {
            let exp: i32 = exponent.parse().unwrap_or(0);
            let sign = if exp < 0 { '-' } else { '+' };
            format!("{mantissa}E{sign}{:02}", exp.abs())
        }
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("48", 48.0)]
    #[case("48.00", 48.0)]
    #[case("+4.800000E+01", 48.0)]
    #[case("-1.5e-3", -0.0015)]
    #[case("4.8E1", 48.0)]
    #[case("48.00 V", 48.0)]
    #[case("10.00A", 10.0)]
    #[case("480.0 W", 480.0)]
    #[case(" 250 mA\r", 0.25)]
    #[case("\"3.3 V\"", 3.3)]
    #[case(".5", 0.5)]
    fn parses_numbers(#[case] text: &str, #[case] expected: f64) {
        let value = parse_number(text).unwrap();
        assert!((value - expected).abs() < 1e-12, "{text} -> {value}");
    }

    #[rstest]
    #[case("", "empty")]
    #[case("ON", "not a number")]
    #[case("4.8.1", "not a number")]
    #[case("48 V extra", "not a unit")]
    #[case("9.9E+37", "overrange")]
    #[case("9.91E37", "overrange")]
    #[case("-9.9E37", "overrange")]
    #[case("nan", "not a number")]
    fn rejects_non_numbers(#[case] text: &str, #[case] reason: &str) {
        let error = parse_number(text).unwrap_err();
        assert!(error.contains(reason), "{text}: {error}");
    }

    #[rstest]
    #[case("48.00 V", Some("V"), 48.0, "V")]
    #[case("250 mA", Some("A"), 0.25, "A")]
    #[case("2 kW", Some("W"), 2000.0, "W")]
    #[case("1.5", Some("A"), 1.5, "")]
    #[case("1 m", Some("m"), 1.0, "m")]
    fn parses_quantities_with_expected_units(
        #[case] text: &str,
        #[case] expected_unit: Option<&str>,
        #[case] value: f64,
        #[case] unit: &str,
    ) {
        let q = parse_reading(text, expected_unit).unwrap();
        assert!((q.value - value).abs() < 1e-9);
        assert_eq!(q.unit, unit);
    }

    #[test]
    fn wrong_unit_is_an_error() {
        let error = parse_reading("10.00 A", Some("V")).unwrap_err();
        assert!(error.contains("expected a value in V"), "{error}");
    }

    #[rstest]
    #[case("1", true)]
    #[case("0", false)]
    #[case("ON", true)]
    #[case("off\n", false)]
    #[case("+1", true)]
    #[case("\"ON\"", true)]
    #[case("YES", true)]
    #[case("no", false)]
    fn parses_booleans(#[case] text: &str, #[case] expected: bool) {
        assert_eq!(parse_bool(text).unwrap(), expected);
    }

    #[rstest]
    #[case("2")]
    #[case("TRUE")]
    #[case("")]
    fn rejects_non_booleans(#[case] text: &str) {
        assert!(parse_bool(text).is_err());
    }

    #[rstest]
    #[case("0,\"No error\"", 0, "No error")]
    #[case("+0,\"No error\"", 0, "No error")]
    #[case("-113,\"Undefined header\"", -113, "Undefined header")]
    #[case("-222, \"Data out of range\"", -222, "Data out of range")]
    #[case("-221,\"Settings conflict;say \"\"hi\"\"\"", -221, "Settings conflict;say \"hi\"")]
    #[case("0", 0, "")]
    #[case("201,Output locked", 201, "Output locked")]
    fn parses_error_replies(#[case] text: &str, #[case] code: i32, #[case] message: &str) {
        assert_eq!(
            parse_error_reply(text).unwrap(),
            (code, message.to_string())
        );
    }

    #[rstest]
    #[case("No error")]
    #[case("")]
    #[case("\u{fffd}\u{fffd}")]
    #[case("1.5,\"x\"")]
    fn rejects_garbage_error_replies(#[case] text: &str) {
        assert!(parse_error_reply(text).is_err(), "{text}");
    }

    #[test]
    fn splits_measure_arrays_outside_quotes() {
        assert_eq!(
            split_fields("48.00 V, 10.00 A, 480.0 W"),
            vec!["48.00 V", "10.00 A", "480.0 W"]
        );
        assert_eq!(split_fields("\"a,b\",1"), vec!["\"a,b\"", "1"]);
    }

    #[rstest]
    #[case(b"1\n".as_slice(), Some((1, 2)))]
    #[case(b"1\r\n".as_slice(), Some((2, 3)))]
    #[case(b"48.00 V".as_slice(), None)]
    #[case(b"#15he\nlo\n".as_slice(), Some((8, 9)))]
    #[case(b"#15he\nl".as_slice(), None)]
    #[case(b"#2".as_slice(), None)]
    #[case(b"#210\n\n\n\n\n\n\n\n\n\n;1\n".as_slice(), Some((16, 17)))]
    #[case(b"HDR #13a\nb\n".as_slice(), Some((10, 11)))]
    #[case(b"\"#15\"\n".as_slice(), Some((5, 6)))]
    #[case(b"#0abc\n".as_slice(), Some((5, 6)))]
    #[case(b"#H1F\n".as_slice(), Some((4, 5)))]
    fn finds_reply_ends_without_splitting_blocks(
        #[case] buf: &[u8],
        #[case] expected: Option<(usize, usize)>,
    ) {
        let end = find_reply_end(buf, b"\n");
        match expected {
            Some((body_end, consumed)) => {
                assert_eq!(end, ReplyEnd::Complete { body_end, consumed })
            }
            None => assert_eq!(end, ReplyEnd::Incomplete),
        }
    }

    #[test]
    fn multi_byte_terminator() {
        assert_eq!(
            find_reply_end(b"1\n2\r\n", b"\r\n"),
            ReplyEnd::Complete {
                body_end: 3,
                consumed: 5
            }
        );
    }

    #[rstest]
    #[case(b"#3ab\n".as_slice())]
    #[case(b"#9999999999\n".as_slice())]
    fn malformed_block_headers_are_reported(#[case] buf: &[u8]) {
        assert!(matches!(find_reply_end(buf, b"\n"), ReplyEnd::Malformed(_)));
    }

    #[test]
    fn block_payload() {
        assert_eq!(parse_block(b"#15he\nlo").unwrap(), b"he\nlo");
        assert_eq!(parse_block(b"#15he\nlo\r\n").unwrap(), b"he\nlo");
        assert!(parse_block(b"#15he").is_err());
        assert!(parse_block(b"15hello").is_err());
        assert!(parse_block(b"#12abX").is_err());
    }

    #[rstest]
    #[case(58.4, "58.4")]
    #[case(10.0, "10")]
    #[case(0.1 + 0.2, "0.3")]
    #[case(-0.0, "0")]
    #[case(0.0000001, "0")]
    #[case(1.25e-3, "0.00125")]
    fn formats_settings(#[case] value: f64, #[case] text: &str) {
        assert_eq!(format_setting(value), text);
    }

    #[rstest]
    #[case(48.0, "4.800000E+01")]
    #[case(0.0, "0.000000E+00")]
    #[case(-0.0015, "-1.500000E-03")]
    #[case(1.5e20, "1.500000E+20")]
    #[case(2.5e-12, "2.500000E-12")]
    fn formats_nr3(#[case] value: f64, #[case] text: &str) {
        assert_eq!(format_nr3(value), text);
        assert!((parse_number(text).unwrap() - value).abs() <= value.abs() * 1e-6);
    }
}
