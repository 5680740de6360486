//! Simulated oscilloscopes on the pack current: the Rigol DS1000Z and Keysight
//! InfiniiVision command sets for one edge-triggered single acquisition and the waveform
//! transfer (preamble, BYTE block).
//!
//! The scope samples the plant's pack current through [`CurrentTrace`] in virtual time, so
//! a record shows the front end's trip at its true instant. Its input is a current probe
//! on the load lead with the rig's `capture.volts_per_amp`, pointing into the load:
//! discharge reads positive. The trigger is ideal (the record's time 0 is the crossing);
//! a single acquisition is complete once the virtual clock has passed the record's end.
//! `:TRIGger:STATus?` (Rigol) answers RUN before `:SINGle`, WAIT until the edge, TD until
//! the record is full, then STOP; `:TER?` (Keysight) answers `+1` once per completed
//! acquisition, then `+0`. Settings outside the dialect's ranges are refused with
//! `-222,"Data out of range"`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::time::Instant;

use super::line_server::{Core, LineDevice, Server};
use super::parser::{self, numeric_between, single, Pattern};
use super::{fault, lock, ScpiFault};
use crate::scpi::{ScalingFamily, ScopeDialect, Transport};
use crate::sim::capture::CurrentTrace;

/// Points read when `:WAVeform:POINts` was not sent.
const DEFAULT_POINTS: usize = 1200;

/// What a recognised header does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    SystemError,
    ChannelScale,
    ChannelOffset,
    TimebaseScale,
    TimebaseOffset,
    TriggerSource,
    TriggerSlope,
    TriggerLevel,
    Single,
    TriggerStatus,
    TriggerEvent,
    WaveformSource,
    WaveformMode,
    WaveformFormat,
    WaveformPoints,
    Preamble,
    Data,
}

fn patterns(family: ScalingFamily) -> Vec<Pattern<Act>> {
    use Act as A;
    let mut t = vec![
        Pattern::new("SYSTem:ERRor[:NEXT]", A::SystemError),
        Pattern::new("CHANnel#:SCALe", A::ChannelScale),
        Pattern::new("CHANnel#:OFFSet", A::ChannelOffset),
        Pattern::new("TRIGger:EDGE:SOURce", A::TriggerSource),
        Pattern::new("TRIGger:EDGE:SLOPe", A::TriggerSlope),
        Pattern::new("TRIGger:EDGE:LEVel", A::TriggerLevel),
        Pattern::new("SINGle", A::Single),
        Pattern::new("WAVeform:SOURce", A::WaveformSource),
        Pattern::new("WAVeform:FORMat", A::WaveformFormat),
        Pattern::new("WAVeform:POINts", A::WaveformPoints),
        Pattern::new("WAVeform:PREamble", A::Preamble),
        Pattern::new("WAVeform:DATA", A::Data),
    ];
    match family {
        ScalingFamily::Rigol => t.extend([
            Pattern::new("TIMebase[:MAIN]:SCALe", A::TimebaseScale),
            Pattern::new("TIMebase[:MAIN]:OFFSet", A::TimebaseOffset),
            Pattern::new("TRIGger:STATus", A::TriggerStatus),
            Pattern::new("WAVeform:MODE", A::WaveformMode),
        ]),
        ScalingFamily::Keysight => t.extend([
            Pattern::new("TIMebase[:MAIN]:SCALe", A::TimebaseScale),
            Pattern::new("TIMebase[:MAIN]:POSition", A::TimebaseOffset),
            Pattern::new("TER", A::TriggerEvent),
            Pattern::new("WAVeform:POINts:MODE", A::WaveformMode),
        ]),
    }
    t
}

#[derive(Debug)]
struct ScopeState {
    scale: [f64; 5],
    offset: [f64; 5],
    timebase_scale: f64,
    timebase_offset: f64,
    trigger_source: u32,
    trigger_rising: bool,
    trigger_level: f64,
    armed: Option<Instant>,
    event_read: bool,
    waveform_source: u32,
    points: usize,
}

struct ScopeShared {
    dialect: ScopeDialect,
    patterns: Vec<Pattern<Act>>,
    trace: CurrentTrace,
    volts_per_amp: f64,
    input_channel: u32,
    state: Mutex<ScopeState>,
    core: Core,
}

