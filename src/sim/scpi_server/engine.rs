//! Command execution shared by every family: the line loop over parsed commands, common
//! commands, channel addressing, supply and load settings, measurements, protection trips
//! and reply formatting. The header trees and model-specific behaviour live in the family
//! modules.

use super::parser::{
    boolean, channel_list, channel_word, no_params, numeric, numeric_between, parse_line, single,
    Command,
};
use super::{
    channel, fault, lock, push_error, Action, CellFault, Ch, Extra, Family, InstrumentState,
    ScpiFault, Shared, Trip, CHROMA_LOW_RANGE, PROTECTION_HEADROOM, SIGLENT_RANGES,
};
use crate::scpi::reply::format_nr3;
use crate::scpi::{BoolFormat, NumberFormat, Ranges, Role};
use crate::sim::plant::PlantState;
use std::time::Duration;
use tokio::time::Instant;

impl Shared {
    /// The ranges of channel `ch`, or the fault `code`, `message` when the model has no such
    /// channel.
    pub(super) fn ranges_or_fault(
        &self,
        ch: u32,
        code: i32,
        message: &str,
    ) -> Result<Ranges, ScpiFault> {
        self.dialect
            .channel_ranges(ch)
            .ok_or_else(|| fault(code, message))
    }

    /// Execute one received line; the reply to send, if any query produced one.
    pub(super) fn handle_line(&self, line: &str) -> Option<String> {
        let mut replies = Vec::new();
        let mut state = lock(&self.state);
        state.last_io = Instant::now();
        let commands = parse_line(line);
        // Identity, status and error-queue queries leave the plant alone, so they do not
        // wait for it (nor run its observers).
        let mut plant = if commands.iter().all(|c| self.plant_free(c)) {
            None
        } else {
            Some(self.plant.lock())
        };
        for command in commands {
            let result = match plant.as_deref_mut() {
                Some(plant) => {
                    let result = if command.common {
                        self.common(&mut state, Some(&mut *plant), &command)
                    } else {
                        self.execute(&mut state, plant, &command)
                    };
                    self.sync(&mut state, plant);
                    self.check_protection(&mut state, plant);
                    result
                }
                None if command.common => self.common(&mut state, None, &command),
                None => self.instrument_action(&mut state, Action::SystemError, true, &[]),
            };
            match result {
                Ok(Some(reply)) => replies.push(reply),
                Ok(None) => {}
                Err((code, message)) => {
                    push_error(&mut state, code, &message);
                    // A command error abandons the rest of the line.
                    if (-199..=-100).contains(&code) {
                        break;
                    }
                }
            }
        }
        (!replies.is_empty()).then(|| replies.join(";"))
    }

    /// Common commands other than `*RST`, and the error-queue query.
    pub(super) fn plant_free(&self, c: &Command) -> bool {
        if c.common {
            return c.mnemonics[0] != "*RST";
        }
        c.query
            && c.params.is_empty()
            && self
                .patterns
                .iter()
                .find_map(|p| p.matches(&c.mnemonics).map(|_| p.action))
                == Some(Action::SystemError)
    }

    pub(super) fn common(
        &self,
        state: &mut InstrumentState,
        plant: Option<&mut PlantState>,
        c: &Command,
    ) -> Result<Option<String>, ScpiFault> {
        let d = &self.dialect;
        match (c.mnemonics[0].as_str(), c.query) {
            ("*IDN", true) => Ok(Some(format!(
                "{},{},{},hilrig-sim-{}",
                d.maker.first().map(String::as_str).unwrap_or(""),
                d.model.first().map(String::as_str).unwrap_or(""),
                lock(&self.serial),
                env!("CARGO_PKG_VERSION")
            ))),
            ("*CLS", false) => {
                state.errors.clear();
                state.esr = 0;
                Ok(None)
            }
            ("*RST", false) => {
                let Some(plant) = plant else {
                    return Err(fault(-300, "Device-specific error;plant unavailable"));
                };
                match d.role {
                    Role::Supply => plant.supply = Default::default(),
                    Role::Load => plant.load = Default::default(),
                    Role::CellSim => {
                        for (&ch, _) in state.channels.iter().filter(|(_, c)| c.cell.output) {
                            plant.set_cell_override(ch as usize - 1, None);
                        }
                    }
                    Role::Chamber | Role::Scope | Role::Short => {}
                }
                state.channels.clear();
                state.master = false;
                state.selected = self.plant_channel();
                state.watchdog_on = false;
                Ok(None)
            }
            ("*OPC", true) => Ok(Some("1".into())),
            ("*OPC" | "*WAI", false) => Ok(None),
            ("*TST", true) => Ok(Some("0".into())),
            ("*ESR", true) => Ok(Some(std::mem::take(&mut state.esr).to_string())),
            ("*STB", true) => {
                let queue = if state.errors.is_empty() { 0 } else { 1 << 2 };
                let esb = if state.esr != 0 { 1 << 5 } else { 0 };
                Ok(Some((queue | esb).to_string()))
            }
            _ => Err(fault(-113, "Undefined header")),
        }
    }

