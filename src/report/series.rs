//! Reading `trace.csv` back for plots: one streaming pass that keeps only the channels a
//! caller asks for. Rows of other channels are skipped without parsing their numbers, so a
//! long 40-channel trace loads in a fraction of the time a full parse would take.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use super::ReportError;

/// The samples of one channel, in file order.
#[derive(Debug, Clone, Default)]
pub struct Channel {
    /// Unit as written in the trace (`V`, `A`, `degC`, empty for states and flags).
    pub unit: String,
    /// Times, seconds since the run clock's origin.
    pub t: Vec<f64>,
    /// Values, SI units.
    pub v: Vec<f64>,
}

impl Channel {
    /// Index range of the samples with `t0 <= t <= t1`, widened by one sample each side
    /// (so a line enters and leaves the plot window). Assumes times are non-decreasing.
    pub fn window(&self, t0: f64, t1: f64) -> std::ops::Range<usize> {
        let a = self.t.partition_point(|&t| t < t0).saturating_sub(1);
        let b = (self.t.partition_point(|&t| t <= t1) + 1).min(self.t.len());
        a..b.max(a)
    }
}

/// Channels read from a trace.
#[derive(Debug, Clone, Default)]
pub struct Traces {
    /// Channel name -> samples.
    pub channels: BTreeMap<String, Channel>,
    /// Rows in the file (all channels).
    pub rows: u64,
    /// Rows that could not be read (bad numbers, missing fields).
    pub bad_rows: u64,
}

impl Traces {
    /// A channel by name.
    pub fn get(&self, name: &str) -> Option<&Channel> {
        self.channels.get(name)
    }
}

/// Which channels to keep: `want(channel, unit)`.
pub type Want<'a> = &'a (dyn Fn(&str, &str) -> bool + Sync);

/// Read `path`, keeping the channels for which `want(channel, unit)` is true. Large files
/// are split into byte ranges read on all cores; each channel keeps its file order.
pub fn read_trace(path: &Path, want: Want) -> Result<Traces, ReportError> {
    let len = std::fs::metadata(path)
        .map_err(|e| ReportError::io(path, e))?
        .len();
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(8);
    let workers = if len < (16 << 20) { 1 } else { workers };
    let bounds: Vec<(u64, u64)> = (0..workers as u64)
        .map(|i| (len * i / workers as u64, len * (i + 1) / workers as u64))
        .collect();
    let parts: Vec<std::io::Result<Partial>> = std::thread::scope(|sc| {
        let handles: Vec<_> = bounds
            .iter()
            .map(|&(start, end)| sc.spawn(move || read_range(path, start, end, want)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("trace reader failed")))
            })
            .collect()
    });
    let mut out = Traces::default();
    for p in parts {
        let p = p.map_err(|e| ReportError::io(path, e))?;
        out.rows += p.rows;
        out.bad_rows += p.bad_rows;
        for (name, c) in p.slots {
            let e = out.channels.entry(name).or_insert_with(|| Channel {
                unit: c.unit.clone(),
                ..Channel::default()
            });
            e.t.extend_from_slice(&c.t);
            e.v.extend_from_slice(&c.v);
        }
    }
    for c in out.channels.values_mut() {
        sort_by_time(c);
    }
    Ok(out)
}

