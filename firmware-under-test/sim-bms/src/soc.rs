//! State-of-charge estimation of the reference firmware: coulomb counting with a correction
//! from the open-circuit voltage at rest.
//!
//! - At its first sample the estimator takes the state of charge from the mean cell voltage
//!   through the image's OCV table (the pack is assumed at rest when the firmware starts).
//! - Every sample then adds the measured pack current times the time since the previous
//!   sample to the charge held, against the image's declared `capacity_mah` (the estimate is
//!   kept between 0 % and 100 %).
//! - When the current's magnitude has stayed at or below `rest_current_ma` for
//!   `rest_after_ms`, the estimate is set once from the mean cell voltage through the OCV
//!   table (the cells have relaxed to their rest voltage); current flowing again ends the rest.
//!
//! Units are integers: mV, mA, ms, and the state of charge in tenths of a percent (per mille).
//! The charge held is kept in mA·ms, so no rounding accumulates over a long run.

use crate::Sample;

/// Most points an OCV table may have.
pub const MAX_OCV_POINTS: usize = 24;

/// One point of the OCV table: the rest voltage of a cell at a state of charge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OcvPoint {
    /// State of charge, 0.1 % (0 to 1000).
    pub soc_permille: u16,
    /// Rest voltage, mV.
    pub mv: u16,
}

/// The estimator's configuration (the image's `soc:` section).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocConfig {
    /// Capacity the estimator counts against, mAh.
    pub capacity_mah: u32,
    /// How long the current must stay at rest before the OCV correction, ms.
    pub rest_after_ms: u32,
    /// Largest current magnitude that counts as rest, mA.
    pub rest_current_ma: i32,
    /// OCV table, ascending in both state of charge and voltage; `ocv_len` points are used.
    pub ocv: [OcvPoint; MAX_OCV_POINTS],
    /// Number of points used in `ocv`.
    pub ocv_len: u8,
}

impl SocConfig {
    /// The state of charge (0.1 %) whose rest voltage is `mv`, linearly interpolated in the
    /// OCV table and clamped to its ends (0 with an empty table).
    pub fn soc_from_ocv(&self, mv: u16) -> u16 {
        let n = (self.ocv_len as usize).min(MAX_OCV_POINTS);
        let t = &self.ocv[..n];
        let (Some(first), Some(last)) = (t.first(), t.last()) else {
            return 0;
        };
        if mv <= first.mv {
            return first.soc_permille.min(1000);
        }
        if mv >= last.mv {
            return last.soc_permille.min(1000);
        }
        for w in t.windows(2) {
            let (a, b) = (w[0], w[1]);
            if mv <= b.mv {
                let span = (b.mv as i32 - a.mv as i32).max(1);
                let ds = b.soc_permille as i32 - a.soc_permille as i32;
                let s = a.soc_permille as i32 + ds * (mv as i32 - a.mv as i32) / span;
                return s.clamp(0, 1000) as u16;
            }
        }
        last.soc_permille.min(1000)
    }

    fn capacity_mams(&self) -> i64 {
        self.capacity_mah as i64 * 3_600_000
    }
}

/// The running estimate.
#[derive(Debug, Clone)]
pub struct SocEstimator {
    cfg: SocConfig,
    /// Charge held, mA·ms (0 empty, `capacity_mams` full); None before the first sample.
    charge_mams: Option<i64>,
    last_ms: u32,
    /// Start of the current rest, and whether its OCV correction was applied.
    rest_since_ms: Option<u32>,
    corrected: bool,
}

impl SocEstimator {
    /// An estimator that starts from the OCV at its first sample.
    pub fn new(cfg: SocConfig) -> Self {
        Self {
            cfg,
            charge_mams: None,
            last_ms: 0,
            rest_since_ms: None,
            corrected: false,
        }
    }

    /// The configuration it runs.
    pub fn config(&self) -> &SocConfig {
        &self.cfg
    }

    fn set_from_ocv(&mut self, cell_mv: &[u16]) {
        let Some(mean) = mean_mv(cell_mv) else {
            return;
        };
        let permille = self.cfg.soc_from_ocv(mean) as i64;
        self.charge_mams = Some(self.cfg.capacity_mams() * permille / 1000);
    }

    /// Take one AFE sample at `now_ms`; returns the estimate in 0.1 % (0 to 1000).
    pub fn tick(&mut self, now_ms: u32, s: &Sample<'_>) -> u16 {
        match self.charge_mams {
            None => self.set_from_ocv(s.cell_mv),
            Some(q) => {
                let dt = now_ms.wrapping_sub(self.last_ms) as i64;
                let full = self.cfg.capacity_mams();
                self.charge_mams = Some((q + s.current_ma as i64 * dt).clamp(0, full));
            }
        }
        self.last_ms = now_ms;
        if s.current_ma.unsigned_abs() <= self.cfg.rest_current_ma.unsigned_abs() {
            let since = *self.rest_since_ms.get_or_insert(now_ms);
            if !self.corrected && now_ms.wrapping_sub(since) >= self.cfg.rest_after_ms {
                self.set_from_ocv(s.cell_mv);
                self.corrected = true;
            }
        } else {
            self.rest_since_ms = None;
            self.corrected = false;
        }
        self.permille()
    }

