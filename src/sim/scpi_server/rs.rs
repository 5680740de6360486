//! Rohde & Schwarz HMP / NGE: `INST:NSEL`, `OUTP:SEL` with the master `OUTP:GEN`, and the
//! fuse as over-current protection.

use super::parser::{measures, Pattern};
use super::{Action, CURRENT, VOLTAGE};

/// The HMP/NGE header tree.
pub(super) fn patterns() -> Vec<Pattern> {
    use Action as A;
    let mut table = measures("MEASure");
    table.extend([
        Pattern::new("INSTrument:NSELect", A::SelectNumber),
        Pattern::new("INSTrument[:SELect]", A::Select),
        Pattern::new(VOLTAGE, A::Voltage),
        Pattern::new(CURRENT, A::Current),
        Pattern::new("[SOURce]:VOLTage:PROTection[:LEVel]", A::Ovp),
        Pattern::new("[SOURce]:VOLTage:PROTection:TRIPped", A::OvpTripped),
        Pattern::new("[SOURce]:VOLTage:PROTection:CLEar", A::ClearProtection),
        Pattern::new("OUTPut[:STATe]", A::Output),
        Pattern::new("OUTPut:SELect", A::OutputSelect),
        Pattern::new("OUTPut:GENeral[:STATe]", A::Master),
        Pattern::new("FUSE[:STATe]", A::OcpAtLimit),
        Pattern::new("FUSE:TRIPed", A::OcpTripped),
    ]);
    table
}
