//! Cell models for the simulated pack: open-circuit voltage against state of charge for LFP
//! and NMC (tables, linearly interpolated), a series internal resistance, state of charge
//! integrated from current, and a lumped thermal model per cell.
//!
//! The tables are typical room-temperature rest curves assembled from public cell data
//! sheets; they are meant to behave like a cell (flat LFP plateau, sloped NMC curve, a steep
//! rise when over-charged), not to match one product. Points just beyond 0 % and 100 %
//! model the steep ends of over-discharge and over-charge; outside the table the end value
//! holds.

use std::fmt;
use std::str::FromStr;

/// Cell chemistries the simulated pack can model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chemistry {
    /// Lithium iron phosphate (flat plateau around 3.3 V).
    Lfp,
    /// Lithium nickel manganese cobalt oxide (sloped curve, 3.0 V to 4.2 V).
    Nmc,
}

/// LFP rest voltage against state of charge (fraction, volts).
const LFP_OCV: &[(f64, f64)] = &[
    (-0.02, 2.000),
    (0.00, 2.500),
    (0.02, 2.900),
    (0.05, 3.100),
    (0.10, 3.200),
    (0.20, 3.250),
    (0.30, 3.275),
    (0.40, 3.290),
    (0.50, 3.300),
    (0.60, 3.310),
    (0.70, 3.325),
    (0.80, 3.335),
    (0.90, 3.345),
    (0.95, 3.360),
    (0.98, 3.400),
    (1.00, 3.450),
    (1.02, 3.650),
    (1.05, 4.200),
];

/// NMC rest voltage against state of charge (fraction, volts).
const NMC_OCV: &[(f64, f64)] = &[
    (-0.02, 2.500),
    (0.00, 3.000),
    (0.05, 3.300),
    (0.10, 3.450),
    (0.20, 3.550),
    (0.30, 3.620),
    (0.40, 3.670),
    (0.50, 3.730),
    (0.60, 3.800),
    (0.70, 3.880),
    (0.80, 3.960),
    (0.90, 4.060),
    (1.00, 4.180),
    (1.02, 4.300),
    (1.05, 4.600),
];

impl Chemistry {
    /// The rest-voltage table, (state of charge as a fraction, volts), ascending.
    pub fn ocv_table(self) -> &'static [(f64, f64)] {
        match self {
            Chemistry::Lfp => LFP_OCV,
            Chemistry::Nmc => NMC_OCV,
        }
    }

    /// Rest (open-circuit) voltage at a state of charge (fraction; 0.5 is half full).
    pub fn ocv(self, soc: f64) -> f64 {
        interpolate(self.ocv_table(), soc)
    }

    /// The state of charge whose rest voltage is `volts` (the table inverted; clamped to its ends).
    pub fn soc_at(self, volts: f64) -> f64 {
        let swapped: Vec<(f64, f64)> = self.ocv_table().iter().map(|(s, v)| (*v, *s)).collect();
        interpolate(&swapped, volts)
    }

    /// A typical single cell of this chemistry for a 100 Ah-class stationary pack.
    pub fn typical_cell(self) -> CellParams {
        match self {
            Chemistry::Lfp => CellParams {
                capacity_ah: 100.0,
                resistance_ohm: 0.5e-3,
                heat_capacity_j_per_k: 2000.0,
                thermal_resistance_k_per_w: 1.5,
            },
            Chemistry::Nmc => CellParams {
                capacity_ah: 50.0,
                resistance_ohm: 1.0e-3,
                heat_capacity_j_per_k: 900.0,
                thermal_resistance_k_per_w: 2.5,
            },
        }
    }
}

impl fmt::Display for Chemistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Chemistry::Lfp => "LFP",
            Chemistry::Nmc => "NMC",
        })
    }
}

impl From<crate::rig::PackChemistry> for Chemistry {
    fn from(c: crate::rig::PackChemistry) -> Self {
        match c {
            crate::rig::PackChemistry::Lfp => Chemistry::Lfp,
            crate::rig::PackChemistry::Nmc => Chemistry::Nmc,
        }
    }
}

impl FromStr for Chemistry {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_uppercase().as_str() {
            "LFP" | "LIFEPO4" => Ok(Chemistry::Lfp),
            "NMC" | "NCM" => Ok(Chemistry::Nmc),
            _ => Err(format!(
                "unknown cell chemistry `{s}`; the simulated pack models `LFP` and `NMC`"
            )),
        }
    }
}

/// Linear interpolation in an ascending table; the end values hold outside it.
fn interpolate(table: &[(f64, f64)], x: f64) -> f64 {
    let Some(&(x0, y0)) = table.first() else {
        return f64::NAN;
    };
    if x.is_nan() {
        return f64::NAN;
    }
    if x <= x0 {
        return y0;
    }
    for w in table.windows(2) {
        let ((xa, ya), (xb, yb)) = (w[0], w[1]);
        if x <= xb {
            return ya + (yb - ya) * (x - xa) / (xb - xa);
        }
    }
    table.last().map(|p| p.1).unwrap_or(f64::NAN)
}

