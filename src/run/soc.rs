//! The `soc` step on the station: start the state-of-charge reference from the pack at rest,
//! and compare the BMS's reported SOC with it at a checkpoint. The reference and its budget
//! are computed by [`crate::verdict::soc`]; this module only gathers the readings the run
//! sampled (the load's voltage, the supply's and load's currents from the signal history)
//! and the accuracy of the meters (their dialects, through [`Station::measure_accuracy`]).

use super::*;
use crate::plan::model::SocStep;
use crate::verdict::gum::Contribution;
use crate::verdict::soc::{self as reference, Capacity, CurrentMeter, MeterAccuracy, Start};

/// Where the reference started: the instant (run clock, s) and the starting SOC.
#[derive(Debug, Clone)]
pub(super) struct Origin {
    t: f64,
    start: Start,
}

/// A meter's accuracy as `gain·|x| + offset`, read back from the station's dialect tables.
async fn accuracy(st: &Station, signal: &str) -> Option<MeterAccuracy> {
    let offset = st.measure_accuracy(signal, 0.0).await?;
    let at_one = st.measure_accuracy(signal, 1.0).await?;
    Some(MeterAccuracy {
        gain: (at_one - offset).max(0.0),
        offset,
    })
}

/// `soc: {start: rest}`: the pack voltage the load reads now, through the fixture's OCV curve.
pub(super) async fn start(ctx: &Ctx) -> Result<(), RunError> {
    let st = &ctx.station;
    let decl = ctx.plan.fixture.value.soc.as_ref().ok_or_else(|| {
        RunError::setup("soc: the DUT fixture declares no `soc:` for the reference")
    })?;
    st.require_load()?;
    let (pack_v, at) = st.signals.get("load.v").ok_or_else(|| {
        RunError::setup("soc: no voltage reading from the load yet to start the reference from")
    })?;
    let meter = accuracy(st, "load.v").await.unwrap_or(MeterAccuracy {
        gain: 0.0,
        offset: 0.0,
    });
    let start = reference::start_from_ocv(
        pack_v,
        meter,
        ctx.plan.fixture.value.cells_in_series,
        &decl.curve(),
        decl.ocv_tolerance.0,
    )
    .map_err(|e| RunError::setup(format!("soc: cannot start the reference: {e}")))?;
    *ctx.soc.lock().unwrap_or_else(|e| e.into_inner()) = Some(Origin {
        t: ctx.clock.t(at),
        start,
    });
    Ok(())
}

/// The readings of a signal's history on the run's clock.
fn readings(ctx: &Ctx, signal: &str) -> Vec<(f64, f64)> {
    ctx.station
        .signals
        .history(signal)
        .into_iter()
        .map(|(at, v)| (ctx.clock.t(at), v))
        .collect()
}

/// A checkpoint: the BMS's latest reported SOC against the reference at the instant it
/// arrived, judged by the step's `soc_accuracy` criterion.
pub(super) async fn checkpoint(
    ctx: &Ctx,
    x: &SocStep,
    name: &str,
    repeat: u32,
) -> Result<TestResult, RunError> {
    let st = &ctx.station;
    let test = x.name.clone().unwrap_or_default();
    let mut result = trip::new_result(
        &test,
        name,
        repeat,
        &ctx.plan.plan.value.requirements,
        ctx.clock.now(),
    );
    let fail = |result: &mut TestResult, m: String| {
        result.verdict = Verdict::Fail;
        result.message = Some(m);
    };
    let origin = ctx.soc.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let (Some(origin), Some(decl)) = (origin, ctx.plan.fixture.value.soc.as_ref()) else {
        fail(&mut result, "the SOC reference was not started".into());
        return Ok(result);
    };
    let signal = x.signal();
    let Some((bms, at)) = st.signals.get(signal) else {
        fail(&mut result, format!("no value of `{signal}` was observed"));
        return Ok(result);
    };
    let to = ctx.clock.t(at);
    if to < origin.t {
        fail(
            &mut result,
            format!("the latest `{signal}` arrived before the reference started"),
        );
        return Ok(result);
    }
    result.detected_s = Some(to);
    let supply = readings(ctx, "supply.i");
    let load = readings(ctx, "load.i");
    let mut meters = Vec::new();
    for (name, r, sign) in [("supply.i", &supply, 1.0), ("load.i", &load, -1.0)] {
        if let Some(acc) = accuracy(st, name).await {
            meters.push(CurrentMeter {
                name,
                readings: r,
                sign,
                accuracy: acc,
            });
        }
    }
    let capacity = Capacity {
        ah: decl.capacity.0.value,
        tolerance_ah: decl.capacity_tolerance.0.value,
    };
    let r = reference::reference(&origin.start, &meters, origin.t, to, capacity);
    let Some(judge) = &x.judge else {
        return Ok(result);
    };
    let Some(c) = ctx.plan.limits.value.criteria.get(&judge.value) else {
        return Ok(result);
    };
    let crate::plan::Check::SocAccuracy { max_error } = &c.value.check else {
        return Ok(result);
    };
    let start_text = format!(
        "SOC reference: {:.1} % at rest (t = {:.0} s, declared OCV curve) plus {:.3} Ah from the supply's and load's current readings over {:.0} Ah declared",
        origin.start.soc_pct, origin.t, r.charge_ah, capacity.ah
    );
    let reference_m = trip::judged(
        &judge.value,
        trip::Measured {
            quantity: "soc_reference",
            value: r.soc_pct,
            contributions: r.contributions.clone(),
            limit: Limit {
                low: None,
                high: None,
            },
            unit: "%",
            budget: start_text.clone(),
        },
        &c.value.provenance,
        ctx.rule,
    );
    // The BMS's report: half its resolution on the bus, and how far the SOC moved during one
    // of its sampling periods (its estimate may be that old when the frame leaves).
    let resolution = super::steps::signal_resolution(&ctx.plan, signal);
    let net_now = supply.last().map_or(0.0, |s| s.1) - load.last().map_or(0.0, |l| l.1);
    let sampling = ctx.plan.fixture.value.sampling_period.map_or(0.0, |s| s.0);
    let mut contributions = r.contributions;
    contributions.push(Contribution::rectangular(
        format!("`{signal}` resolution on the bus (half its DBC factor)"),
        resolution / 2.0,
    ));
    contributions.push(Contribution::rectangular(
        "the BMS's estimate up to one sampling period old",
        100.0 * net_now.abs() * sampling / 3600.0 / capacity.ah,
    ));
    let error_m = trip::judged(
        &judge.value,
        trip::Measured {
            quantity: "soc_error",
            value: bms - r.soc_pct,
            contributions,
            limit: Limit::between(-max_error.abs(), max_error.abs()),
            unit: "%",
            budget: format!(
                "`{signal}` {bms:.1} % minus the reference; {start_text}; the reference's budget plus the BMS's report"
            ),
        },
        &c.value.provenance,
        ctx.rule,
    );
    result.verdict = error_m.verdict;
    result.measurements.push(reference_m);
    result.measurements.push(error_m);
    Ok(result)
}

/// `cells: {release: all}`: every cell-simulator channel lets go.
pub(super) async fn release_cells(st: &Station) -> Result<(), RunError> {
    let c = st.require_cells()?;
    let mut g = c.lock().await;
    for cell in 1..=st.cells_in_series {
        g.release_cell(cell).await?;
    }
    Ok(())
}