    /// The channels a command addresses: a header suffix, a channel list, a `CHn`
    /// argument (removed from `params`), or else the selected channel.
    pub(super) fn channels_of(
        &self,
        state: &InstrumentState,
        suffix: Option<u32>,
        params: &mut Vec<String>,
    ) -> Result<Vec<u32>, ScpiFault> {
        let exists = |ch: u32| self.dialect.channel_ranges(ch).is_some();
        if let Some(ch) = suffix {
            return if exists(ch) {
                Ok(vec![ch])
            } else {
                Err(fault(-114, "Header suffix out of range"))
            };
        }
        if self.family.channel_lists() {
            if let Some(list) = params.last().and_then(|p| channel_list(p)) {
                let list = list?;
                if list.is_empty() || !list.iter().all(|&ch| exists(ch)) {
                    return Err(fault(-222, "Data out of range;channel list"));
                }
                params.pop();
                return Ok(list);
            }
        }
        if self.family.channel_arguments() {
            if let Some(first) = params.first() {
                if first.to_ascii_uppercase().starts_with("CH") {
                    let ch = channel_word(first)
                        .filter(|&ch| exists(ch))
                        .ok_or_else(|| fault(-224, "Illegal parameter value;channel"))?;
                    params.remove(0);
                    return Ok(vec![ch]);
                }
            }
        }
        Ok(vec![state.selected])
    }

    pub(super) fn execute(
        &self,
        state: &mut InstrumentState,
        plant: &mut PlantState,
        c: &Command,
    ) -> Result<Option<String>, ScpiFault> {
        let Some((action, suffix)) = self
            .patterns
            .iter()
            .find_map(|p| p.matches(&c.mnemonics).map(|suffix| (p.action, suffix)))
        else {
            return Err(fault(-113, "Undefined header"));
        };
        let mut params = c.params.clone();
        let channels = if action.instrument_wide() {
            Vec::new()
        } else {
            self.channels_of(state, suffix, &mut params)?
        };
        if c.query && !params.is_empty() {
            return Err(fault(-108, "Parameter not allowed"));
        }
        if !c.query && action.is_setting() && self.dialect.settings_require_lock && !state.locked {
            // [L] EA's exact code and text for a setting without remote lock are not
            // confirmed; -203 is the standard SCPI "command protected".
            return Err(fault(
                -203,
                "Command protected;remote lock required (SYST:LOCK 1)",
            ));
        }
        if action.instrument_wide() {
            return self.instrument_action(state, action, c.query, &params);
        }
        let mut replies = Vec::new();
        for ch in channels {
            let reply = if action.is_measurement() {
                if !c.query {
                    return Err(fault(-113, "Undefined header"));
                }
                Some(self.measure_action(state, plant, action, ch))
            } else if self.dialect.role == Role::CellSim {
                self.cell_action(state, action, c.query, &params, ch)?
            } else {
                self.channel_action(state, plant, action, c.query, &params, ch)?
            };
            replies.extend(reply);
        }
        Ok((!replies.is_empty()).then(|| replies.join(",")))
    }