/// Where an acquisition stands.
enum Acq {
    Idle,
    Waiting,
    Triggered,
    Done(Instant),
}

/// A running simulated oscilloscope; cloning gives another handle to the same scope.
#[derive(Clone)]
pub struct SimScope {
    server: Server<ScopeShared>,
}

impl std::fmt::Debug for SimScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimScope")
            .field("dialect", &self.server.shared.dialect.id)
            .field("local_addr", &self.server.local_addr())
            .finish()
    }
}

impl SimScope {
    fn new_shared(
        dialect: ScopeDialect,
        trace: CurrentTrace,
        input_channel: u32,
        volts_per_amp: f64,
        serial: &str,
    ) -> Arc<ScopeShared> {
        Arc::new(ScopeShared {
            patterns: patterns(dialect.scaling),
            state: Mutex::new(ScopeState {
                scale: [1.0; 5],
                offset: [0.0; 5],
                timebase_scale: 1e-3,
                timebase_offset: 0.0,
                trigger_source: 1,
                trigger_rising: true,
                trigger_level: 0.0,
                armed: None,
                event_read: false,
                waveform_source: 1,
                points: DEFAULT_POINTS,
            }),
            core: Core::new(&dialect.terminator, serial),
            dialect,
            trace,
            volts_per_amp,
            input_channel,
        })
    }

    /// Serve `dialect` on `listener`: the pack current of `trace` on input `input_channel`
    /// through a probe of `volts_per_amp`.
    pub async fn serve(
        listener: TcpListener,
        dialect: ScopeDialect,
        trace: CurrentTrace,
        input_channel: u32,
        volts_per_amp: f64,
    ) -> SimScope {
        let shared = Self::new_shared(dialect, trace, input_channel, volts_per_amp, "");
        let server = Server::serve(listener, shared);
        server.set_serial(&format!("SIMSC{:05}", server.local_addr().port()));
        SimScope { server }
    }

    /// Serve without a socket: reachable through [`SimScope::connect_in_memory`] only.
    pub fn serve_in_memory(
        dialect: ScopeDialect,
        trace: CurrentTrace,
        input_channel: u32,
        volts_per_amp: f64,
    ) -> SimScope {
        let shared = Self::new_shared(dialect, trace, input_channel, volts_per_amp, "SIMSCMEM");
        SimScope {
            server: Server::in_memory(shared),
        }
    }

    /// A transport connected to this scope without a socket.
    pub fn connect_in_memory(&self) -> Box<dyn Transport> {
        self.server.connect_in_memory()
    }

    /// The address to put in a rig file: `tcp://127.0.0.1:<port>`.
    pub fn address(&self) -> String {
        self.server.address()
    }

    /// Answer `*IDN?` with this serial number.
    pub fn set_serial(&self, serial: &str) {
        self.server.set_serial(serial);
    }

    /// The command lines received, in order.
    pub fn command_log(&self) -> Vec<String> {
        self.server.command_log()
    }

    /// Stop listening and close every connection.
    pub fn shutdown(&self) {
        self.server.shutdown();
    }
}

/// `CHANnel2`, `CHAN2`, `CH2` -> 2.
fn source_channel(params: &[String]) -> Result<u32, ScpiFault> {
    let text = single(params)?.to_ascii_uppercase();
    ["CHANNEL", "CHAN", "CH"]
        .iter()
        .find_map(|p| text.strip_prefix(p))
        .and_then(|n| n.parse::<u32>().ok())
        .ok_or_else(|| fault(-224, "Illegal parameter value"))
}

impl LineDevice for ScopeShared {
    type Act = Act;

    fn core(&self) -> &Core {
        &self.core
    }

    fn patterns(&self) -> &[Pattern<Act>] {
        &self.patterns
    }

    fn identity(&self) -> String {
        let serial = self.core.serial();
        match self.dialect.scaling {
            ScalingFamily::Rigol => format!("RIGOL TECHNOLOGIES,DS1104Z,{serial},00.04.05.SP2"),
            ScalingFamily::Keysight => {
                format!("KEYSIGHT TECHNOLOGIES,DSO-X 3024T,{serial},07.50.2021102830")
            }
        }
    }

    fn execute(
        &self,
        act: Act,
        suffix: Option<u32>,
        query: bool,
        params: &[String],
    ) -> Result<Option<Vec<u8>>, ScpiFault> {
        self.run(act, suffix, query, params)
    }
}