fn read_range(path: &Path, start: u64, end: u64, want: Want) -> std::io::Result<Partial> {
    use std::io::{Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    // A line belongs to the range it starts in: begin after the first newline at or after
    // `start - 1`.
    let from = start.saturating_sub(1);
    f.seek(SeekFrom::Start(from))?;
    scan(f, from, start > 0, end, want)
}

/// Read a trace from any reader (see `read_trace`).
pub fn read_from(r: impl Read, want: Want) -> std::io::Result<Traces> {
    let p = scan(r, 0, false, u64::MAX, want)?;
    let mut out = Traces {
        rows: p.rows,
        bad_rows: p.bad_rows,
        ..Traces::default()
    };
    for (name, mut c) in p.slots {
        sort_by_time(&mut c);
        out.channels.insert(name, c);
    }
    Ok(out)
}

fn sort_by_time(c: &mut Channel) {
    // Rows of one channel come from one task in time order; sort defensively if not.
    if c.t.windows(2).any(|w| w[1] < w[0]) {
        let mut idx: Vec<usize> = (0..c.t.len()).collect();
        idx.sort_by(|&a, &b| c.t[a].total_cmp(&c.t[b]));
        c.t = idx.iter().map(|&i| c.t[i]).collect();
        c.v = idx.iter().map(|&i| c.v[i]).collect();
    }
}

/// What one reader of a byte range found.
struct Partial {
    slots: Vec<(String, Channel)>,
    rows: u64,
    bad_rows: u64,
}

/// Scan lines starting at absolute offset `base` (skipping up to the first newline when
/// `skip_partial`), keeping lines that start before `end`.
fn scan(
    mut r: impl Read,
    base: u64,
    skip_partial: bool,
    end_at: u64,
    want: Want,
) -> std::io::Result<Partial> {
    let mut out = Partial {
        slots: Vec::new(),
        rows: 0,
        bad_rows: 0,
    };
    // Decisions per distinct (channel, unit) field text: index into `slots` or None.
    let mut seen: Vec<(Vec<u8>, Option<usize>)> = Vec::new();
    let mut last_hit = 0usize;
    let mut buf = vec![0u8; 4 << 20];
    let mut carry: Vec<u8> = Vec::new();
    let mut skipping = skip_partial;
    let mut header = base == 0;
    // Absolute offset of the first byte of the current chunk.
    let mut chunk_at = base;
    'read: loop {
        let n = r.read(&mut buf)?;
        let eof = n == 0;
        let chunk: &[u8] = if carry.is_empty() {
            &buf[..n]
        } else {
            carry.extend_from_slice(&buf[..n]);
            &carry
        };
        let end = if eof {
            chunk.len()
        } else {
            match chunk.iter().rposition(|&b| b == b'\n') {
                Some(i) => i + 1,
                None => {
                    if carry.is_empty() {
                        carry.extend_from_slice(&buf[..n]);
                    }
                    continue;
                }
            }
        };
        let mut pos = 0usize;
        while pos < end {
            let line_start = chunk_at + pos as u64;
            // One pass over the line: the first three commas and the newline.
            let mut commas = [0usize; 3];
            let mut nc = 0;
            let mut i = pos;
            while i < end {
                let b = chunk[i];
                if b == b'\n' {
                    break;
                }
                if b == b',' && nc < 3 {
                    commas[nc] = i - pos;
                    nc += 1;
                }
                i += 1;
            }
            let line = &chunk[pos..i];
            pos = i + 1;
            if skipping {
                skipping = false;
                continue;
            }
            if line_start >= end_at {
                break 'read;
            }
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            if header {
                header = false;
                if line.starts_with(b"t_s,") {
                    continue;
                }
            }
            out.rows += 1;
            // t_s,channel,value,unit
            if nc < 3 || commas[2] >= line.len() {
                out.bad_rows += 1;
                continue;
            }
            let [c1, c2, c3] = commas;
            let channel = &line[c1 + 1..c2];
            let value = &line[c2 + 1..c3];
            let unit = &line[c3 + 1..];
            let key_matches = |k: &Vec<u8>| {
                k.len() == channel.len() + 1 + unit.len()
                    && &k[..channel.len()] == channel
                    && &k[channel.len() + 1..] == unit
            };
            // Traces cycle through their channels in a stable order: try the entry after
            // the last hit first, then the same one, then a search.
            let next = if last_hit + 1 < seen.len() {
                last_hit + 1
            } else {
                0
            };
            let slot = if seen.get(next).is_some_and(|(k, _)| key_matches(k)) {
                last_hit = next;
                seen[next].1
            } else if seen.get(last_hit).is_some_and(|(k, _)| key_matches(k)) {
                seen[last_hit].1
            } else if let Some(i) = seen.iter().position(|(k, _)| key_matches(k)) {
                last_hit = i;
                seen[i].1
            } else {
                let ch = String::from_utf8_lossy(channel).into_owned();
                let un = String::from_utf8_lossy(unit).into_owned();
                let slot = if want(&ch, &un) {
                    // One channel with two units only through a bug; keep the first unit.
                    match out.slots.iter().position(|(n, _)| *n == ch) {
                        Some(i) => Some(i),
                        None => {
                            out.slots.push((
                                ch,
                                Channel {
                                    unit: un,
                                    ..Channel::default()
                                },
                            ));
                            Some(out.slots.len() - 1)
                        }
                    }
                } else {
                    None
                };
                let mut key = channel.to_vec();
                key.push(b',');
                key.extend_from_slice(unit);
                seen.push((key, slot));
                last_hit = seen.len() - 1;
                slot
            };
            let Some(slot) = slot else { continue };
            match (parse_f64(&line[..c1]), parse_f64(value)) {
                (Some(t), Some(v)) => {
                    let c = &mut out.slots[slot].1;
                    c.t.push(t);
                    c.v.push(v);
                }
                _ => out.bad_rows += 1,
            }
        }
        if eof {
            break;
        }
        chunk_at += end as u64;
        let tail = chunk[end..].to_vec();
        carry = tail;
    }
    Ok(out)
}

