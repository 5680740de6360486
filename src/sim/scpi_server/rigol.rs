//! Rigol DP800: `CHn` arguments, `:SOURn:` suffixes, OVP/OCP levels with their own on/off,
//! `:MEAS:ALL?`, `:APPL`.

use super::parser::Pattern;
use super::Action;

/// The DP800 header tree.
pub(super) fn patterns() -> Vec<Pattern> {
    use Action as A;
    vec![
        Pattern::new(
            "[SOURce#]:VOLTage[:LEVel][:IMMediate][:AMPLitude]",
            A::Voltage,
        ),
        Pattern::new(
            "[SOURce#]:CURRent[:LEVel][:IMMediate][:AMPLitude]",
            A::Current,
        ),
        Pattern::new("[SOURce#]:VOLTage:PROTection[:LEVel]", A::Ovp),
        Pattern::new("[SOURce#]:VOLTage:PROTection:STATe", A::OvpState),
        Pattern::new("[SOURce#]:CURRent:PROTection[:LEVel]", A::Ocp),
        Pattern::new("[SOURce#]:CURRent:PROTection:STATe", A::OcpState),
        Pattern::new("OUTPut[:STATe]", A::Output),
        Pattern::new("OUTPut:OVP[:STATe]", A::OvpState),
        Pattern::new("OUTPut:OVP:VALue", A::Ovp),
        Pattern::new("OUTPut:OVP:QUEStion", A::OvpTripped),
        Pattern::new("OUTPut:OVP:CLEar", A::ClearOvp),
        Pattern::new("OUTPut:OCP[:STATe]", A::OcpState),
        Pattern::new("OUTPut:OCP:VALue", A::Ocp),
        Pattern::new("OUTPut:OCP:QUEStion", A::OcpTripped),
        Pattern::new("OUTPut:OCP:CLEar", A::ClearOcp),
        Pattern::new("MEASure[:VOLTage][:DC]", A::MeasureVoltage),
        Pattern::new("MEASure:CURRent[:DC]", A::MeasureCurrent),
        Pattern::new("MEASure:POWEr[:DC]", A::MeasurePower),
        Pattern::new("MEASure:ALL[:DC]", A::MeasureAll),
        Pattern::new("APPLy", A::Apply),
        Pattern::new("INSTrument:NSELect", A::SelectNumber),
        Pattern::new("INSTrument[:SELect]", A::Select),
    ]
}