/// Electrical and thermal parameters of one cell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CellParams {
    /// Capacity in ampere-hours.
    pub capacity_ah: f64,
    /// Series internal resistance in ohms.
    pub resistance_ohm: f64,
    /// Heat capacity in joules per kelvin.
    pub heat_capacity_j_per_k: f64,
    /// Thermal resistance from the cell to the surrounding air, in kelvin per watt.
    pub thermal_resistance_k_per_w: f64,
}

/// The state of one modelled cell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CellModel {
    /// State of charge as a fraction (1.0 is full; slightly above 1 is over-charged).
    pub soc: f64,
    /// Cell temperature in °C.
    pub temperature: f64,
}

/// Lowest and highest state of charge the integration keeps (beyond the table's steep ends).
const SOC_RANGE: (f64, f64) = (-0.05, 1.10);

impl CellModel {
    /// Terminal voltage with `current` amperes flowing in (positive charging).
    pub fn terminal_voltage(&self, chem: Chemistry, p: &CellParams, current: f64) -> f64 {
        chem.ocv(self.soc) + current * p.resistance_ohm
    }

    /// Advance by `dt` seconds with `current` amperes flowing in and the air at `ambient` °C.
    pub fn advance(&mut self, p: &CellParams, current: f64, ambient: f64, dt: f64) {
        if p.capacity_ah > 0.0 {
            self.soc = (self.soc + current * dt / (3600.0 * p.capacity_ah))
                .clamp(SOC_RANGE.0, SOC_RANGE.1);
        }
        if p.heat_capacity_j_per_k > 0.0 && p.thermal_resistance_k_per_w > 0.0 {
            let heat_in = current * current * p.resistance_ohm;
            let tau = p.heat_capacity_j_per_k * p.thermal_resistance_k_per_w;
            // Exact solution of C dT/dt = P - (T - T_amb)/R over dt at constant P and T_amb.
            let target = ambient + heat_in * p.thermal_resistance_k_per_w;
            self.temperature = target + (self.temperature - target) * (-dt / tau).exp();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_strictly_ascending_in_both_columns() {
        for chem in [Chemistry::Lfp, Chemistry::Nmc] {
            for w in chem.ocv_table().windows(2) {
                assert!(w[1].0 > w[0].0 && w[1].1 > w[0].1, "{chem}: {w:?}");
            }
        }
    }

    #[test]
    fn interpolates_and_inverts() {
        assert!((Chemistry::Lfp.ocv(0.5) - 3.300).abs() < 1e-12);
        assert!((Chemistry::Lfp.ocv(0.55) - 3.305).abs() < 1e-12);
        assert!((Chemistry::Nmc.ocv(1.0) - 4.18).abs() < 1e-12);
        assert!((Chemistry::Lfp.soc_at(3.30) - 0.5).abs() < 1e-12);
        let soc = Chemistry::Nmc.soc_at(3.765);
        assert!((Chemistry::Nmc.ocv(soc) - 3.765).abs() < 1e-9);
        // Outside the table the ends hold.
        assert_eq!(Chemistry::Lfp.ocv(2.0), 4.2);
        assert_eq!(Chemistry::Lfp.ocv(-1.0), 2.0);
        assert!(Chemistry::Lfp.ocv(f64::NAN).is_nan());
    }

    #[test]
    fn parses_names_and_explains_unknown_ones() {
        assert_eq!("lfp".parse::<Chemistry>(), Ok(Chemistry::Lfp));
        assert_eq!("NMC".parse::<Chemistry>(), Ok(Chemistry::Nmc));
        let e = "LTO".parse::<Chemistry>().unwrap_err();
        assert!(e.contains("`LTO`") && e.contains("LFP"), "{e}");
    }

    #[test]
    fn charge_raises_soc_and_i2r_heats() {
        let chem = Chemistry::Lfp;
        let p = chem.typical_cell();
        let mut c = CellModel {
            soc: 0.5,
            temperature: 25.0,
        };
        // 100 A into a 100 Ah cell for 36 s is 1 % of charge.
        for _ in 0..360 {
            c.advance(&p, 100.0, 25.0, 0.1);
        }
        assert!((c.soc - 0.51).abs() < 1e-9, "{}", c.soc);
        assert!(c.temperature > 25.0);
        // Steady state: ambient + I²R x R_th = 25 + 5 W x 1.5 K/W.
        for _ in 0..2000 {
            c.advance(&p, 100.0, 25.0, 60.0);
        }
        assert!((c.temperature - 32.5).abs() < 1e-6, "{}", c.temperature);
        assert!(c.terminal_voltage(chem, &p, 100.0) > chem.ocv(c.soc));
    }
}