/// Parse a decimal number: a fast exact path for plain decimals of up to 15 significant
/// digits (what the trace writer produces for times), the standard parser otherwise.
pub fn parse_f64(s: &[u8]) -> Option<f64> {
    const POW10: [f64; 16] = [
        1.0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    ];
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut mant: u64 = 0;
    let mut ndig = 0usize;
    let mut frac: Option<usize> = None;
    let mut ok = !digits.is_empty();
    for &b in digits {
        match b {
            b'0'..=b'9' => {
                mant = mant.wrapping_mul(10).wrapping_add((b - b'0') as u64);
                ndig += 1;
                if let Some(f) = frac.as_mut() {
                    *f += 1;
                }
            }
            b'.' if frac.is_none() => frac = Some(0),
            _ => {
                ok = false;
                break;
            }
        }
    }
    if ok && ndig > 0 && ndig <= 15 {
        let v = mant as f64 / POW10[frac.unwrap_or(0)];
        return Some(if neg { -v } else { v });
    }
    std::str::from_utf8(s).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_wanted_channels_only_and_survives_chunk_edges() {
        let mut csv = String::from("t_s,channel,value,unit\n");
        for i in 0..20_000 {
            let t = i as f64 * 0.01;
            csv.push_str(&format!("{t:.6},a,{},V\n", i as f64 * 0.5));
            csv.push_str(&format!("{t:.6},b,{},A\n", -(i as f64)));
            csv.push_str(&format!("{t:.6},flag,{},\n", i % 2));
        }
        csv.push_str("garbage line\n");
        let tr = read_from(csv.as_bytes(), &|c, u| c == "a" || u.is_empty()).unwrap();
        assert_eq!(tr.rows, 60_001);
        assert_eq!(tr.bad_rows, 1);
        assert!(tr.get("b").is_none());
        let a = tr.get("a").unwrap();
        assert_eq!(a.unit, "V");
        assert_eq!(a.t.len(), 20_000);
        assert_eq!(a.v[19_999], 9999.5);
        assert_eq!(tr.get("flag").unwrap().v[3], 1.0);
        let w = a.window(1.0, 2.0);
        assert_eq!((w.start, w.end), (99, 202));
    }

    #[test]
    fn split_reading_equals_one_pass() {
        let dir = std::env::temp_dir().join(format!("hilrig-series-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("trace.csv");
        let mut csv = String::from("t_s,channel,value,unit\n");
        for i in 0..400_000 {
            csv.push_str(&format!("{:.6},ch{},{},V\n", i as f64 * 1e-3, i % 7, i));
        }
        std::fs::write(&path, &csv).unwrap();
        let whole = read_from(csv.as_bytes(), &|c, _| c != "ch3").unwrap();
        let split = read_trace(&path, &|c, _| c != "ch3").unwrap();
        assert_eq!(whole.rows, 400_000);
        assert_eq!(split.rows, whole.rows);
        assert_eq!(split.channels.len(), 6);
        for (k, c) in &whole.channels {
            assert_eq!(split.channels[k].v, c.v, "{k}");
            assert_eq!(split.channels[k].t, c.t, "{k}");
        }
        // Every split point, including ones that fall on a line start.
        for cut in [1u64, 23, 24, 25, 1000, csv.len() as u64 / 2] {
            let a = read_range(&path, 0, cut, &|_, _| true).unwrap();
            let b = read_range(&path, cut, csv.len() as u64, &|_, _| true).unwrap();
            assert_eq!(a.rows + b.rows, 400_000, "cut {cut}");
        }
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn number_parser_matches_std() {
        for s in [
            "0",
            "12.345678",
            "-3.5",
            "3.6510000000000002",
            "1e-3",
            "0.000001",
            "52.8",
            "-0.0",
            "123456789.123456",
        ] {
            assert_eq!(parse_f64(s.as_bytes()), s.parse::<f64>().ok(), "{s}");
        }
        assert_eq!(parse_f64(b"x1"), None);
        assert_eq!(parse_f64(b""), None);
    }
}