    /// The latest estimate in 0.1 % (0 before the first sample).
    pub fn permille(&self) -> u16 {
        let full = self.cfg.capacity_mams();
        match self.charge_mams {
            Some(q) if full > 0 => ((q * 1000 + full / 2) / full).clamp(0, 1000) as u16,
            _ => 0,
        }
    }

    /// The latest estimate in whole percent, rounded (as Pylontech 0x355 carries it).
    pub fn percent(&self) -> u16 {
        (self.permille() + 5) / 10
    }
}

fn mean_mv(cell_mv: &[u16]) -> Option<u16> {
    if cell_mv.is_empty() {
        return None;
    }
    let sum: u32 = cell_mv.iter().map(|v| *v as u32).sum();
    let n = cell_mv.len() as u32;
    Some(((sum + n / 2) / n) as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(capacity_mah: u32) -> SocConfig {
        let mut ocv = [OcvPoint::default(); MAX_OCV_POINTS];
        for (i, (s, mv)) in [
            (0, 2500),
            (100, 3200),
            (500, 3300),
            (900, 3345),
            (1000, 3450),
        ]
        .iter()
        .enumerate()
        {
            ocv[i] = OcvPoint {
                soc_permille: *s,
                mv: *mv,
            };
        }
        SocConfig {
            capacity_mah,
            rest_after_ms: 60_000,
            rest_current_ma: 200,
            ocv,
            ocv_len: 5,
        }
    }

    #[test]
    fn ocv_lookup_interpolates_and_clamps() {
        let c = cfg(100_000);
        assert_eq!(c.soc_from_ocv(3300), 500);
        assert_eq!(c.soc_from_ocv(3250), 300);
        assert_eq!(c.soc_from_ocv(2000), 0);
        assert_eq!(c.soc_from_ocv(4000), 1000);
        let empty = SocConfig { ocv_len: 0, ..c };
        assert_eq!(empty.soc_from_ocv(3300), 0);
    }

    #[test]
    fn starts_from_ocv_and_counts_coulombs_against_the_capacity() {
        let cells = [3300u16; 4];
        let mut e = SocEstimator::new(cfg(100_000));
        assert_eq!(e.tick(0, &Sample::running(&cells, 0)), 500);
        // 20 A for one hour in 50 ms steps: 20 Ah of 100 Ah, +20 %.
        let mut t = 0;
        for _ in 0..72_000 {
            t += 50;
            e.tick(t, &Sample::running(&cells, 20_000));
        }
        assert_eq!(e.permille(), 700);
        assert_eq!(e.percent(), 70);
        // The same throughput against 80 Ah is +25 %.
        let mut e = SocEstimator::new(cfg(80_000));
        e.tick(0, &Sample::running(&cells, 0));
        let mut t = 0;
        for _ in 0..72_000 {
            t += 50;
            e.tick(t, &Sample::running(&cells, 20_000));
        }
        assert_eq!(e.permille(), 750);
    }

    #[test]
    fn a_long_enough_rest_corrects_from_the_ocv_once() {
        let mut e = SocEstimator::new(cfg(100_000));
        e.tick(0, &Sample::running(&[3300; 4], 0));
        // Counting drifted: +10 % by a current the OCV does not show.
        let mut t = 0;
        for _ in 0..360 {
            t += 1000;
            e.tick(t, &Sample::running(&[3300; 4], 100_000));
        }
        assert_eq!(e.permille(), 600);
        // Resting at the 50 % rest voltage from the next sample: unchanged until rest_after
        // (60 s) has passed since that sample, then 50 %.
        let start = t;
        while t < start + 60_000 {
            t += 1000;
            assert_eq!(e.tick(t, &Sample::running(&[3300; 4], 0)), 600, "at {t}");
        }
        t += 1000;
        assert_eq!(e.tick(t, &Sample::running(&[3300; 4], 0)), 500);
        // Once per rest: a later change of the voltage during the same rest is not taken.
        t += 1000;
        assert_eq!(e.tick(t, &Sample::running(&[3345; 4], 0)), 500);
    }

    #[test]
    fn the_estimate_stays_between_empty_and_full() {
        let mut e = SocEstimator::new(cfg(1_000));
        e.tick(0, &Sample::running(&[3345; 4], 0));
        e.tick(3_600_000, &Sample::running(&[3345; 4], 5_000));
        assert_eq!(e.permille(), 1000);
        e.tick(7_200_000, &Sample::running(&[3345; 4], -5_000));
        assert_eq!(e.permille(), 0);
    }
}
