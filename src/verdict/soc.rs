//! The state-of-charge reference: the rig's own SOC from its calibrated instruments, with its
//! uncertainty propagated per the GUM ([`super::gum`]).
//!
//! `SOC(t) = SOC₀ + 100 % · Q(t₀, t) / C`, where
//! - `SOC₀` is the starting state of charge: the pack at rest, its voltage read by a
//!   calibrated meter, divided by the cells in series and turned into a SOC through the cell
//!   maker's OCV curve declared in the DUT fixture ([`start_from_ocv`]);
//! - `Q` is the charge into the pack: the supply's current readings minus the load's,
//!   integrated by the trapezoid rule over the readings the run sampled ([`integrate`]);
//! - `C` is the pack's rated capacity declared in the DUT fixture.
//!
//! Contributions, each a half-width bound with a rectangular distribution (a worst-case
//! bound whose values inside are taken as equally likely), in percentage points of SOC:
//! - each meter's current accuracy from its dialect (`gain·|I| + offset`), integrated over
//!   the window: a calibration error is systematic, so it adds up linearly over time;
//! - the integration between readings: where the current changed between two readings the
//!   trapezoid may be off by up to half the change times the interval;
//! - the capacity's declared tolerance, through `∂SOC/∂C = −100 %·Q/C²`;
//! - the start: the voltage meter's accuracy and the OCV curve's declared tolerance, each
//!   turned into SOC by the largest SOC change that voltage bound can make on the curve.
//!
//! The expanded uncertainty is `U = k·u_c` with the coverage factor of [`super::gum`].
//! Not modelled: self-discharge and the BMS's own consumption from the pack (both small
//! over hours, and not seen by the rig's meters), cell-to-cell imbalance (the mean cell
//! voltage is used), and OCV hysteresis (the curve's tolerance has to cover it).

use super::gum::Contribution;

/// A meter's accuracy as its dialect declares it: `gain·|value| + offset` (half-width).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeterAccuracy {
    /// Relative part (0.0005 for 0.05 %).
    pub gain: f64,
    /// Absolute part, in the reading's unit.
    pub offset: f64,
}

impl MeterAccuracy {
    /// The half-width bound of one reading.
    pub fn bound(&self, value: f64) -> f64 {
        self.gain.abs() * value.abs() + self.offset.abs()
    }
}

/// One meter's current readings that enter the charge.
#[derive(Debug, Clone)]
pub struct CurrentMeter<'a> {
    /// The signal it feeds (`supply.i`, `load.i`).
    pub name: &'a str,
    /// Readings (seconds on the run's clock, amperes), oldest first.
    pub readings: &'a [(f64, f64)],
    /// +1 when its current flows into the pack (supply), -1 when out of it (load).
    pub sign: f64,
    /// Its accuracy.
    pub accuracy: MeterAccuracy,
}

/// A charge integrated over a window, with its bounds (all in ampere-hours).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Integral {
    /// The charge.
    pub ah: f64,
    /// Bound from the meter's accuracy over the window.
    pub accuracy_ah: f64,
    /// Bound from the integration between readings.
    pub integration_ah: f64,
}