    pub(super) fn instrument_action(
        &self,
        state: &mut InstrumentState,
        action: Action,
        query: bool,
        params: &[String],
    ) -> Result<Option<String>, ScpiFault> {
        let exists = |ch: u32| self.dialect.channel_ranges(ch).is_some();
        match (action, query) {
            (Action::SystemError, true) => Ok(Some(match state.errors.pop_front() {
                Some((code, message)) => format!("{code},\"{}\"", message.replace('"', "\"\"")),
                None => match self.dialect.replies.number {
                    NumberFormat::Nr3Signed => "+0,\"No error\"".into(),
                    _ => "0,\"No error\"".into(),
                },
            })),
            (Action::SystemVersion, true) => Ok(Some("1999.0".into())),
            (Action::Lock, false) => {
                state.locked = boolean(params)?;
                Ok(None)
            }
            (Action::Lock, true) => Ok(Some(self.format_bool(state.locked))),
            (Action::Select, false) => {
                let ch = channel_word(single(params)?)
                    .ok_or_else(|| fault(-224, "Illegal parameter value"))?;
                if !exists(ch) {
                    return Err(fault(-222, "Data out of range;no such channel"));
                }
                state.selected = ch;
                Ok(None)
            }
            (Action::Select, true) => Ok(Some(match self.family {
                Family::RsHmp => format!("OUTP{}", state.selected),
                Family::RigolDp | Family::KeysightList => format!("CH{}", state.selected),
                _ => state.selected.to_string(),
            })),
            (Action::SelectNumber, false) => {
                let n = numeric(params, f64::from(u32::MAX), "")?;
                let ch = n as u32;
                if f64::from(ch) != n || !exists(ch) {
                    return Err(fault(-222, "Data out of range;no such channel"));
                }
                state.selected = ch;
                Ok(None)
            }
            (Action::SelectNumber, true) => Ok(Some(state.selected.to_string())),
            (Action::Master, false) => {
                let on = boolean(params)?;
                state.master = on || (state.output_stuck_on && state.master);
                Ok(None)
            }
            (Action::Master, true) => Ok(Some(self.format_bool(state.master))),
            (Action::Priority, false) => match single(params)?.to_ascii_uppercase().as_str() {
                "VOLT" | "VOLTAGE" => Ok(None),
                "CURR" | "CURRENT" => Err(fault(
                    -221,
                    "Settings conflict;only voltage priority is simulated",
                )),
                _ => Err(fault(-224, "Illegal parameter value")),
            },
            (Action::Priority, true) => Ok(Some("VOLT".into())),
            (Action::WatchdogState, false) => {
                state.watchdog_on = boolean(params)?;
                state.last_io = Instant::now();
                Ok(None)
            }
            (Action::WatchdogState, true) => Ok(Some(self.format_bool(state.watchdog_on))),
            (Action::WatchdogDelay, false) => {
                let seconds = numeric(params, 3600.0, "s")?;
                if seconds < 1.0 {
                    return Err(fault(-222, "Data out of range"));
                }
                state.watchdog_delay = Duration::from_secs_f64(seconds.round());
                Ok(None)
            }
            (Action::WatchdogDelay, true) => Ok(Some(
                self.format_number(state.watchdog_delay.as_secs_f64(), "s"),
            )),
            (Action::Function, false) => {
                let mode = single(params)?.to_ascii_uppercase();
                match mode.as_str() {
                    "CURR" | "CURRENT" => Ok(None),
                    "VOLT" | "VOLTAGE" | "RES" | "RESISTANCE" | "POW" | "POWER" => Err(fault(
                        -221,
                        "Settings conflict;only constant-current mode is simulated",
                    )),
                    _ => Err(fault(-224, "Illegal parameter value")),
                }
            }
            (Action::Function, true) => Ok(Some(match self.family {
                Family::Siglent => "CURRENT".into(),
                _ => "CC".into(),
            })),
            _ => Err(fault(-113, "Undefined header")),
        }
    }

