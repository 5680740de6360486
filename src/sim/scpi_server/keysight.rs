//! Keysight supplies: E36300 and N6700 with channel lists `(@n)` after the parameters, the
//! RP7900 with priority mode and current limits; the N6700/RP7900 I/O watchdog.

use super::parser::{measures, Pattern};
use super::{Action, CURRENT, VOLTAGE};
use crate::scpi::Dialect;

fn watchdog() -> [Pattern; 2] {
    [
        Pattern::new("OUTPut:PROTection:WDOG[:STATe]", Action::WatchdogState),
        Pattern::new("OUTPut:PROTection:WDOG:DELay", Action::WatchdogDelay),
    ]
}

/// E36300 / N6700: channel lists; the watchdog where the dialect declares one.
pub(super) fn list_patterns(dialect: &Dialect) -> Vec<Pattern> {
    use Action as A;
    let mut table = measures("MEASure");
    table.extend([
        Pattern::new(VOLTAGE, A::Voltage),
        Pattern::new(CURRENT, A::Current),
        Pattern::new("[SOURce]:VOLTage:PROTection[:LEVel]", A::Ovp),
        Pattern::new("[SOURce]:VOLTage:PROTection:TRIPped", A::OvpTripped),
        Pattern::new("[SOURce]:CURRent:PROTection:STATe", A::OcpAtLimit),
        Pattern::new("[SOURce]:CURRent:PROTection:TRIPped", A::OcpTripped),
        Pattern::new("OUTPut[:STATe]", A::Output),
        Pattern::new("OUTPut:PROTection:CLEar", A::ClearProtection),
        Pattern::new("INSTrument:NSELect", A::SelectNumber),
        Pattern::new("INSTrument[:SELect]", A::Select),
    ]);
    if dialect.watchdog.is_some() {
        table.extend(watchdog());
    }
    table
}

/// RP7900: voltage priority, positive and negative current limits, remote OVP, watchdog.
pub(super) fn rp_patterns() -> Vec<Pattern> {
    use Action as A;
    let mut table = measures("MEASure");
    table.extend([
        Pattern::new(VOLTAGE, A::Voltage),
        Pattern::new(
            "[SOURce]:CURRent:LIMit[:POSitive][:IMMediate][:AMPLitude]",
            A::Current,
        ),
        Pattern::new(
            "[SOURce]:CURRent:LIMit:NEGative[:IMMediate][:AMPLitude]",
            A::CurrentLimitNegative,
        ),
        Pattern::new("[SOURce]:FUNCtion", A::Priority),
        Pattern::new(
            "[SOURce]:VOLTage:PROTection:REMote[:POSitive][:LEVel]",
            A::Ovp,
        ),
        Pattern::new("OUTPut[:STATe]", A::Output),
        Pattern::new("OUTPut:PROTection:CLEar", A::ClearProtection),
    ]);
    table.extend(watchdog());
    table
}