/// Integrate readings `(t, amps)` over `[from, to]` by the trapezoid rule. Before the first
/// and after the last reading inside the window the nearest reading holds; the bound of such
/// an edge is its length times the change to the reading beyond it (or the whole reading when
/// there is none). Returns zeros for an empty window or no readings.
pub fn integrate(readings: &[(f64, f64)], from: f64, to: f64, acc: MeterAccuracy) -> Integral {
    let zero = Integral {
        ah: 0.0,
        accuracy_ah: 0.0,
        integration_ah: 0.0,
    };
    // A window that is empty, backwards or not a number integrates nothing.
    if to.partial_cmp(&from) != Some(std::cmp::Ordering::Greater) || readings.is_empty() {
        return zero;
    }
    let inside: Vec<(f64, f64)> = readings
        .iter()
        .copied()
        .filter(|(t, i)| *t >= from && *t <= to && t.is_finite() && i.is_finite())
        .collect();
    let before = readings.iter().rev().find(|(t, _)| *t < from).copied();
    let after = readings.iter().find(|(t, _)| *t > to).copied();
    // With no reading inside, the nearest one holds over the whole window.
    let inside = if inside.is_empty() {
        match before.or(after) {
            Some((_, i)) => vec![(from, i)],
            None => return zero,
        }
    } else {
        inside
    };
    let (mut q, mut acc_as, mut int_as) = (0.0, 0.0, 0.0);
    let (t0, i0) = inside[0];
    let (tn, i_n) = inside[inside.len() - 1];
    // Leading edge.
    let lead = t0 - from;
    q += i0 * lead;
    acc_as += acc.bound(i0) * lead;
    int_as += lead * before.map_or(i0.abs(), |(_, ib)| (i0 - ib).abs());
    for w in inside.windows(2) {
        let ((ta, ia), (tb, ib)) = (w[0], w[1]);
        let dt = tb - ta;
        q += 0.5 * (ia + ib) * dt;
        acc_as += 0.5 * (acc.bound(ia) + acc.bound(ib)) * dt;
        int_as += 0.5 * (ib - ia).abs() * dt;
    }
    // Trailing edge.
    let trail = to - tn;
    q += i_n * trail;
    acc_as += acc.bound(i_n) * trail;
    int_as += trail * after.map_or(i_n.abs(), |(_, ia)| (ia - i_n).abs());
    Integral {
        ah: q / 3600.0,
        accuracy_ah: acc_as / 3600.0,
        integration_ah: int_as / 3600.0,
    }
}

/// The cell maker's rest curve: `(SOC %, cell volts)` ascending in both.
#[derive(Debug, Clone, PartialEq)]
pub struct OcvCurve(pub Vec<(f64, f64)>);

impl OcvCurve {
    /// The SOC (%) whose rest voltage is `volts`, interpolated; None outside the curve.
    pub fn soc_at(&self, volts: f64) -> Option<f64> {
        let t = &self.0;
        let (first, last) = (t.first()?, t.last()?);
        if !(volts >= first.1 && volts <= last.1) {
            return None;
        }
        for w in t.windows(2) {
            let ((sa, va), (sb, vb)) = (w[0], w[1]);
            if volts <= vb {
                let span = vb - va;
                if span <= 0.0 {
                    return Some(sb);
                }
                return Some(sa + (sb - sa) * (volts - va) / span);
            }
        }
        Some(last.0)
    }

    /// The largest SOC change (%) a voltage error of up to `bound` volts makes at `volts`
    /// (the curve's ends clamp).
    pub fn soc_bound(&self, volts: f64, bound: f64) -> f64 {
        let clamp = |v: f64| {
            let lo = self.0.first().map_or(v, |p| p.1);
            let hi = self.0.last().map_or(v, |p| p.1);
            v.clamp(lo, hi)
        };
        let at = |v: f64| self.soc_at(clamp(v)).unwrap_or(f64::NAN);
        let centre = at(volts);
        (at(volts + bound) - centre)
            .abs()
            .max((centre - at(volts - bound)).abs())
    }
}

/// The starting state of charge with its contributions.
#[derive(Debug, Clone, PartialEq)]
pub struct Start {
    /// SOC at the start, %.
    pub soc_pct: f64,
    /// Its contributions (percentage points of SOC).
    pub contributions: Vec<Contribution>,
}