impl ScopeShared {
    /// Where the current single acquisition stands.
    fn acquisition(&self, st: &ScopeState) -> Acq {
        let Some(armed) = st.armed else {
            return Acq::Idle;
        };
        if st.trigger_source != self.input_channel {
            // Nothing is wired to the other inputs: they never cross a level.
            return Acq::Waiting;
        }
        // The probe reads -pack current (discharge positive): a rising edge on the scope
        // is a falling one of the pack current.
        let level_pack = -st.trigger_level / self.volts_per_amp;
        let Some(t) = self.trace.trigger(armed, level_pack, !st.trigger_rising) else {
            return Acq::Waiting;
        };
        let (start, len) = self.window(st);
        let end = start + len;
        if Instant::now() >= t + Duration::from_secs_f64(end.max(0.0)) {
            Acq::Done(t)
        } else {
            Acq::Triggered
        }
    }

    /// The record's start relative to the trigger and its length, in seconds.
    fn window(&self, st: &ScopeState) -> (f64, f64) {
        let len = st.timebase_scale * f64::from(self.dialect.horizontal_divisions);
        (st.timebase_offset - len / 2.0, len)
    }

    /// The preamble's y fields for a channel: (yincrement, yorigin, yreference).
    fn y_fields(&self, st: &ScopeState, ch: usize) -> (f64, f64, f64) {
        match self.dialect.scaling {
            ScalingFamily::Rigol => (st.scale[ch] / 25.0, 0.0, 127.0),
            ScalingFamily::Keysight => (st.scale[ch] / 32.0, st.offset[ch], 128.0),
        }
    }

