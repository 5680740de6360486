//! Reference BMS protection firmware: a `no_std` protection core.
//!
//! The core is a pure state machine. A host (the simulated bench, or a board support
//! package on a real MCU) calls [`Bms::tick`] once per AFE sampling period with the sampled
//! cell voltages, temperatures and pack current, and applies the returned FET and warning
//! outputs. Protections (OV, UV, OT in charge and discharge, UT in charge, OC in charge and
//! discharge) each have a trip level, a release level, a debounce delay and a latch flag.
//!
//! Units inside the core are integers: millivolts, milliamperes, tenths of a degree Celsius,
//! milliseconds. Seeded defects (for proving that a test suite catches them) are switched on
//! through [`Defects`]; the good image has none. Passive cell balancing is decided in
//! [`balance`] from the same samples and reported in [`Outputs::balancing`].
#![no_std]

pub mod balance;
pub mod pylon;
pub mod soc;

/// One protection's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protection {
    /// Level at which the fault condition starts (unit depends on the protection).
    pub trip: i32,
    /// Level at which the fault clears again.
    pub release: i32,
    /// How long the condition must hold before the fault is set, in ms.
    pub delay_ms: u32,
    /// How long the value must stay back past the release level before the fault clears,
    /// in ms (0: at the first sample back).
    pub release_delay_ms: u32,
    /// A latched fault never clears by itself; only a standby request resets it.
    pub latching: bool,
}

/// Seeded defects; all false in a good image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Defects {
    /// The OV fault clears as soon as the voltage drops below the trip level (no hysteresis).
    pub no_hysteresis: bool,
    /// The reported fault cell index is off by one.
    pub wrong_cell_index: bool,
    /// Over-temperature is not checked while charging.
    pub ignore_ot_in_charge: bool,
    /// The UV fault stays latched even after the voltage recovers.
    pub uv_latch_never_releases: bool,
    /// The warning output is never raised.
    pub no_warning_output: bool,
    /// Balancing defects.
    pub balance: balance::BalanceDefects,
}

/// Complete firmware configuration (what an image carries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Number of cells in series (at most [`MAX_CELLS`]).
    pub cells: u8,
    /// AFE sampling period in ms.
    pub afe_period_ms: u32,
    /// CAN status message cycle in ms.
    pub can_cycle_ms: u32,
    /// Host state-request timeout in ms: without a request for this long, go to standby.
    pub state_request_timeout_ms: u32,
    /// Cell over-voltage, mV.
    pub ov: Protection,
    /// Cell under-voltage, mV (trip is the low level).
    pub uv: Protection,
    /// Over-temperature in charge, 0.1 °C.
    pub otc: Protection,
    /// Over-temperature in discharge, 0.1 °C.
    pub otd: Protection,
    /// Under-temperature charge inhibit, 0.1 °C (trip is the low level).
    pub utc: Protection,
    /// Over-current in charge, mA.
    pub occ: Protection,
    /// Over-current in discharge, mA (magnitude).
    pub ocd: Protection,
    /// Firmware version (major, minor, patch).
    pub version: (u8, u8, u8),
    /// Passive cell balancing (None: the image balances nothing).
    pub balance: Option<balance::BalanceConfig>,
    /// Seeded defects.
    pub defects: Defects,
}

/// Most cells one core can watch.
pub const MAX_CELLS: usize = 32;

/// Index of each protection in fault masks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Fault {
    /// Cell over-voltage.
    Ov = 0,
    /// Cell under-voltage.
    Uv = 1,
    /// Over-temperature in charge.
    Otc = 2,
    /// Over-temperature in discharge.
    Otd = 3,
    /// Under-temperature in charge.
    Utc = 4,
    /// Over-current in charge.
    Occ = 5,
    /// Over-current in discharge.
    Ocd = 6,
}

impl Fault {
    /// All protections in mask order.
    pub const ALL: [Fault; 7] = [
        Fault::Ov,
        Fault::Uv,
        Fault::Otc,
        Fault::Otd,
        Fault::Utc,
        Fault::Occ,
        Fault::Ocd,
    ];

    /// Bit in a fault mask.
    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// Whether this fault opens the charge FET (else the discharge FET).
    pub fn blocks_charge(self) -> bool {
        matches!(self, Fault::Ov | Fault::Otc | Fault::Utc | Fault::Occ)
    }
}

/// Reported BMS state (values match the `State` value table in the project DBC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    /// FETs open, waiting for a run request.
    Standby = 0,
    /// Running, current flowing into the pack.
    Charge = 1,
    /// Running, current flowing out of the pack.
    Discharge = 2,
    /// Running, no significant current.
    Idle = 3,
    /// Running with at least one fault set.
    Fault = 4,
}

