//! The standard SCPI tree for a role, narrowed by the dialect: EA PSB (with `SYST:LOCK`),
//! Rigol DL3000 and any lab dialect.

use super::parser::{measures, Pattern};
use super::{Action, CURRENT, VOLTAGE};
use crate::scpi::{Dialect, Role};

/// The header tree of a standard-SCPI instrument of the dialect's role.
pub(super) fn patterns(dialect: &Dialect) -> Vec<Pattern> {
    use Action as A;
    let mut table = measures("MEASure");
    table.push(Pattern::new(CURRENT, A::Current));
    match dialect.role {
        Role::Supply => {
            table.extend([
                Pattern::new(VOLTAGE, A::Voltage),
                Pattern::new("[SOURce]:VOLTage:PROTection[:LEVel]", A::Ovp),
                Pattern::new("[SOURce]:CURRent:PROTection[:LEVel]", A::Ocp),
                Pattern::new("OUTPut[:STATe]", A::Output),
                Pattern::new("OUTPut:PROTection:CLEar", A::ClearProtection),
            ]);
            if dialect.commands.measure_all.is_some() {
                table.push(Pattern::new("MEASure[:SCALar]:ARRay", A::MeasureArray));
            }
            if dialect.settings_require_lock {
                table.push(Pattern::new("SYSTem:LOCK", A::Lock));
            }
            if dialect.watchdog.is_some() {
                table.extend([
                    Pattern::new("SYSTem:COMMunicate:WDOG[:STATe]", A::WatchdogState),
                    Pattern::new("SYSTem:COMMunicate:WDOG:DELay", A::WatchdogDelay),
                ]);
            }
        }
        Role::Load | Role::CellSim | Role::Chamber | Role::Scope | Role::Short => {
            table.extend([
                Pattern::new("[SOURce]:FUNCtion", A::Function),
                Pattern::new("[SOURce]:INPut[:STATe]", A::Output),
            ]);
        }
    }
    table
}
