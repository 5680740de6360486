//! The inverter side of the reference firmware: what it announces over Pylontech
//! low-voltage CAN (and the same values in its Modbus register map), derating, and its
//! reaction to a lost inverter keep-alive.
//!
//! Derating follows the Orion BMS manual's practice: every `derate_interval_ms` while the
//! highest cell is above `derate_ov_mv` the charge current limit (CCL) drops by
//! `derate_step_pct` of its maximum, down to `derate_floor_pct`; below it again the limit
//! climbs back by the same step. The discharge current limit (DCL) does the same for the
//! lowest cell below `derate_uv_mv`. Once a protection trips, the limit on its side is 0 and
//! its enable flag is cleared. Without a keep-alive for `keepalive_timeout_ms` (0: not
//! watched) both limits go to 0 and both enable flags are cleared.
//!
//! Units are integers: 0.1 V and 0.1 A (as on the wire), 0.01 V for the pack voltage,
//! millivolts for cell levels, milliseconds.

use crate::{Fault, Outputs, Sample};

/// Seeded defects of the inverter side; all false in a good image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InverterDefects {
    /// The current limits never derate before a trip.
    pub no_derating: bool,
    /// Limits and enable flags stay as they were before a trip.
    pub stale_after_trip: bool,
    /// The announced current is negative while charging.
    pub current_sign_inverted: bool,
    /// A lost keep-alive changes nothing.
    pub ignore_keepalive_loss: bool,
}

/// What the firmware announces to the inverter and how it derates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InverterConfig {
    /// Announcement period in ms.
    pub period_ms: u32,
    /// Charge voltage limit, 0.1 V.
    pub cvl_dv: u16,
    /// Discharge voltage limit, 0.1 V.
    pub dvl_dv: u16,
    /// Charge current limit when nothing derates, 0.1 A.
    pub ccl_da: i16,
    /// Discharge current limit when nothing derates, 0.1 A.
    pub dcl_da: i16,
    /// Highest cell above this (mV) derates the CCL.
    pub derate_ov_mv: i32,
    /// Lowest cell below this (mV) derates the DCL.
    pub derate_uv_mv: i32,
    /// Derating step, percent of the maximum.
    pub derate_step_pct: u8,
    /// Derating interval in ms.
    pub derate_interval_ms: u32,
    /// Derating stops at this percentage of the maximum.
    pub derate_floor_pct: u8,
    /// Without a keep-alive for this long the inverter counts as lost (0: not watched).
    pub keepalive_timeout_ms: u32,
    /// Seeded defects.
    pub defects: InverterDefects,
}

/// One announcement (the content of 0x351, 0x355, 0x356, 0x359, 0x35C).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Announcement {
    /// Charge voltage limit, 0.1 V.
    pub cvl_dv: u16,
    /// Charge current limit, 0.1 A.
    pub ccl_da: i16,
    /// Discharge current limit, 0.1 A.
    pub dcl_da: i16,
    /// Discharge voltage limit, 0.1 V.
    pub dvl_dv: u16,
    /// Charging allowed.
    pub charge_enable: bool,
    /// Discharging allowed.
    pub discharge_enable: bool,
    /// Pack voltage, 0.01 V.
    pub pack_cv: i16,
    /// Pack current, 0.1 A, positive charging (unless the sign defect is seeded).
    pub current_da: i16,
    /// Highest temperature, 0.1 °C.
    pub temp_dc: i16,
    /// Protection bits (0x359 bytes 0-1, little-endian).
    pub protection: u16,
    /// Warning bits (0x359 bytes 2-3, little-endian).
    pub warning: u16,
    /// The inverter's keep-alive is missing.
    pub keepalive_lost: bool,
}

/// The inverter-facing state of the firmware.
#[derive(Debug, Clone)]
pub struct Announcer {
    cfg: InverterConfig,
    ccl_pct: u8,
    dcl_pct: u8,
    last_step_ms: Option<u32>,
    last_keepalive_ms: u32,
    last: Announcement,
}

