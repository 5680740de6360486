//! Siglent SDL1000X loads: current ranges (`CURR:IRANG`) and over-current protection.

use super::parser::{measures, Pattern};
use super::Action;

/// The SDL1000X header tree.
pub(super) fn patterns() -> Vec<Pattern> {
    use Action as A;
    let mut table = measures("MEASure");
    table.extend([
        Pattern::new("[SOURce]:FUNCtion", A::Function),
        Pattern::new("[SOURce]:CURRent[:LEVel][:IMMediate]", A::Current),
        Pattern::new("[SOURce]:CURRent:IRANGe", A::CurrentRange),
        Pattern::new("[SOURce]:CURRent:PROTection:STATe", A::OcpState),
        Pattern::new("[SOURce]:CURRent:PROTection:LEVel", A::Ocp),
        Pattern::new("[SOURce]:INPut[:STATe]", A::Output),
    ]);
    table
}
