//! Chroma 63600 loads: `CHAN n`, `MODE CCL|CCH` (the range inside the mode),
//! `CURR:STAT:L1`, `LOAD ON|OFF`, `FETC:` measurements.

use super::parser::{measures, Pattern};
use super::Action;

/// The 63600 header tree.
pub(super) fn patterns() -> Vec<Pattern> {
    use Action as A;
    let mut table = measures("MEASure");
    table.extend(measures("FETCh"));
    table.extend([
        Pattern::new("CHANnel[:LOAD]", A::Select),
        Pattern::new("MODE", A::Mode),
        Pattern::new("CURRent:STATic:L1", A::Current),
        Pattern::new("LOAD[:STATe]", A::Output),
        Pattern::new("LOAD:PROTection:CLEar", A::ClearProtection),
    ]);
    table
}
