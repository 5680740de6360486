//! The rig's oscilloscope on the pack current: arm an edge trigger before a stimulus, wait
//! for the single acquisition, read the record back with its preamble.
//!
//! Settings are in amperes on the driver's side; the scope sees the current probe's volts
//! (`capture.volts_per_amp` in the rig entry), so the driver converts both ways. Every
//! command that carries a setting is checked against the dialect's `ranges:` before it is
//! sent ([`ScopeDialect`]'s `check_*`); a setting outside them is refused and nothing is sent.
//!
//! The window: `pre` seconds before the trigger and `post` after. The time base scale is
//! the smallest 1-2-5 step whose screen (`horizontal_divisions` × scale) holds the window,
//! and the offset puts the trigger `pre` after the screen's left edge; the points read are
//! the screen at the asked sample interval.

use std::time::Duration;

use crate::instrument::identified;
use crate::instrument::InstrumentError;
use crate::rig::CaptureInput;
use crate::scpi::waveform::Preamble;
use crate::scpi::{Client, ScopeDialect, Transport};

/// One triggered acquisition, in the pack-current terms of the rig (A, s).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Acquisition {
    /// Trigger level in amperes (discharge positive).
    pub level_a: f64,
    /// Trigger on a rising edge (else falling).
    pub rising: bool,
    /// The largest current the record must show without clipping, in amperes.
    pub full_scale_a: f64,
    /// Seconds of record before the trigger.
    pub pre_s: f64,
    /// Seconds of record after the trigger.
    pub post_s: f64,
    /// Asked sample interval in seconds (the record's may be shorter).
    pub sample_interval_s: f64,
}

/// A record read back: its preamble and the values in amperes.
#[derive(Debug, Clone, PartialEq)]
pub struct Waveform {
    /// The preamble (times relative to the trigger; y fields in volts at the input).
    pub preamble: Preamble,
    /// The samples, in amperes through the probe.
    pub amps: Vec<f64>,
}

/// An oscilloscope as the runner drives it.
#[async_trait::async_trait]
pub trait Scope: Send {
    /// The instrument id from the rig file.
    fn id(&self) -> &str;
    /// The dialect it speaks.
    fn dialect(&self) -> &ScopeDialect;
    /// Program the trigger, vertical and time base, and start a single acquisition.
    async fn arm(&mut self, acq: &Acquisition) -> Result<(), InstrumentError>;
    /// Whether the single acquisition is complete.
    async fn acquired(&mut self) -> Result<bool, InstrumentError>;
    /// Read the record of the completed acquisition.
    async fn fetch(&mut self) -> Result<Waveform, InstrumentError>;
}

/// The 1-2-5 sequence step at or above `x` (x > 0).
pub fn step_125(x: f64) -> f64 {
    let decade = 10f64.powf(x.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * decade)
        .find(|v| *v >= x * (1.0 - 1e-9))
        .unwrap_or(10.0 * decade)
}

/// A SCPI oscilloscope.
pub struct ScpiScope {
    id: String,
    dialect: ScopeDialect,
    client: Client,
    input: CaptureInput,
    identity: String,
    /// Points asked for by the last `arm`.
    points: usize,
}

impl ScpiScope {
    /// Connect to `address`, check the input and `*IDN?` against the dialect and send its
    /// `on_connect`.
    pub async fn connect(
        id: &str,
        address: &str,
        dialect: ScopeDialect,
        input: CaptureInput,
        timeout: Duration,
    ) -> Result<Self, InstrumentError> {
        Self::check_input(id, &dialect, input)?;
        let (client, identity) = identified::connect(id, address, &dialect, timeout).await?;
        Ok(Self::with(id, dialect, client, input, identity))
    }

    /// Use an open transport (an in-memory pipe) as [`ScpiScope::connect`] does.
    pub async fn open(
        id: &str,
        transport: Box<dyn Transport>,
        dialect: ScopeDialect,
        input: CaptureInput,
        timeout: Duration,
    ) -> Result<Self, InstrumentError> {
        Self::check_input(id, &dialect, input)?;
        let (client, identity) = identified::open(id, transport, &dialect, timeout).await?;
        Ok(Self::with(id, dialect, client, input, identity))
    }

    fn with(
        id: &str,
        dialect: ScopeDialect,
        client: Client,
        input: CaptureInput,
        identity: String,
    ) -> Self {
        ScpiScope {
            id: id.to_string(),
            dialect,
            client,
            input,
            identity,
            points: 0,
        }
    }

    /// The input channel must be one of the dialect's and the probe's sensitivity positive
    /// (checked before anything is sent).
    fn check_input(
        id: &str,
        dialect: &ScopeDialect,
        input: CaptureInput,
    ) -> Result<(), InstrumentError> {
        let capture = |message: String| InstrumentError::Capture {
            id: id.to_string(),
            message,
        };
        dialect
            .check_channel(input.channel)
            .map_err(|e| capture(e.to_string()))?;
        if !(input.volts_per_amp.is_finite() && input.volts_per_amp > 0.0) {
            return Err(capture(format!(
                "capture.volts_per_amp {} is not a positive number",
                input.volts_per_amp
            )));
        }
        Ok(())
    }