    /// The highest current setting on `ch` in its present range or mode.
    pub(super) fn current_range(&self, x: &Extra, ch: u32) -> f64 {
        let max = self
            .dialect
            .channel_ranges(ch)
            .map(|r| r.max_current)
            .unwrap_or(self.dialect.ranges.max_current);
        match self.family {
            Family::Chroma if x.mode.as_deref() == Some("CCL") => max * CHROMA_LOW_RANGE,
            Family::Siglent => x.range.unwrap_or(max).min(max),
            _ => max,
        }
    }

    pub(super) fn channel_action(
        &self,
        state: &mut InstrumentState,
        plant: &mut PlantState,
        action: Action,
        query: bool,
        params: &[String],
        ch: u32,
    ) -> Result<Option<String>, ScpiFault> {
        let ranges = self.ranges_or_fault(ch, -222, "Data out of range;no such channel")?;
        let (max_v, max_i) = (ranges.max_voltage, ranges.max_current);
        let (max_ovp, max_ocp) = (ovp_ceiling(&ranges), ocp_ceiling(&ranges));
        let supply = self.dialect.role == Role::Supply;
        let plant_ch = self.plant_channel();
        let stuck_on = state.output_stuck_on;
        let master = &mut state.master;
        let Ch { sup, load, x } = channel(&mut state.channels, plant, ch, plant_ch);
        match (action, query) {
            (Action::Voltage, false) if supply => {
                sup.voltage_set = numeric(params, max_v, "V")?;
                Ok(None)
            }
            (Action::Voltage, true) if supply => Ok(Some(self.format_number(sup.voltage_set, "V"))),
            (Action::Current, false) => {
                let range = self.current_range(x, ch);
                let value = numeric(params, range, "A")?;
                if supply {
                    sup.current_set = value;
                } else {
                    load.current_set = value;
                }
                Ok(None)
            }
            (Action::Current, true) => Ok(Some(self.format_number(
                if supply {
                    sup.current_set
                } else {
                    load.current_set
                },
                "A",
            ))),
            (Action::CurrentLimitNegative, false) => {
                x.negative_limit = numeric_between(params, -max_i, 0.0, "A")?;
                Ok(None)
            }
            (Action::CurrentLimitNegative, true) => {
                Ok(Some(self.format_number(x.negative_limit, "A")))
            }
            (Action::CurrentRange, false) => {
                let value = numeric(params, max_i, "A")?;
                let range = SIGLENT_RANGES
                    .iter()
                    .copied()
                    .find(|&r| (r - value).abs() < 1e-9)
                    .ok_or_else(|| fault(-224, "Illegal parameter value;range is 5 or 30"))?;
                x.range = Some(range);
                load.current_set = load.current_set.min(range);
                Ok(None)
            }
            (Action::CurrentRange, true) => {
                Ok(Some(self.format_number(self.current_range(x, ch), "A")))
            }
            (Action::Ovp, false) => {
                x.ovp_level = Some(numeric(params, max_ovp, "V")?);
                if !self.family.protection_states() {
                    x.ovp_on = true;
                }
                Ok(None)
            }
            (Action::Ovp, true) => Ok(Some(
                self.format_number(x.ovp_level.unwrap_or(max_ovp), "V"),
            )),
            (Action::OvpState, false) => {
                x.ovp_on = boolean(params)?;
                Ok(None)
            }
            (Action::OvpState, true) => Ok(Some(self.format_bool(x.ovp_on))),
            (Action::Ocp, false) => {
                x.ocp_level = Some(numeric(params, max_ocp, "A")?);
                if !self.family.protection_states() {
                    x.ocp_on = true;
                }
                Ok(None)
            }
            (Action::Ocp, true) => Ok(Some(
                self.format_number(x.ocp_level.unwrap_or(max_ocp), "A"),
            )),
            (Action::OcpState, false) => {
                x.ocp_on = boolean(params)?;
                Ok(None)
            }
            (Action::OcpState, true) => Ok(Some(self.format_bool(x.ocp_on))),
            (Action::OcpAtLimit, false) => {
                x.ocp_at_limit = boolean(params)?;
                Ok(None)
            }
            (Action::OcpAtLimit, true) => Ok(Some(self.format_bool(x.ocp_at_limit))),
            (Action::OvpTripped, true) => {
                Ok(Some(self.format_trip(x.trip == Some(Trip::OverVoltage))))
            }
            (Action::OcpTripped, true) => {
                Ok(Some(self.format_trip(x.trip == Some(Trip::OverCurrent))))
            }
            (Action::ClearOvp | Action::ClearOcp | Action::ClearProtection, false) => {
                no_params(params)?;
                let clears = match action {
                    Action::ClearOvp => x.trip == Some(Trip::OverVoltage),
                    Action::ClearOcp => x.trip == Some(Trip::OverCurrent),
                    _ => true,
                };
                if clears {
                    x.trip = None;
                    if supply {
                        sup.protection_tripped = false;
                    }
                }
                Ok(None)
            }
            (Action::Output, false) => {
                let on = boolean(params)?;
                if supply {
                    if on && (sup.protection_tripped || x.trip.is_some()) {
                        return Err(fault(
                            -221,
                            "Settings conflict;protection tripped, clear it first",
                        ));
                    }
                    if self.family == Family::RsHmp {
                        // `OUTP ON` selects the channel and switches the master output on.
                        x.selected = on || (stuck_on && x.selected);
                        if on {
                            *master = true;
                        }
                    } else {
                        sup.output = on || (stuck_on && sup.output);
                    }
                } else {
                    if on && x.trip.is_some() {
                        if self.family == Family::Siglent {
                            // [L] Siglent: switching the input on again resets a trip.
                            x.trip = None;
                        } else {
                            return Err(fault(
                                -221,
                                "Settings conflict;protection tripped, clear it first",
                            ));
                        }
                    }
                    load.input = on;
                }
                Ok(None)
            }
            (Action::Output, true) => Ok(Some(self.format_bool(if !supply {
                load.input
            } else if self.family == Family::RsHmp {
                x.selected && *master
            } else {
                sup.output
            }))),
            (Action::OutputSelect, false) => {
                let on = boolean(params)?;
                if on && (sup.protection_tripped || x.trip.is_some()) {
                    return Err(fault(
                        -221,
                        "Settings conflict;protection tripped, clear it first",
                    ));
                }
                x.selected = on || (stuck_on && x.selected);
                Ok(None)
            }
            (Action::OutputSelect, true) => Ok(Some(self.format_bool(x.selected))),
            (Action::Apply, false) if supply => {
                let (v, i) = match params {
                    [v] => (v, None),
                    [v, i] => (v, Some(i)),
                    [] => return Err(fault(-109, "Missing parameter")),
                    _ => return Err(fault(-108, "Parameter not allowed")),
                };
                let volts = numeric(std::slice::from_ref(v), max_v, "V")?;
                let amps = match i {
                    Some(i) => Some(numeric(std::slice::from_ref(i), max_i, "A")?),
                    None => None,
                };
                sup.voltage_set = volts;
                if let Some(amps) = amps {
                    sup.current_set = amps;
                }
                Ok(None)
            }
            (Action::Mode, false) => {
                let mode = single(params)?.to_ascii_uppercase();
                match mode.as_str() {
                    "CCL" | "CCH" => {
                        x.mode = Some(mode);
                        let range = self.current_range(x, ch);
                        load.current_set = load.current_set.min(range);
                        Ok(None)
                    }
                    "CCDL" | "CCDH" | "CRL" | "CRH" | "CVL" | "CVH" | "CPL" | "CPH" => Err(fault(
                        -221,
                        "Settings conflict;only CCL and CCH are simulated",
                    )),
                    _ => Err(fault(-224, "Illegal parameter value")),
                }
            }
            (Action::Mode, true) => Ok(Some(x.mode.clone().unwrap_or_else(|| "CCH".into()))),
            _ => Err(fault(-113, "Undefined header")),
        }
    }