/// One AFE sample handed to the core.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    /// Cell voltages in mV, cell 1 first.
    pub cell_mv: &'a [u16],
    /// NTC temperatures in 0.1 °C.
    pub temp_dc: &'a [i16],
    /// Pack current in mA, positive when charging.
    pub current_ma: i32,
    /// A host run request arrived since the last tick.
    pub run_request: bool,
    /// A host standby request arrived since the last tick.
    pub standby_request: bool,
    /// The front end's short-circuit status bit: its comparator opened the FETs (latched
    /// in the front end until the load is removed).
    pub afe_short_circuit: bool,
}

#[cfg(test)]
impl<'a> Sample<'a> {
    /// A running pack's sample at 25 °C, no requests but run, no short circuit (tests).
    pub(crate) fn running(cells: &'a [u16], current_ma: i32) -> Self {
        Sample {
            cell_mv: cells,
            temp_dc: &[250],
            current_ma,
            run_request: true,
            standby_request: false,
            afe_short_circuit: false,
        }
    }
}

/// What the core asks the hardware to do after a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outputs {
    /// Charge FET closed.
    pub chg_fet: bool,
    /// Discharge FET closed.
    pub dsg_fet: bool,
    /// Warning output (lamp/buzzer) raised.
    pub warning: bool,
    /// Active faults, one bit per [`Fault`].
    pub faults: u8,
    /// Faults whose condition is present at this sample (before debounce), one bit per [`Fault`].
    pub conditions: u8,
    /// 1-based cell index of the last voltage fault, 0 when none.
    pub fault_cell: u8,
    /// The front end reported a short circuit; latched until a standby request after the
    /// front end has released (both FETs stay open meanwhile).
    pub short_circuit: bool,
    /// Reported state.
    pub state: State,
    /// Balancing switches driven, one bit per cell (bit 0 is cell 1).
    pub balancing: u32,
}

#[derive(Debug, Clone, Copy, Default)]
struct Debounce {
    /// Time of the first sample of the current run of over-limit samples.
    since_ms: Option<u32>,
    /// Time of the first sample of the current run of samples back past the release level
    /// while the fault is set.
    back_since_ms: Option<u32>,
    active: bool,
}

/// The protection core.
#[derive(Debug, Clone)]
pub struct Bms {
    cfg: Config,
    debounce: [Debounce; 7],
    running: bool,
    last_request_ms: u32,
    fault_cell: u8,
    balancer: balance::Balancer,
    short_circuit: bool,
}

const CURRENT_DEADBAND_MA: i32 = 200;

impl Bms {
    /// A core in standby with the given configuration.
    pub fn new(cfg: Config) -> Self {
        Self {
            cfg,
            debounce: [Debounce::default(); 7],
            running: false,
            last_request_ms: 0,
            fault_cell: 0,
            balancer: balance::Balancer::default(),
            short_circuit: false,
        }
    }