    /// What the scope answered to `*IDN?`.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    fn scpi(&self, error: crate::scpi::ScpiError) -> InstrumentError {
        InstrumentError::Scpi {
            id: self.id.clone(),
            error,
        }
    }

    fn capture(&self, message: String) -> InstrumentError {
        InstrumentError::Capture {
            id: self.id.clone(),
            message,
        }
    }

    fn check(&self, r: Result<(), crate::scpi::ScopeRangeError>) -> Result<(), InstrumentError> {
        r.map_err(|e| self.capture(e.to_string()))
    }

    /// The commands `arm` sends for `acq`, every setting checked first (nothing is sent
    /// when one is outside the dialect's ranges), and the number of points to read.
    pub fn arm_commands(&self, acq: &Acquisition) -> Result<(Vec<String>, usize), InstrumentError> {
        let d = &self.dialect;
        let c = &d.commands;
        let ch = self.input.channel;
        let vpa = self.input.volts_per_amp;
        for (what, v) in [
            ("trigger level (A)", acq.level_a),
            ("full scale (A)", acq.full_scale_a),
            ("pre-trigger time (s)", acq.pre_s),
            ("post-trigger time (s)", acq.post_s),
            ("sample interval (s)", acq.sample_interval_s),
        ] {
            if !v.is_finite() || (what != "trigger level (A)" && v <= 0.0) {
                return Err(self.capture(format!(
                    "{what} {v} is not a positive finite number; nothing was sent"
                )));
            }
        }
        // Vertical: the full scale within the divisions the trigger may use, 1-2-5 steps.
        let v_scale = step_125(acq.full_scale_a * vpa / d.ranges.trigger_level_divisions);
        self.check(d.check_channel_scale(v_scale))?;
        let level_v = acq.level_a * vpa;
        self.check(d.check_trigger_level(level_v, v_scale, 0.0))?;
        // Horizontal.
        let divisions = f64::from(d.horizontal_divisions);
        let t_scale = step_125((acq.pre_s + acq.post_s) / divisions);
        self.check(d.check_timebase_scale(t_scale))?;
        let offset = t_scale * divisions / 2.0 - acq.pre_s;
        self.check(d.check_timebase_offset(offset))?;
        let points = (t_scale * divisions / acq.sample_interval_s).round() as usize;
        self.check(d.check_points(points))?;
        let r = |t: &str, v: Option<f64>, rising: bool| d.render(t, v, ch, rising);
        let commands = vec![
            r(&c.channel_scale, Some(v_scale), acq.rising),
            r(&c.channel_offset, Some(0.0), acq.rising),
            r(&c.timebase_scale, Some(t_scale), acq.rising),
            r(&c.timebase_offset, Some(offset), acq.rising),
            r(&c.trigger_source, None, acq.rising),
            r(&c.trigger_slope, None, acq.rising),
            r(&c.trigger_level, Some(level_v), acq.rising),
            r(&c.single, None, acq.rising),
        ];
        Ok((commands, points))
    }
}

#[async_trait::async_trait]
impl Scope for ScpiScope {
    fn id(&self) -> &str {
        &self.id
    }

    fn dialect(&self) -> &ScopeDialect {
        &self.dialect
    }

    async fn arm(&mut self, acq: &Acquisition) -> Result<(), InstrumentError> {
        let (commands, points) = self.arm_commands(acq)?;
        self.client
            .write_sequence_checked(&commands)
            .await
            .map_err(|e| self.scpi(e))?;
        self.points = points;
        Ok(())
    }

    async fn acquired(&mut self) -> Result<bool, InstrumentError> {
        let q = self.dialect.commands.trigger_status.clone();
        let reply = self.client.query(&q).await.map_err(|e| self.scpi(e))?;
        Ok(self.dialect.is_acquired(&reply))
    }

    async fn fetch(&mut self) -> Result<Waveform, InstrumentError> {
        let d = &self.dialect;
        let c = &d.commands;
        let ch = self.input.channel;
        let points = self.points.max(1);
        self.check(d.check_points(points))?;
        let setup = vec![
            d.render(&c.waveform_source, None, ch, true),
            d.render(&c.waveform_mode, None, ch, true),
            d.render(&c.waveform_format, None, ch, true),
            d.render(&c.waveform_points, Some(points as f64), ch, true),
        ];
        let (pre_q, data_q) = (c.preamble.clone(), c.data.clone());
        let scaling = d.scaling.y_scaling();
        self.client
            .write_sequence_checked(&setup)
            .await
            .map_err(|e| self.scpi(e))?;
        let pre_text = self.client.query(&pre_q).await.map_err(|e| self.scpi(e))?;
        let preamble = Preamble::parse(&pre_text).map_err(|reason| self.capture(reason))?;
        let payload = self
            .client
            .query_block(&data_q)
            .await
            .map_err(|e| self.scpi(e))?;
        let volts = preamble
            .values(&payload, scaling)
            .map_err(|reason| self.capture(reason))?;
        if volts.len() != preamble.points {
            return Err(self.capture(format!(
                "the preamble announces {} points, the data block holds {}",
                preamble.points,
                volts.len()
            )));
        }
        let vpa = self.input.volts_per_amp;
        Ok(Waveform {
            preamble,
            amps: volts.iter().map(|v| v / vpa).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(0.3, 0.5)]
    #[case(1.0, 1.0)]
    #[case(1.2e-4, 2e-4)]
    #[case(6.0, 10.0)]
    fn steps_in_1_2_5(#[case] x: f64, #[case] want: f64) {
        assert!((step_125(x) - want).abs() < 1e-12 * want, "{}", step_125(x));
    }
}