    fn run(
        &self,
        act: Act,
        suffix: Option<u32>,
        query: bool,
        params: &[String],
    ) -> Result<Option<Vec<u8>>, ScpiFault> {
        let d = &self.dialect;
        let r = &d.ranges;
        let mut st = lock(&self.state);
        let text = |s: String| Ok(Some(s.into_bytes()));
        let channel = || -> Result<usize, ScpiFault> {
            let ch = suffix.unwrap_or(1);
            if (1..=r.channels).contains(&ch) {
                Ok(ch as usize)
            } else {
                Err(fault(-114, "Header suffix out of range"))
            }
        };
        match (act, query) {
            (Act::SystemError, true) => {
                let (code, msg) = self.core.pop_error().unwrap_or((0, "No error".into()));
                text(format!("{code},\"{msg}\""))
            }
            (Act::ChannelScale, false) => {
                let ch = channel()?;
                st.scale[ch] =
                    numeric_between(params, r.channel_scale.min, r.channel_scale.max, "V")?;
                Ok(None)
            }
            (Act::ChannelScale, true) => text(format!("{:e}", st.scale[channel()?])),
            (Act::ChannelOffset, false) => {
                let ch = channel()?;
                let lim = 10.0 * st.scale[ch].max(1.0);
                st.offset[ch] = numeric_between(params, -lim, lim, "V")?;
                Ok(None)
            }
            (Act::TimebaseScale, false) => {
                let (min, max) = (r.timebase_scale.min, r.timebase_scale.max);
                let v = numeric_between(params, min, max, "s")?;
                // The shared check's slack is absolute; the fastest time base is nanoseconds.
                if v < min * (1.0 - 1e-9) {
                    return Err(fault(-222, "Data out of range"));
                }
                st.timebase_scale = v;
                Ok(None)
            }
            (Act::TimebaseScale, true) => text(format!("{:e}", st.timebase_scale)),
            (Act::TimebaseOffset, false) => {
                let m = r.timebase_offset;
                st.timebase_offset = numeric_between(params, -m, m, "s")?;
                Ok(None)
            }
            (Act::TimebaseOffset, true) => text(format!("{:e}", st.timebase_offset)),
            (Act::TriggerSource, false) => {
                let ch = source_channel(params)?;
                if !(1..=r.channels).contains(&ch) {
                    return Err(fault(-222, "Data out of range"));
                }
                st.trigger_source = ch;
                Ok(None)
            }
            (Act::TriggerSlope, false) => {
                st.trigger_rising = match single(params)?.to_ascii_uppercase().as_str() {
                    "POS" | "POSITIVE" => true,
                    "NEG" | "NEGATIVE" => false,
                    _ => return Err(fault(-224, "Illegal parameter value")),
                };
                Ok(None)
            }
            (Act::TriggerLevel, false) => {
                let ch = st.trigger_source as usize;
                let half = r.trigger_level_divisions * st.scale[ch];
                let off = st.offset[ch];
                st.trigger_level = numeric_between(params, -half - off, half - off, "V")?;
                Ok(None)
            }
            (Act::TriggerLevel, true) => text(format!("{:e}", st.trigger_level)),
            (Act::Single, false) => {
                parser::no_params(params)?;
                st.armed = Some(Instant::now());
                st.event_read = false;
                Ok(None)
            }
            (Act::TriggerStatus, true) => text(
                match self.acquisition(&st) {
                    Acq::Idle => "RUN",
                    Acq::Waiting => "WAIT",
                    Acq::Triggered => "TD",
                    Acq::Done(_) => "STOP",
                }
                .into(),
            ),
            (Act::TriggerEvent, true) => {
                let done = matches!(self.acquisition(&st), Acq::Done(_));
                let first = done && !st.event_read;
                if first {
                    st.event_read = true;
                }
                text(if first { "+1" } else { "+0" }.into())
            }
            (Act::WaveformSource, false) => {
                let ch = source_channel(params)?;
                if !(1..=r.channels).contains(&ch) {
                    return Err(fault(-222, "Data out of range"));
                }
                st.waveform_source = ch;
                Ok(None)
            }
            (Act::WaveformMode, false) => match single(params)?.to_ascii_uppercase().as_str() {
                "RAW" | "NORM" | "NORMAL" | "MAX" | "MAXIMUM" => Ok(None),
                _ => Err(fault(-224, "Illegal parameter value")),
            },
            (Act::WaveformFormat, false) => match single(params)?.to_ascii_uppercase().as_str() {
                "BYTE" => Ok(None),
                // Only BYTE transfers are simulated.
                "WORD" | "ASC" | "ASCII" => Err(fault(-221, "Settings conflict;BYTE only")),
                _ => Err(fault(-224, "Illegal parameter value")),
            },
            (Act::WaveformPoints, false) => {
                let n = numeric_between(params, 1.0, r.max_points as f64, "")?;
                st.points = n.round() as usize;
                Ok(None)
            }
            (Act::WaveformPoints, true) => text(st.points.to_string()),
            (Act::Preamble, true) => {
                let ch = st.waveform_source as usize;
                let (start, len) = self.window(&st);
                let n = st.points.max(1);
                let (yinc, yorigin, yref) = self.y_fields(&st, ch);
                text(format!(
                    "0,2,{n},1,{:e},{:e},0,{:e},{:e},{}",
                    len / n as f64,
                    start,
                    yinc,
                    yorigin,
                    yref
                ))
            }
            (Act::Data, true) => {
                let Acq::Done(t) = self.acquisition(&st) else {
                    return Err(fault(-200, "Execution error;no completed acquisition"));
                };
                let ch = st.waveform_source as usize;
                let (start, len) = self.window(&st);
                let n = st.points.max(1);
                let dt = len / n as f64;
                let (yinc, yorigin, yref) = self.y_fields(&st, ch);
                let wired = ch as u32 == self.input_channel;
                let first = if start >= 0.0 {
                    Some(t + Duration::from_secs_f64(start))
                } else {
                    t.checked_sub(Duration::from_secs_f64(-start))
                };
                let amps = match first {
                    Some(first) if wired => {
                        self.trace.sample(first, Duration::from_secs_f64(dt), n)
                    }
                    _ => vec![0.0; n],
                };
                let codes: Vec<u8> = amps
                    .iter()
                    .map(|i| {
                        let volts = if i.is_finite() {
                            -i * self.volts_per_amp
                        } else {
                            0.0
                        };
                        let code = match self.dialect.scaling {
                            ScalingFamily::Rigol => volts / yinc + yorigin + yref,
                            ScalingFamily::Keysight => (volts - yorigin) / yinc + yref,
                        };
                        code.round().clamp(0.0, 255.0) as u8
                    })
                    .collect();
                let digits = codes.len().to_string();
                let mut block = format!("#{}{}", digits.len(), digits).into_bytes();
                block.extend_from_slice(&codes);
                Ok(Some(block))
            }
            _ => Err(fault(-113, "Undefined header")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::line_server::handle_line;
    use super::*;
    use crate::scpi::builtin_scope_dialect;
    use crate::sim::plant::Plant;

    fn scope(id: &str) -> (SimScope, Plant) {
        let plant = Plant::new(4, 3.3, 1, 25.0);
        let trace = CurrentTrace::watch(&plant);
        let s = SimScope::serve_in_memory(builtin_scope_dialect(id).unwrap(), trace, 1, 0.01);
        (s, plant)
    }

    fn ask(s: &SimScope, line: &str) -> String {
        s.server.ask(line)
    }

    #[tokio::test(start_paused = true)]
    async fn refuses_settings_outside_the_ranges_and_queues_the_error() {
        let (s, _) = scope("rigol-ds1000z");
        assert_eq!(ask(&s, ":TIMebase:MAIN:SCALe 1e-9"), "");
        assert_eq!(ask(&s, ":SYST:ERR?"), "-222,\"Data out of range\"");
        assert_eq!(ask(&s, ":CHAN5:SCAL 1"), "");
        assert!(ask(&s, ":SYST:ERR?").starts_with("-114"));
        assert_eq!(ask(&s, ":WAV:DATA?"), "");
        assert!(ask(&s, ":SYST:ERR?").starts_with("-200"));
        assert_eq!(ask(&s, ":SYST:ERR?"), "0,\"No error\"");
    }

    #[tokio::test(start_paused = true)]
    async fn a_single_acquisition_waits_triggers_and_stops() {
        let (s, plant) = scope("rigol-ds1000z");
        for c in [
            ":CHAN1:SCAL 0.5",
            ":TIM:MAIN:SCAL 1e-4",
            ":TIM:MAIN:OFFS 5e-4",
            ":TRIG:EDGE:SOUR CHAN1",
            ":TRIG:EDGE:SLOP POS",
            ":TRIG:EDGE:LEV 0.5",
            ":SING",
        ] {
            assert_eq!(ask(&s, c), "", "{c}");
        }
        assert_eq!(ask(&s, ":SYST:ERR?"), "0,\"No error\"");
        assert_eq!(ask(&s, ":TRIG:STAT?"), "WAIT");
        tokio::time::sleep(Duration::from_millis(1)).await;
        {
            let mut g = plant.lock();
            g.dsg_fet = true;
            g.load.input = true;
            g.load.current_set = 100.0;
        }
        assert_eq!(ask(&s, ":TRIG:STAT?"), "TD");
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert_eq!(ask(&s, ":TRIG:STAT?"), "STOP");
        ask(
            &s,
            ":WAV:SOUR CHAN1;:WAV:MODE RAW;:WAV:FORM BYTE;:WAV:POIN 1200",
        );
        let pre = crate::scpi::waveform::Preamble::parse(&ask(&s, ":WAV:PRE?")).unwrap();
        assert_eq!(pre.points, 1200);
        assert!((pre.time(0) + 1e-4).abs() < 1e-12, "{pre:?}");
        let data = handle_line(&*s.server.shared, ":WAV:DATA?").unwrap();
        let payload = crate::scpi::reply::parse_block(&data).unwrap();
        let v = pre
            .values(payload, crate::scpi::waveform::YScaling::Rigol)
            .unwrap();
        // 100 A through 10 mV/A, 20 mV per code: 1 V -> 50 codes above the reference.
        assert!(v[0].abs() < 1e-9, "{}", v[0]);
        assert!((v[1199] - 1.0).abs() < 1e-9, "{}", v[1199]);
    }

    #[tokio::test(start_paused = true)]
    async fn keysight_reports_the_trigger_event_once() {
        let (s, plant) = scope("keysight-infiniivision");
        ask(
            &s,
            ":CHAN1:SCAL 0.5;:TIM:SCAL 1e-4;:TIM:POS 0;:TRIG:EDGE:LEV 0.5;:SING",
        );
        assert_eq!(ask(&s, ":TER?"), "+0");
        {
            let mut g = plant.lock();
            g.dsg_fet = true;
            g.load.input = true;
            g.load.current_set = 100.0;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(ask(&s, ":TER?"), "+1");
        assert_eq!(ask(&s, ":TER?"), "+0");
        assert_eq!(ask(&s, ":SYST:ERR?"), "0,\"No error\"");
    }
}