/// The starting SOC from the pack voltage at rest: `pack_v` read by a meter of accuracy
/// `meter`, `cells` in series, the declared `curve` with its tolerance `curve_tol_v` (volts
/// per cell). Errs, saying why, when the voltage lies outside the curve.
pub fn start_from_ocv(
    pack_v: f64,
    meter: MeterAccuracy,
    cells: u32,
    curve: &OcvCurve,
    curve_tol_v: f64,
) -> Result<Start, String> {
    if cells == 0 {
        return Err("the DUT fixture declares no cells in series".into());
    }
    let n = cells as f64;
    let cell_v = pack_v / n;
    let soc = curve.soc_at(cell_v).ok_or_else(|| {
        format!(
            "the pack at rest reads {pack_v:.3} V ({cell_v:.4} V per cell), outside the declared OCV curve ({:.3} V to {:.3} V per cell)",
            curve.0.first().map_or(f64::NAN, |p| p.1),
            curve.0.last().map_or(f64::NAN, |p| p.1)
        )
    })?;
    let meter_v = meter.bound(pack_v) / n;
    Ok(Start {
        soc_pct: soc,
        contributions: vec![
            Contribution::rectangular(
                "starting SOC: pack voltage reading at rest (dialect accuracy, per cell, through the OCV curve)",
                curve.soc_bound(cell_v, meter_v),
            ),
            Contribution::rectangular(
                "starting SOC: declared OCV curve tolerance (through the curve)",
                curve.soc_bound(cell_v, curve_tol_v.abs()),
            ),
        ],
    })
}

/// The pack's declared capacity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Capacity {
    /// Rated capacity, Ah.
    pub ah: f64,
    /// Half-width tolerance of the rating, Ah.
    pub tolerance_ah: f64,
}

/// The reference SOC at one checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    /// Reference SOC, %.
    pub soc_pct: f64,
    /// Charge into the pack since the start, Ah.
    pub charge_ah: f64,
    /// The budget (percentage points of SOC).
    pub contributions: Vec<Contribution>,
}

