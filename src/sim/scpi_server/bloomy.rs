//! Bloomy ABS cell simulator (and any cell-simulator dialect): `SOURn:VOLT`,
//! `SOURn:CURR:SRC|SNK`, `OUTPn`, fault injection `OUTPn:FAUL NONE|OPEN|SHORT|POL`,
//! `MEASn:VOLT?`, `MEASn:CURR?`.

use super::parser::{boolean, numeric, single, Pattern};
use super::{fault, Action, CellFault, CellState, InstrumentState, ScpiFault, Shared};

/// The Bloomy ABS header tree.
pub(super) fn patterns() -> Vec<Pattern> {
    use Action as A;
    vec![
        Pattern::new(
            "SOURce#:VOLTage[:LEVel][:IMMediate][:AMPLitude]",
            A::CellVoltage,
        ),
        Pattern::new("SOURce#:CURRent:SRC", A::SourceLimit),
        Pattern::new("SOURce#:CURRent:SNK", A::SinkLimit),
        Pattern::new("OUTPut#[:STATe]", A::Output),
        Pattern::new("OUTPut#:FAULt", A::Fault),
        Pattern::new("MEASure#:VOLTage[:DC]", A::MeasureVoltage),
        Pattern::new("MEASure#:CURRent[:DC]", A::MeasureCurrent),
    ]
}

impl Shared {
    pub(super) fn cell_action(
        &self,
        state: &mut InstrumentState,
        action: Action,
        query: bool,
        params: &[String],
        ch: u32,
    ) -> Result<Option<String>, ScpiFault> {
        let ranges = self.ranges_or_fault(ch, -114, "Header suffix out of range")?;
        let cell = &mut state.channels.entry(ch).or_default().cell;
        match (action, query) {
            (Action::CellVoltage, false) => {
                cell.voltage = numeric(params, ranges.max_voltage, "V")?;
                Ok(None)
            }
            (Action::CellVoltage, true) => Ok(Some(self.format_number(cell.voltage, "V"))),
            (Action::SourceLimit, false) => {
                cell.source_limit = numeric(params, ranges.max_current, "A")?;
                Ok(None)
            }
            (Action::SourceLimit, true) => Ok(Some(self.format_number(cell.source_limit, "A"))),
            (Action::SinkLimit, false) => {
                cell.sink_limit = numeric(params, ranges.max_current, "A")?;
                Ok(None)
            }
            (Action::SinkLimit, true) => Ok(Some(self.format_number(cell.sink_limit, "A"))),
            (Action::Output, false) => {
                cell.output = boolean(params)?;
                Ok(None)
            }
            (Action::Output, true) => Ok(Some(self.format_bool(cell.output))),
            (Action::Fault, false) => {
                cell.fault = match single(params)?.to_ascii_uppercase().as_str() {
                    "NONE" => CellFault::None,
                    "OPEN" => CellFault::Open,
                    "SHORT" => CellFault::Short,
                    "POL" | "POLARITY" => CellFault::Polarity,
                    _ => return Err(fault(-224, "Illegal parameter value")),
                };
                Ok(None)
            }
            (Action::Fault, true) => Ok(Some(cell.fault.name().into())),
            _ => Err(fault(-113, "Undefined header")),
        }
    }

    /// The voltage a cell channel applies (None: its output is off).
    pub(super) fn cell_applied(cell: &CellState) -> Option<f64> {
        cell.output.then_some(match cell.fault {
            CellFault::None => cell.voltage,
            CellFault::Open | CellFault::Short => 0.0,
            CellFault::Polarity => -cell.voltage,
        })
    }
}
