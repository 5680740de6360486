//! Overlapping signals: signals that a frame can carry together must not share bits.

use crate::dbc::error::{DbcError, Location};
use crate::dbc::model::{Multiplex, Signal};

/// Byte masks of each signal's bits in a frame of `size` bytes.
pub(super) fn bit_mask(s: &Signal, size: usize) -> Vec<u8> {
    let mut mask = vec![0u8; size];
    // Layouts were checked against the frame size before; a failure leaves the mask empty.
    let _ = s.insert_bits(&mut mask, u64::MAX);
    mask
}

/// The multiplexor conditions under which a signal is sent: (multiplexor, ranges) up to the top.
pub(super) fn conditions<'s>(
    s: &'s Signal,
    signals: &'s [Signal],
) -> Vec<(&'s str, Vec<(u64, u64)>)> {
    let top = signals
        .iter()
        .find(|x| x.multiplex == Multiplex::Multiplexor)
        .map(|x| x.name.as_str());
    let mut out = Vec::new();
    let mut current = s;
    for _ in 0..=signals.len() {
        match (&current.selector, current.multiplex, top) {
            (Some(sel), _, _) => {
                out.push((sel.multiplexor.as_str(), sel.ranges.clone()));
                match signals.iter().find(|x| x.name == sel.multiplexor) {
                    Some(next) => current = next,
                    None => break,
                }
            }
            (None, Multiplex::Multiplexed(n) | Multiplex::MultiplexedMultiplexor(n), Some(t)) => {
                out.push((t, vec![(n, n)]));
                break;
            }
            _ => break,
        }
    }
    out
}

/// True when no frame can carry both signals: some multiplexor selects them with disjoint values.
pub(super) fn exclusive(a: &[(&str, Vec<(u64, u64)>)], b: &[(&str, Vec<(u64, u64)>)]) -> bool {
    a.iter().any(|(mux_a, ra)| {
        b.iter().any(|(mux_b, rb)| {
            mux_a == mux_b
                && !ra
                    .iter()
                    .any(|(lo_a, hi_a)| rb.iter().any(|(lo_b, hi_b)| lo_a <= hi_b && lo_b <= hi_a))
        })
    })
}

/// Signals that a frame can carry together must not share bits (cantools' strict mode).
pub(super) fn check_overlaps(
    message: &str,
    size: usize,
    signals: &[Signal],
    sites: &[Location],
) -> Result<(), DbcError> {
    let masks: Vec<Vec<u8>> = signals.iter().map(|s| bit_mask(s, size)).collect();
    let conds: Vec<_> = signals.iter().map(|s| conditions(s, signals)).collect();
    for (j, b) in signals.iter().enumerate() {
        for (i, a) in signals.iter().enumerate().take(j) {
            let (Some(ma), Some(mb)) = (masks.get(i), masks.get(j)) else {
                continue;
            };
            let shared: Vec<usize> = ma
                .iter()
                .zip(mb)
                .enumerate()
                .filter(|(_, (x, y))| *x & *y != 0)
                .map(|(k, _)| k)
                .collect();
            if shared.is_empty() {
                continue;
            }
            let (Some(ca), Some(cb)) = (conds.get(i), conds.get(j)) else {
                continue;
            };
            if exclusive(ca, cb) {
                continue;
            }
            let bytes = shared
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            return Err(DbcError::BadSignal {
                at: sites.get(j).cloned().unwrap_or_else(|| Location {
                    origin: String::new(),
                    line: 0,
                    column: 0,
                }),
                message: message.to_string(),
                signal: b.name.clone(),
                reason: format!(
                    "overlaps signal {} (shared bits in byte {bytes}); signals sent in the same \
                     frame must not share bits",
                    a.name
                ),
            });
        }
    }
    Ok(())
}