    pub(super) fn measure_action(
        &self,
        state: &InstrumentState,
        plant: &PlantState,
        action: Action,
        ch: u32,
    ) -> String {
        let (v, i) = self.reading(state, plant, ch);
        match action {
            Action::MeasureVoltage => self.format_number(v, "V"),
            Action::MeasureCurrent => self.format_number(i, "A"),
            Action::MeasurePower => self.format_number(v * i, "W"),
            Action::MeasureAll => format!(
                "{},{},{}",
                self.format_number(v, "V"),
                self.format_number(i, "A"),
                self.format_number(v * i, "W")
            ),
            _ => format!(
                "{}, {}, {}",
                self.format_number(v, "V"),
                self.format_number(i, "A"),
                self.format_number(v * i, "W")
            ),
        }
    }

    /// Terminal voltage and current of a channel.
    pub(super) fn reading(
        &self,
        state: &InstrumentState,
        plant: &PlantState,
        ch: u32,
    ) -> (f64, f64) {
        let local = state.channels.get(&ch);
        match self.dialect.role {
            Role::CellSim => {
                let Some(cell) = local.map(|c| &c.cell) else {
                    return (0.0, 0.0);
                };
                match Self::cell_applied(cell) {
                    None => (0.0, 0.0),
                    Some(applied) => {
                        let k = state.cell_offset.saturating_add(ch) as usize - 1;
                        let current = match plant.channel_current(k) {
                            // Positive when the channel sources (the pack discharging, the
                            // BMS bleeding the cell).
                            Some(i) if cell.fault == CellFault::None => i,
                            _ => 0.0,
                        };
                        (applied, current)
                    }
                }
            }
            _ if ch == self.plant_channel() => match self.dialect.role {
                Role::Supply => (plant.supply_voltage(), plant.supply_current()),
                _ => (plant.load_voltage(), plant.load_current()),
            },
            Role::Supply => match local {
                Some(c) if c.supply.output => (c.supply.voltage_set, 0.0),
                _ => (0.0, 0.0),
            },
            Role::Load | Role::Chamber | Role::Scope | Role::Short => (0.0, 0.0),
        }
    }