    /// The configuration this core runs.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    fn protection(&self, f: Fault) -> Protection {
        match f {
            Fault::Ov => self.cfg.ov,
            Fault::Uv => self.cfg.uv,
            Fault::Otc => self.cfg.otc,
            Fault::Otd => self.cfg.otd,
            Fault::Utc => self.cfg.utc,
            Fault::Occ => self.cfg.occ,
            Fault::Ocd => self.cfg.ocd,
        }
    }

    /// Run one sampling period at time `now_ms` (monotonic, wrapping is handled).
    pub fn tick(&mut self, now_ms: u32, s: &Sample<'_>) -> Outputs {
        if s.standby_request {
            self.running = false;
            self.debounce = [Debounce::default(); 7];
            self.fault_cell = 0;
            self.short_circuit = false;
        } else if s.run_request {
            self.running = true;
            self.last_request_ms = now_ms;
        }
        if self.running
            && now_ms.wrapping_sub(self.last_request_ms) > self.cfg.state_request_timeout_ms
        {
            self.running = false;
        }

        let n = (self.cfg.cells as usize)
            .min(s.cell_mv.len())
            .min(MAX_CELLS);
        let cells = &s.cell_mv[..n];
        let (max_i, max_mv) = cells
            .iter()
            .enumerate()
            .max_by_key(|(_, v)| **v)
            .map(|(i, v)| (i, *v as i32))
            .unwrap_or((0, 0));
        let (min_i, min_mv) = cells
            .iter()
            .enumerate()
            .min_by_key(|(_, v)| **v)
            .map(|(i, v)| (i, *v as i32))
            .unwrap_or((0, 0));
        let max_t = s.temp_dc.iter().copied().max().unwrap_or(250) as i32;
        let min_t = s.temp_dc.iter().copied().min().unwrap_or(250) as i32;
        let charging = s.current_ma > CURRENT_DEADBAND_MA;

        let mut conditions = 0u8;
        for f in Fault::ALL {
            let p = self.protection(f);
            let d = self.debounce[f as usize];
            // `over` is true when the value is beyond the trip level; `back` when it is back past release.
            let (over, back) = match f {
                Fault::Ov => {
                    let release = if self.cfg.defects.no_hysteresis {
                        p.trip
                    } else {
                        p.release
                    };
                    (max_mv > p.trip, max_mv < release)
                }
                Fault::Uv => (
                    min_mv < p.trip,
                    min_mv > p.release && !self.cfg.defects.uv_latch_never_releases,
                ),
                Fault::Otc => (
                    max_t > p.trip && !(self.cfg.defects.ignore_ot_in_charge && charging),
                    max_t < p.release,
                ),
                Fault::Otd => (max_t > p.trip, max_t < p.release),
                Fault::Utc => (min_t < p.trip, min_t > p.release),
                Fault::Occ => (s.current_ma > p.trip, s.current_ma < p.release),
                Fault::Ocd => (-s.current_ma > p.trip, -s.current_ma < p.release),
            };
            if over {
                conditions |= f.bit();
            }
            let mut next = d;
            if d.active {
                if back && !p.latching {
                    let since = *next.back_since_ms.get_or_insert(now_ms);
                    if now_ms.wrapping_sub(since) >= p.release_delay_ms {
                        next = Debounce::default();
                    }
                } else {
                    next.back_since_ms = None;
                }
            } else if over {
                let since = *next.since_ms.get_or_insert(now_ms);
                if now_ms.wrapping_sub(since) >= p.delay_ms {
                    next.active = true;
                    if matches!(f, Fault::Ov | Fault::Uv) {
                        let idx = if f == Fault::Ov { max_i } else { min_i } as u8 + 1;
                        self.fault_cell = if self.cfg.defects.wrong_cell_index {
                            idx.wrapping_add(1)
                        } else {
                            idx
                        };
                    }
                }
            } else {
                next.since_ms = None;
            }
            self.debounce[f as usize] = next;
        }

        if s.afe_short_circuit {
            self.short_circuit = true;
        }
        let faults = Fault::ALL
            .iter()
            .filter(|f| self.debounce[**f as usize].active)
            .fold(0u8, |m, f| m | f.bit());
        let block_chg = Fault::ALL
            .iter()
            .any(|f| f.blocks_charge() && faults & f.bit() != 0);
        let block_dsg = Fault::ALL
            .iter()
            .any(|f| !f.blocks_charge() && faults & f.bit() != 0);
        if faults & (Fault::Ov.bit() | Fault::Uv.bit()) == 0 {
            self.fault_cell = 0;
        }
        let state = if !self.running {
            State::Standby
        } else if faults != 0 || self.short_circuit {
            State::Fault
        } else if charging {
            State::Charge
        } else if s.current_ma < -CURRENT_DEADBAND_MA {
            State::Discharge
        } else {
            State::Idle
        };
        let sc = self.short_circuit;
        let balancing = match &self.cfg.balance {
            Some(b) => {
                let pack = if charging {
                    balance::PackState::Charging
                } else if s.current_ma < -CURRENT_DEADBAND_MA {
                    balance::PackState::Discharging
                } else {
                    balance::PackState::Rest
                };
                self.balancer
                    .tick(b, self.cfg.defects.balance, cells, pack, faults != 0 || sc)
            }
            None => 0,
        };
        Outputs {
            balancing,
            chg_fet: self.running && !block_chg && !sc,
            dsg_fet: self.running && !block_dsg && !sc,
            warning: (faults != 0 || sc) && !self.cfg.defects.no_warning_output,
            faults,
            conditions,
            fault_cell: self.fault_cell,
            short_circuit: sc,
            state,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        let p = |trip, release, delay_ms| Protection {
            trip,
            release,
            delay_ms,
            release_delay_ms: 0,
            latching: false,
        };
        Config {
            cells: 4,
            afe_period_ms: 50,
            can_cycle_ms: 100,
            state_request_timeout_ms: 500,
            ov: p(3650, 3400, 2000),
            uv: p(2800, 3000, 1000),
            otc: p(550, 500, 2000),
            otd: p(600, 550, 2000),
            utc: p(0, 50, 1000),
            occ: p(60_000, 50_000, 1000),
            ocd: p(100_000, 90_000, 500),
            version: (1, 0, 0),
            balance: None,
            defects: Defects::default(),
        }
    }

    fn run(bms: &mut Bms, t: u32, cells: &[u16]) -> Outputs {
        bms.tick(
            t,
            &Sample {
                cell_mv: cells,
                temp_dc: &[250; 2],
                current_ma: 5000,
                run_request: true,
                standby_request: false,
                afe_short_circuit: false,
            },
        )
    }

    #[test]
    fn ov_opens_charge_fet_after_the_delay_and_releases_with_hysteresis() {
        let mut bms = Bms::new(cfg());
        let ok = [3300, 3300, 3300, 3300];
        let high = [3300, 3300, 3700, 3300];
        let mut t = 0;
        assert!(run(&mut bms, t, &ok).chg_fet);
        let mut opened_at = None;
        while t < 5000 {
            t += 50;
            let o = run(&mut bms, t, &high);
            if !o.chg_fet && opened_at.is_none() {
                opened_at = Some(t);
                assert_eq!(o.fault_cell, 3);
                assert_eq!(o.state, State::Fault);
                assert!(o.dsg_fet);
                assert!(o.warning);
            }
        }
        // Condition from t=50; delay 2000 ms measured from the first over sample.
        assert_eq!(opened_at, Some(2050));
        // Between trip and release: stays open.
        assert!(!run(&mut bms, t + 50, &[3300, 3300, 3500, 3300]).chg_fet);
        // Below release: closes again.
        assert!(run(&mut bms, t + 100, &ok).chg_fet);
    }

    #[test]
    fn a_release_delay_keeps_the_fault_until_the_value_stayed_back_that_long() {
        let mut c = cfg();
        c.ov.release_delay_ms = 1000;
        let mut bms = Bms::new(c);
        let ok = [3300, 3300, 3300, 3300];
        let high = [3300, 3300, 3700, 3300];
        let mut t = 0;
        while t < 2500 {
            t += 50;
            run(&mut bms, t, &high);
        }
        assert!(!run(&mut bms, t, &high).chg_fet);
        // Back below release from t + 50: still open until 1000 ms of samples back.
        let back = t + 50;
        let mut closed_at = None;
        let mut now = back;
        while now <= back + 2000 {
            if run(&mut bms, now, &ok).chg_fet && closed_at.is_none() {
                closed_at = Some(now);
            }
            now += 50;
        }
        assert_eq!(closed_at, Some(back + 1000));
        // A run back that is interrupted starts again.
        let mut bms = Bms::new(c);
        let mut t = 0;
        while t < 2500 {
            t += 50;
            run(&mut bms, t, &high);
        }
        run(&mut bms, t + 50, &ok);
        run(&mut bms, t + 600, &[3300, 3300, 3500, 3300]);
        assert!(!run(&mut bms, t + 1100, &ok).chg_fet);
        assert!(run(&mut bms, t + 2100, &ok).chg_fet);
    }

    #[test]
    fn standby_without_run_requests() {
        let mut bms = Bms::new(cfg());
        let o = run(&mut bms, 0, &[3300; 4]);
        assert!(o.chg_fet);
        let o = bms.tick(
            1000,
            &Sample {
                cell_mv: &[3300; 4],
                temp_dc: &[250],
                current_ma: 0,
                run_request: false,
                standby_request: false,
                afe_short_circuit: false,
            },
        );
        assert_eq!(o.state, State::Standby);
        assert!(!o.chg_fet && !o.dsg_fet);
    }

    fn tick_with(bms: &mut Bms, t: u32, cells: &[u16], temp: i16, current_ma: i32) -> Outputs {
        bms.tick(
            t,
            &Sample {
                cell_mv: cells,
                temp_dc: &[temp; 2],
                current_ma,
                run_request: true,
                standby_request: false,
                afe_short_circuit: false,
            },
        )
    }

    #[test]
    fn a_front_end_short_circuit_is_reported_and_latched_until_standby() {
        let mut bms = Bms::new(cfg());
        let cells = [3300; 4];
        let sample = |afe: bool, standby: bool| Sample {
            cell_mv: &cells,
            temp_dc: &[250; 2],
            current_ma: -20_000,
            run_request: !standby,
            standby_request: standby,
            afe_short_circuit: afe,
        };
        let out = bms.tick(0, &sample(false, false));
        assert!(out.dsg_fet && !out.short_circuit);
        let out = bms.tick(50, &sample(true, false));
        assert!(out.short_circuit && !out.dsg_fet && !out.chg_fet);
        assert_eq!(out.state, State::Fault);
        // The front end released (load removed): the firmware keeps it latched.
        let out = bms.tick(100, &sample(false, false));
        assert!(out.short_circuit && !out.dsg_fet);
        let out = bms.tick(150, &sample(false, true));
        assert!(!out.short_circuit);
        let out = bms.tick(200, &sample(false, false));
        assert!(out.dsg_fet && !out.short_circuit);
    }

    #[test]
    fn no_hysteresis_releases_ov_at_the_trip_level() {
        for (defect, closes_at_3500) in [(false, false), (true, true)] {
            let mut c = cfg();
            c.defects.no_hysteresis = defect;
            let mut bms = Bms::new(c);
            for t in (0..=3000).step_by(50) {
                run(&mut bms, t, &[3700, 3300, 3300, 3300]);
            }
            let o = run(&mut bms, 3050, &[3500, 3300, 3300, 3300]);
            assert_eq!(o.chg_fet, closes_at_3500, "defect {defect}");
        }
    }

    #[test]
    fn uv_latch_defect_keeps_the_fault_after_recovery() {
        for (defect, released) in [(false, true), (true, false)] {
            let mut c = cfg();
            c.defects.uv_latch_never_releases = defect;
            let mut bms = Bms::new(c);
            for t in (0..=2000).step_by(50) {
                tick_with(&mut bms, t, &[2700, 3300, 3300, 3300], 250, -5000);
            }
            let o = tick_with(&mut bms, 2050, &[3300; 4], 250, 0);
            assert_eq!(o.faults & Fault::Uv.bit() == 0, released, "defect {defect}");
            assert_eq!(o.dsg_fet, released, "defect {defect}");
        }
    }

    #[test]
    fn ot_in_charge_defect_ignores_heat_only_while_charging() {
        let mut c = cfg();
        c.defects.ignore_ot_in_charge = true;
        let mut bms = Bms::new(c);
        let mut o = tick_with(&mut bms, 0, &[3300; 4], 250, 5000);
        for t in (50..=4000).step_by(50) {
            o = tick_with(&mut bms, t, &[3300; 4], 580, 5000);
        }
        assert_eq!(o.faults & Fault::Otc.bit(), 0);
        assert!(o.chg_fet);
        for t in (4050..=7000).step_by(50) {
            o = tick_with(&mut bms, t, &[3300; 4], 580, 0);
        }
        assert_ne!(o.faults & Fault::Otc.bit(), 0);
        assert!(!o.chg_fet);
    }

    #[test]
    fn a_latched_fault_clears_only_on_a_standby_request() {
        let mut c = cfg();
        c.ov.latching = true;
        let mut bms = Bms::new(c);
        for t in (0..=3000).step_by(50) {
            run(&mut bms, t, &[3700, 3300, 3300, 3300]);
        }
        assert!(!run(&mut bms, 3050, &[3300; 4]).chg_fet);
        let o = bms.tick(
            3100,
            &Sample {
                cell_mv: &[3300; 4],
                temp_dc: &[250],
                current_ma: 0,
                run_request: false,
                standby_request: true,
                afe_short_circuit: false,
            },
        );
        assert_eq!(o.faults, 0);
        assert!(run(&mut bms, 3150, &[3300; 4]).chg_fet);
    }

    #[test]
    fn balancing_reports_the_high_cell_while_running_and_nothing_without_a_declaration() {
        let spread = [3300, 3300, 3340, 3300];
        assert_eq!(run(&mut Bms::new(cfg()), 0, &spread).balancing, 0);
        let mut c = cfg();
        c.balance = Some(balance::BalanceConfig {
            start_spread_mv: 30,
            stop_spread_mv: 10,
            when: balance::When::Charging,
            max_cells: 4,
            bleed_ma: 100,
        });
        let mut bms = Bms::new(c);
        assert_eq!(run(&mut bms, 0, &spread).balancing, 0b100);
        // Discharging: not declared, so it stops.
        assert_eq!(tick_with(&mut bms, 50, &spread, 250, -5000).balancing, 0);
    }

    #[test]
    fn seeded_defects_change_behaviour() {
        let mut c = cfg();
        c.defects.wrong_cell_index = true;
        c.defects.no_warning_output = true;
        let mut bms = Bms::new(c);
        let mut o = run(&mut bms, 0, &[3300; 4]);
        for t in (50..=3000).step_by(50) {
            o = run(&mut bms, t, &[3700, 3300, 3300, 3300]);
        }
        assert!(!o.chg_fet);
        assert_eq!(o.fault_cell, 2);
        assert!(!o.warning);
    }
}
