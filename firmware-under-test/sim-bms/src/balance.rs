//! Passive cell balancing: which cells bleed through their balancing resistors.
//!
//! The decision rests only on the core's own cell-voltage samples. A cell starts to bleed
//! when it is at least `start_spread_mv` above the lowest cell, and keeps bleeding until it
//! is less than `stop_spread_mv` above the lowest cell (per-cell hysteresis), so balancing as
//! a whole stops once the spread (highest minus lowest) has fallen below the stop spread.
//! Balancing runs only in the pack condition the image declares (`when`: charging, at
//! rest, or both; rest is a pack current within the core's dead band) and never with an
//! active protection fault. At most `max_cells` cells bleed at once: the highest ones.

/// When the firmware may balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Only while the pack charges (current into the pack above the dead band).
    Charging,
    /// Only at rest (pack current within the dead band).
    Rest,
    /// While charging and at rest, never while discharging.
    Both,
}

/// Balancing settings (what an image declares).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BalanceConfig {
    /// A cell this far above the lowest cell starts to bleed, in mV.
    pub start_spread_mv: u16,
    /// A bleeding cell stops once it is less than this above the lowest cell, in mV.
    pub stop_spread_mv: u16,
    /// When balancing may run.
    pub when: When,
    /// Most cells bleeding at once.
    pub max_cells: u8,
    /// Bleed current through one balancing resistor, in mA (for the host's hardware).
    pub bleed_ma: u32,
}

/// Seeded balancing defects; all false in a good image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BalanceDefects {
    /// The bleed switch of the next cell is driven (an off-by-one in the switch index).
    pub wrong_cell: bool,
    /// Balancing never starts.
    pub never: bool,
}

/// The balancing state: the cells bleeding now, one bit per cell (bit 0 is cell 1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Balancer {
    chosen: u32,
}

impl Balancer {
    /// Decide the bleeding cells for one sample; returns the switch mask driven (bit 0 is
    /// cell 1). `pack_state` says whether the pack charges, rests or discharges; `fault`
    /// whether a protection fault is active.
    pub fn tick(
        &mut self,
        cfg: &BalanceConfig,
        defects: BalanceDefects,
        cell_mv: &[u16],
        pack: PackState,
        fault: bool,
    ) -> u32 {
        let n = cell_mv.len().min(32);
        let cells = &cell_mv[..n];
        let allowed = matches!(
            (cfg.when, pack),
            (When::Both | When::Charging, PackState::Charging)
                | (When::Both | When::Rest, PackState::Rest)
        );
        let Some(min) = cells.iter().copied().min() else {
            self.chosen = 0;
            return 0;
        };
        if !allowed || fault || defects.never {
            self.chosen = 0;
            return 0;
        }
        let mut wanted = 0u32;
        for (i, v) in cells.iter().enumerate() {
            let above = v.saturating_sub(min);
            let bleeding = self.chosen & (1 << i) != 0;
            let keep = if bleeding {
                above >= cfg.stop_spread_mv
            } else {
                above >= cfg.start_spread_mv
            };
            if keep {
                wanted |= 1 << i;
            }
        }
        // At most `max_cells`: the highest ones (the lower index on a tie).
        while wanted.count_ones() > cfg.max_cells as u32 {
            let lowest = (0..n)
                .filter(|i| wanted & (1 << i) != 0)
                .min_by_key(|i| (cells[*i], core::cmp::Reverse(*i)));
            match lowest {
                Some(i) => wanted &= !(1 << i),
                None => break,
            }
        }
        self.chosen = wanted;
        if defects.wrong_cell {
            // The switch of the next cell is driven; past the last cell nothing is.
            (wanted << 1) & low_bits(n)
        } else {
            wanted
        }
    }
}

/// Whether the pack charges, rests or discharges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackState {
    /// Current into the pack above the dead band.
    Charging,
    /// Current within the dead band.
    Rest,
    /// Current out of the pack above the dead band.
    Discharging,
}

fn low_bits(n: usize) -> u32 {
    if n >= 32 {
        u32::MAX
    } else {
        (1u32 << n) - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(when: When) -> BalanceConfig {
        BalanceConfig {
            start_spread_mv: 30,
            stop_spread_mv: 10,
            when,
            max_cells: 2,
            bleed_ma: 100,
        }
    }

    fn decide(b: &mut Balancer, cells: &[u16], pack: PackState, d: BalanceDefects) -> u32 {
        b.tick(&cfg(When::Both), d, cells, pack, false)
    }

    #[test]
    fn starts_above_the_start_spread_and_stops_below_the_stop_spread() {
        let mut b = Balancer::default();
        let ok = BalanceDefects::default();
        // 29 mV: nothing; 30 mV: cell 3.
        assert_eq!(
            decide(&mut b, &[3300, 3300, 3329, 3300], PackState::Rest, ok),
            0
        );
        assert_eq!(
            decide(&mut b, &[3300, 3300, 3330, 3300], PackState::Rest, ok),
            0b100
        );
        // Between stop and start it goes on (hysteresis), below stop it ends.
        assert_eq!(
            decide(&mut b, &[3300, 3300, 3310, 3300], PackState::Rest, ok),
            0b100
        );
        assert_eq!(
            decide(&mut b, &[3300, 3300, 3309, 3300], PackState::Rest, ok),
            0
        );
        // And does not restart between the two.
        assert_eq!(
            decide(&mut b, &[3300, 3300, 3320, 3300], PackState::Rest, ok),
            0
        );
    }

    #[test]
    fn at_most_max_cells_bleed_the_highest_ones() {
        let mut b = Balancer::default();
        let m = decide(
            &mut b,
            &[3340, 3300, 3360, 3350],
            PackState::Charging,
            BalanceDefects::default(),
        );
        assert_eq!(m, 0b1100);
    }

    #[test]
    fn the_declared_pack_condition_and_faults_gate_it() {
        let spread = [3300, 3340, 3300, 3300];
        for (when, pack, expected) in [
            (When::Both, PackState::Rest, 0b10),
            (When::Both, PackState::Charging, 0b10),
            (When::Both, PackState::Discharging, 0),
            (When::Charging, PackState::Rest, 0),
            (When::Charging, PackState::Charging, 0b10),
            (When::Rest, PackState::Charging, 0),
            (When::Rest, PackState::Rest, 0b10),
        ] {
            let mut b = Balancer::default();
            let got = b.tick(&cfg(when), BalanceDefects::default(), &spread, pack, false);
            assert_eq!(got, expected, "{when:?} {pack:?}");
        }
        let mut b = Balancer::default();
        let got = b.tick(
            &cfg(When::Both),
            BalanceDefects::default(),
            &spread,
            PackState::Rest,
            true,
        );
        assert_eq!(got, 0, "no balancing with a fault");
    }

    #[test]
    fn seeded_defects_bleed_the_neighbour_or_nothing() {
        let spread = [3300, 3340, 3300, 3300];
        let wrong = BalanceDefects {
            wrong_cell: true,
            never: false,
        };
        assert_eq!(
            decide(&mut Balancer::default(), &spread, PackState::Rest, wrong),
            0b100
        );
        // The last cell's neighbour does not exist.
        let last = [3300, 3300, 3300, 3340];
        assert_eq!(
            decide(&mut Balancer::default(), &last, PackState::Rest, wrong),
            0
        );
        let never = BalanceDefects {
            wrong_cell: false,
            never: true,
        };
        assert_eq!(
            decide(&mut Balancer::default(), &spread, PackState::Rest, never),
            0
        );
    }
}