/// The reference SOC at `to` from `start` at `from`: the meters' currents integrated, turned
/// into SOC with `capacity`, every contribution listed.
pub fn reference(
    start: &Start,
    meters: &[CurrentMeter<'_>],
    from: f64,
    to: f64,
    capacity: Capacity,
) -> Reference {
    let c = capacity.ah;
    let pct = |ah: f64| 100.0 * ah / c;
    let mut contributions = start.contributions.clone();
    let mut q = 0.0;
    let mut integration = 0.0;
    for m in meters {
        let i = integrate(m.readings, from, to, m.accuracy);
        q += m.sign * i.ah;
        integration += i.integration_ah;
        contributions.push(Contribution::rectangular(
            format!(
                "`{}` current readings (dialect accuracy, systematic over the window)",
                m.name
            ),
            pct(i.accuracy_ah),
        ));
    }
    contributions.push(Contribution::rectangular(
        "integration between current readings (sampling period)",
        pct(integration),
    ));
    contributions.push(Contribution::rectangular(
        "declared capacity tolerance",
        100.0 * q.abs() * capacity.tolerance_ah / (c * c),
    ));
    Reference {
        soc_pct: start.soc_pct + pct(q),
        charge_ah: q,
        contributions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::gum::combined;
    use rstest::rstest;

    const EXACT: MeterAccuracy = MeterAccuracy {
        gain: 0.0,
        offset: 0.0,
    };

    fn lfp() -> OcvCurve {
        OcvCurve(vec![
            (0.0, 2.5),
            (10.0, 3.2),
            (20.0, 3.25),
            (50.0, 3.3),
            (100.0, 3.45),
        ])
    }

    #[rstest]
    // Constant 10 A for an hour, readings every 0.1 h: 10 Ah, nothing to bound.
    #[case(&[(0.0, 10.0), (360.0, 10.0), (720.0, 10.0), (3600.0, 10.0)], 0.0, 3600.0, 10.0, 0.0)]
    // A step from 0 to 20 A between two readings 360 s apart: the trapezoid takes half, and
    // bounds the error by half the change times the interval (1 Ah).
    #[case(&[(0.0, 0.0), (360.0, 0.0), (720.0, 20.0)], 0.0, 720.0, 1.0, 1.0)]
    // The window's edges hold the nearest reading and bound by the change beyond it (the
    // whole reading after the last one): 0.5 Ah at each edge.
    #[case(&[(0.0, 0.0), (360.0, 10.0), (720.0, 10.0)], 180.0, 900.0, 2.0, 1.0)]
    // No reading: nothing known, nothing integrated.
    #[case(&[], 0.0, 3600.0, 0.0, 0.0)]
    fn integrates_by_trapezoid_with_the_integration_bound(
        #[case] readings: &[(f64, f64)],
        #[case] from: f64,
        #[case] to: f64,
        #[case] ah: f64,
        #[case] bound_ah: f64,
    ) {
        let i = integrate(readings, from, to, EXACT);
        assert!((i.ah - ah).abs() < 1e-9, "{i:?}");
        assert!((i.integration_ah - bound_ah).abs() < 1e-9, "{i:?}");
    }

    #[test]
    fn meter_accuracy_adds_up_linearly_over_time() {
        let acc = MeterAccuracy {
            gain: 0.001,
            offset: 0.1,
        };
        let i = integrate(&[(0.0, 20.0), (3600.0, 20.0)], 0.0, 3600.0, acc);
        // (0.1 % of 20 A + 0.1 A) for an hour.
        assert!((i.accuracy_ah - 0.12).abs() < 1e-12, "{i:?}");
    }

    #[test]
    fn the_start_from_ocv_bounds_the_soc_by_the_curve_slope() {
        // 16 cells at 3.225 V: halfway between 10 % and 20 %, 5 mV per % there.
        let meter = MeterAccuracy {
            gain: 0.0,
            offset: 0.016,
        };
        let s = start_from_ocv(16.0 * 3.225, meter, 16, &lfp(), 0.002).unwrap();
        assert!((s.soc_pct - 15.0).abs() < 1e-9);
        // 16 mV over 16 cells: 1 mV per cell, 0.2 %; the curve's 2 mV: 0.4 %.
        assert!((s.contributions[0].value - 0.2).abs() < 1e-9, "{s:?}");
        assert!((s.contributions[1].value - 0.4).abs() < 1e-9, "{s:?}");
        // On the flat plateau the same volts are worth more SOC.
        let flat = start_from_ocv(16.0 * 3.3, meter, 16, &lfp(), 0.002).unwrap();
        assert!(flat.contributions[1].value > 1.0, "{flat:?}");
        let e = start_from_ocv(16.0 * 3.6, meter, 16, &lfp(), 0.002).unwrap_err();
        assert!(e.contains("outside the declared OCV curve"), "{e}");
    }

    #[test]
    fn the_reference_adds_the_charge_and_propagates_every_contribution() {
        let start = start_from_ocv(16.0 * 3.225, EXACT, 16, &lfp(), 0.0).unwrap();
        let supply = [(0.0, 0.0), (100.0, 20.0), (3700.0, 20.0)];
        let load = [(0.0, 0.0), (3700.0, 0.0)];
        let acc = MeterAccuracy {
            gain: 0.0,
            offset: 0.1,
        };
        let meters = [
            CurrentMeter {
                name: "supply.i",
                readings: &supply,
                sign: 1.0,
                accuracy: acc,
            },
            CurrentMeter {
                name: "load.i",
                readings: &load,
                sign: -1.0,
                accuracy: acc,
            },
        ];
        let cap = Capacity {
            ah: 100.0,
            tolerance_ah: 2.0,
        };
        let r = reference(&start, &meters, 0.0, 3700.0, cap);
        // 20 A for 3600 s plus the ramp's trapezoid (0.5 · 20 A · 100 s): 20.278 Ah.
        let q = 20.0 + 1000.0 / 3600.0;
        assert!((r.charge_ah - q).abs() < 1e-9, "{r:?}");
        assert!((r.soc_pct - (15.0 + q)).abs() < 1e-9);
        let by = |name: &str| {
            r.contributions
                .iter()
                .find(|c| c.name.contains(name))
                .unwrap()
                .value
        };
        assert!((by("capacity") - 100.0 * q * 2.0 / 1e4).abs() < 1e-9);
        assert!((by("`supply.i`") - 100.0 * 0.1 * 3700.0 / 3600.0 / 100.0).abs() < 1e-9);
        assert!((by("integration") - 100.0 * 1000.0 / 3600.0 / 100.0).abs() < 1e-9);
        assert!(combined(&r.contributions) > 0.0);
    }
}