    /// Carry channel settings to the plant: effective protection levels, R&S outputs, cells.
    pub(super) fn sync(&self, state: &mut InstrumentState, plant: &mut PlantState) {
        let plant_ch = self.plant_channel();
        match self.dialect.role {
            Role::Supply => {
                let master = state.master;
                for ch in self.dialect.channel_numbers() {
                    let Some(ranges) = self.dialect.channel_ranges(ch) else {
                        continue;
                    };
                    let Ch { sup, x, .. } = channel(&mut state.channels, plant, ch, plant_ch);
                    sup.ovp = x
                        .ovp_on
                        .then(|| x.ovp_level.unwrap_or(ovp_ceiling(&ranges)));
                    sup.ocp = x
                        .ocp_on
                        .then(|| x.ocp_level.unwrap_or(ocp_ceiling(&ranges)));
                    if self.family == Family::RsHmp {
                        sup.output = x.selected && master && !sup.protection_tripped;
                    }
                }
            }
            Role::Load | Role::Chamber | Role::Scope | Role::Short => {}
            Role::CellSim => {
                for (&ch, c) in &state.channels {
                    if ch >= 1 {
                        let k = state.cell_offset.saturating_add(ch) as usize - 1;
                        plant.set_cell_override(k, Self::cell_applied(&c.cell));
                    }
                }
            }
        }
    }