/// Pylontech bit of each protection in the 16-bit alarm word (byte 0 then byte 1).
pub fn alarm_bits(faults: u8) -> u16 {
    let mut w = 0u16;
    let on = |f: Fault| faults & f.bit() != 0;
    if on(Fault::Ov) {
        w |= 1 << 1;
    }
    if on(Fault::Uv) {
        w |= 1 << 2;
    }
    if on(Fault::Otc) || on(Fault::Otd) {
        w |= 1 << 3;
    }
    if on(Fault::Utc) {
        w |= 1 << 4;
    }
    if on(Fault::Ocd) {
        w |= 1 << 7;
    }
    if on(Fault::Occ) {
        w |= 1 << 8;
    }
    w
}

impl Announcer {
    /// A fresh announcer (limits at their maximum, keep-alive counted from time 0).
    pub fn new(cfg: InverterConfig) -> Self {
        Self {
            cfg,
            ccl_pct: 100,
            dcl_pct: 100,
            last_step_ms: None,
            last_keepalive_ms: 0,
            last: Announcement::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &InverterConfig {
        &self.cfg
    }

    /// A keep-alive from the inverter arrived at `now_ms`.
    pub fn keepalive(&mut self, now_ms: u32) {
        self.last_keepalive_ms = now_ms;
    }

    /// Update after a protection-core tick with the same sample and its outputs.
    pub fn tick(&mut self, now_ms: u32, s: &Sample<'_>, out: &Outputs) -> Announcement {
        let c = self.cfg;
        let max_mv = s.cell_mv.iter().copied().max().unwrap_or(0) as i32;
        let min_mv = s.cell_mv.iter().copied().min().unwrap_or(0) as i32;
        let due = self
            .last_step_ms
            .is_none_or(|t| now_ms.wrapping_sub(t) >= c.derate_interval_ms);
        if due {
            self.last_step_ms = Some(now_ms);
            if !c.defects.no_derating {
                let step = |pct: u8, near: bool| {
                    if near {
                        pct.saturating_sub(c.derate_step_pct)
                            .max(c.derate_floor_pct)
                    } else {
                        pct.saturating_add(c.derate_step_pct).min(100)
                    }
                };
                self.ccl_pct = step(self.ccl_pct, max_mv > c.derate_ov_mv);
                self.dcl_pct = step(self.dcl_pct, min_mv < c.derate_uv_mv);
            }
        }
        let lost = c.keepalive_timeout_ms > 0
            && now_ms.wrapping_sub(self.last_keepalive_ms) > c.keepalive_timeout_ms
            && !c.defects.ignore_keepalive_loss;
        let pct = |max: i16, pct: u8| (max as i32 * pct as i32 / 100) as i16;
        let mut a = Announcement {
            cvl_dv: c.cvl_dv,
            ccl_da: pct(c.ccl_da, self.ccl_pct),
            dcl_da: pct(c.dcl_da, self.dcl_pct),
            dvl_dv: c.dvl_dv,
            charge_enable: out.chg_fet && !lost,
            discharge_enable: out.dsg_fet && !lost,
            pack_cv: (s.cell_mv.iter().map(|v| *v as i32).sum::<i32>() / 10)
                .clamp(i16::MIN as i32, i16::MAX as i32) as i16,
            current_da: {
                let da = (s.current_ma / 100).clamp(i16::MIN as i32, i16::MAX as i32) as i16;
                if c.defects.current_sign_inverted {
                    da.saturating_neg()
                } else {
                    da
                }
            },
            temp_dc: s.temp_dc.iter().copied().max().unwrap_or(250),
            protection: alarm_bits(out.faults),
            warning: alarm_bits(out.conditions),
            keepalive_lost: lost,
        };
        if !a.charge_enable {
            a.ccl_da = 0;
        }
        if !a.discharge_enable {
            a.dcl_da = 0;
        }
        if c.defects.stale_after_trip && out.faults != 0 {
            let p = self.last;
            a.cvl_dv = p.cvl_dv;
            a.ccl_da = p.ccl_da;
            a.dcl_da = p.dcl_da;
            a.charge_enable = p.charge_enable;
            a.discharge_enable = p.discharge_enable;
        }
        self.last = a;
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::State;

    fn cfg() -> InverterConfig {
        InverterConfig {
            period_ms: 1000,
            cvl_dv: 568,
            dvl_dv: 480,
            ccl_da: 180,
            dcl_da: 300,
            derate_ov_mv: 3550,
            derate_uv_mv: 2950,
            derate_step_pct: 10,
            derate_interval_ms: 1000,
            derate_floor_pct: 20,
            keepalive_timeout_ms: 3000,
            defects: InverterDefects::default(),
        }
    }

    fn out(faults: u8) -> Outputs {
        let chg = faults & Fault::Ov.bit() == 0;
        Outputs {
            chg_fet: chg,
            dsg_fet: true,
            warning: faults != 0,
            faults,
            conditions: faults,
            fault_cell: 0,
            short_circuit: false,
            state: State::Charge,
            balancing: 0,
        }
    }

    #[test]
    fn ccl_derates_in_steps_to_its_floor_and_is_zero_after_a_trip() {
        let mut a = Announcer::new(cfg());
        let high = [3600u16, 3300];
        let mut last = a.tick(0, &Sample::running(&high, 5000), &out(0));
        assert_eq!(last.ccl_da, 162);
        for t in (1000..=10_000).step_by(1000) {
            a.keepalive(t);
            last = a.tick(t, &Sample::running(&high, 5000), &out(0));
        }
        assert_eq!(last.ccl_da, 36, "floor 20 %");
        assert_eq!(last.dcl_da, 300);
        assert!(last.charge_enable);
        let tripped = a.tick(10_100, &Sample::running(&high, 5000), &out(Fault::Ov.bit()));
        assert_eq!(tripped.ccl_da, 0);
        assert!(!tripped.charge_enable);
        assert_eq!(tripped.protection, 1 << 1);
        assert_eq!(tripped.current_da, 50);
        assert_eq!(tripped.pack_cv, 690);
    }

    #[test]
    fn seeded_defects_change_what_is_announced() {
        let mut c = cfg();
        c.defects = InverterDefects {
            no_derating: true,
            stale_after_trip: true,
            current_sign_inverted: true,
            ignore_keepalive_loss: true,
        };
        let mut a = Announcer::new(c);
        let high = [3600u16, 3300];
        let mut last = a.tick(0, &Sample::running(&high, 5000), &out(0));
        for t in (1000..=10_000).step_by(1000) {
            last = a.tick(t, &Sample::running(&high, 5000), &out(0));
        }
        assert_eq!(last.ccl_da, 180, "no derating");
        assert!(last.charge_enable, "keep-alive loss ignored");
        assert_eq!(last.current_da, -50);
        let tripped = a.tick(10_100, &Sample::running(&high, 5000), &out(Fault::Ov.bit()));
        assert_eq!(tripped.ccl_da, 180);
        assert!(tripped.charge_enable);
    }

    #[test]
    fn a_lost_keepalive_clears_both_enables() {
        let mut a = Announcer::new(cfg());
        let ok = [3300u16, 3300];
        a.keepalive(1000);
        assert!(
            a.tick(3000, &Sample::running(&ok, 0), &out(0))
                .charge_enable
        );
        let lost = a.tick(4100, &Sample::running(&ok, 0), &out(0));
        assert!(!lost.charge_enable && !lost.discharge_enable && lost.keepalive_lost);
        assert_eq!((lost.ccl_da, lost.dcl_da), (0, 0));
    }
}