    /// Switch a supply output off and latch the trip when its set voltage exceeds OVP, its
    /// current exceeds OCP, or (at-limit OCP) it runs at its current setting; switch a load
    /// input off when its current exceeds its OCP.
    pub(super) fn check_protection(&self, state: &mut InstrumentState, plant: &mut PlantState) {
        let plant_ch = self.plant_channel();
        let plant_current = match self.dialect.role {
            Role::Supply => plant.supply_current(),
            _ => plant.load_current(),
        };
        for ch in self.dialect.channel_numbers() {
            // Channels other than the plant's are open circuits.
            let current = if ch == plant_ch { plant_current } else { 0.0 };
            match self.dialect.role {
                Role::Supply => {
                    let Ch { sup, x, .. } = channel(&mut state.channels, plant, ch, plant_ch);
                    if !sup.output || sup.protection_tripped {
                        continue;
                    }
                    let over_v = sup.ovp.is_some_and(|ovp| sup.voltage_set > ovp);
                    let over_i = sup.ocp.is_some_and(|ocp| current > ocp)
                        || (x.ocp_at_limit
                            && sup.current_set > 0.0
                            && current >= sup.current_set * (1.0 - 1e-9));
                    if over_v || over_i {
                        tracing::info!(dialect = %self.dialect.id, ch, over_v, over_i, "simulated supply: protection tripped");
                        sup.output = false;
                        sup.protection_tripped = true;
                        x.selected = false;
                        x.trip = Some(if over_v {
                            Trip::OverVoltage
                        } else {
                            Trip::OverCurrent
                        });
                    }
                }
                Role::Load => {
                    let Ch { load, x, .. } = channel(&mut state.channels, plant, ch, plant_ch);
                    let level = x.ocp_on.then_some(x.ocp_level).flatten();
                    if load.input && level.is_some_and(|l| load.current_set > l) {
                        tracing::info!(dialect = %self.dialect.id, ch, "simulated load: over-current protection tripped");
                        load.input = false;
                        x.trip = Some(Trip::OverCurrent);
                    }
                }
                Role::CellSim | Role::Chamber | Role::Scope | Role::Short => {}
            }
        }
    }

    /// The I/O watchdog expired: every supply output off, latched until cleared.
    pub(super) fn watchdog_trip(&self, state: &mut InstrumentState, plant: &mut PlantState) {
        if self.dialect.role != Role::Supply {
            return;
        }
        let plant_ch = self.plant_channel();
        for ch in self.dialect.channel_numbers() {
            let Ch { sup, x, .. } = channel(&mut state.channels, plant, ch, plant_ch);
            if sup.output {
                tracing::info!(dialect = %self.dialect.id, ch, "simulated supply: I/O watchdog expired");
                sup.output = false;
                sup.protection_tripped = true;
                x.selected = false;
                x.trip = Some(Trip::Watchdog);
            }
        }
    }

    pub(super) fn format_bool(&self, value: bool) -> String {
        match (self.dialect.replies.boolean, value) {
            (BoolFormat::OnOff, true) => "ON".into(),
            (BoolFormat::OnOff, false) => "OFF".into(),
            (BoolFormat::OneZero, true) => "1".into(),
            (BoolFormat::OneZero, false) => "0".into(),
        }
    }

    /// A trip query's answer: Rigol says YES/NO, the others answer like any boolean.
    pub(super) fn format_trip(&self, tripped: bool) -> String {
        match (self.family, tripped) {
            (Family::RigolDp, true) => "YES".into(),
            (Family::RigolDp, false) => "NO".into(),
            _ => self.format_bool(tripped),
        }
    }

    pub(super) fn format_number(&self, value: f64, unit: &str) -> String {
        let decimals = self.dialect.replies.decimals.map(usize::from);
        match self.dialect.replies.number {
            NumberFormat::Nr3 => format_nr3(value),
            NumberFormat::Nr3Signed if value >= 0.0 => format!("+{}", format_nr3(value)),
            NumberFormat::Nr3Signed => format_nr3(value),
            NumberFormat::Nr2 => format!("{value:.*}", decimals.unwrap_or(3)),
            NumberFormat::WithUnits if unit == "W" => {
                format!("{value:.*} {unit}", decimals.unwrap_or(2).saturating_sub(1))
            }
            NumberFormat::WithUnits => format!("{value:.*} {unit}", decimals.unwrap_or(2)),
        }
    }
}

/// The highest OVP level a channel takes: the model's own figure where the dialect gives
/// one, else 110 % of the channel's rating.
fn ovp_ceiling(ranges: &Ranges) -> f64 {
    ranges
        .max_ovp
        .unwrap_or(ranges.max_voltage * PROTECTION_HEADROOM)
}

/// The highest OCP level a channel takes (as [`ovp_ceiling`]).
fn ocp_ceiling(ranges: &Ranges) -> f64 {
    ranges
        .max_ocp
        .unwrap_or(ranges.max_current * PROTECTION_HEADROOM)
}
