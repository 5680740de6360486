//! The out-of-process guard: a second hilrig process (`hilrig guard`) that holds a pipe to
//! the run and brings the bench to its safe state when the run dies without handing over.
//!
//! `hilrig run` starts the guard before anything is switched on and writes it one line of
//! JSON on its standard input: the run directory and the SCPI supplies and loads of the rig
//! and the short-circuit switch (id, role, address, dialect, timeout, the switch's channel). The guard answers `armed` and then waits on the
//! pipe. A run that ends cleanly (its own safe state confirmed) writes `release` and closes
//! the pipe; the guard then exits without touching anything. If the pipe closes without
//! `release` (SIGKILL, the OOM killer, an abort, a power-cut of the process), the guard
//! connects to each instrument itself, opens the short-circuit switch and switches every
//! load input and supply output off, confirms each by read-back (retrying until [`GUARD_DEADLINE`]), and records what it did
//! in `guard.json` in the run directory. `hilrig supply on --for` and `hilrig load on --for`
//! start one for their instrument in the same way (`guard.json` in a temporary directory);
//! the record's trigger names what was guarded: the run process, or the manual command
//! (``the manual command `hilrig supply on --for 600 s` ended without handing over``).
//!
//! The guard runs in its own process group and ignores SIGINT, SIGHUP and SIGPIPE, so a
//! Ctrl-C at the terminal reaches the run (which stops cleanly and releases the guard) but
//! not the guard. Instruments of a simulated rig served inside the run's own process end
//! with it, so `hilrig run` starts no guard for them (there is nothing left to switch off).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::instrument::{Load, ScpiLoad, ScpiSupply, ScpiSwitch, Supply, Switch};
use crate::report::SafeStateAction;
use crate::rig::{InstrumentConfig, Rig, Role};

/// How long the guard keeps trying to confirm the safe state before it gives up.
pub const GUARD_DEADLINE: Duration = Duration::from_secs(4);

/// The line a run writes for a clean hand-over.
const RELEASE: &str = "release";
/// The line the guard answers once it is watching.
const ARMED: &str = "armed";

/// How the guard names a run it watches.
pub const RUN_PROCESS: &str = "the run process";

fn run_process() -> String {
    RUN_PROCESS.into()
}

/// Errors of starting or talking to the guard.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// The guard process could not be started or did not answer.
    #[error("cannot start the safe-state guard process: {0}")]
    Start(#[source] std::io::Error),
    /// The guard did not confirm that it is watching.
    #[error("the safe-state guard process did not confirm that it is watching (it said {0:?})")]
    NotArmed(String),
}

/// One instrument the guard switches off.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GuardedInstrument {
    /// Instrument id from the rig file.
    pub id: String,
    /// `supply`, `load` or `short`.
    pub role: Role,
    /// Its address (`tcp://...`, `serial://...`).
    pub address: String,
    /// Its dialect id.
    pub dialect: String,
    /// Query timeout in seconds.
    pub timeout_s: f64,
    /// The short-circuit switch's channel.
    #[serde(default)]
    pub channel: Option<u32>,
}

/// What the guard is told at start.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GuardSpec {
    /// Where `guard.json` goes (the run directory).
    pub dir: PathBuf,
    /// The guarded process's id (recorded in `guard.json`).
    pub run_pid: u32,
    /// The guarded process in words, for `guard.json`'s trigger: [`RUN_PROCESS`], or the
    /// manual command (``the manual command `hilrig supply on --for 30 s` ``).
    #[serde(default = "run_process")]
    pub guarded: String,
    /// The short-circuit switch, loads, then supplies.
    pub instruments: Vec<GuardedInstrument>,
}

impl GuardedInstrument {
    /// A SCPI supply, load or short-circuit switch of a rig file; `None` for anything else.
    pub fn of(i: &InstrumentConfig) -> Option<GuardedInstrument> {
        matches!(i.role, Role::Supply | Role::Load | Role::Short).then_some(())?;
        Some(GuardedInstrument {
            id: i.id.clone(),
            role: i.role,
            address: i.address.clone()?,
            dialect: i.dialect.clone()?,
            timeout_s: i.timeout.0,
            channel: i.short.map(|s| s.channel),
        })
    }

    /// The order the safe state acts in: the short-circuit switch, loads, supplies.
    fn order(&self) -> u8 {
        match self.role {
            Role::Short => 0,
            Role::Load => 1,
            _ => 2,
        }
    }
}

impl GuardSpec {
    /// The SCPI supplies, loads and short-circuit switch of `rig`: the switch first, then
    /// loads (input off before output off).
    pub fn of_rig(rig: &Rig, dir: &Path) -> GuardSpec {
        let mut instruments: Vec<GuardedInstrument> = rig
            .instruments
            .iter()
            .filter_map(GuardedInstrument::of)
            .collect();
        instruments.sort_by_key(GuardedInstrument::order);
        GuardSpec {
            dir: dir.to_path_buf(),
            run_pid: std::process::id(),
            guarded: run_process(),
            instruments,
        }
    }

    /// One SCPI supply or load switched on by the manual `command` (as typed, without
    /// `hilrig`: `supply on --for 30 s`); `None` for anything else.
    pub fn of_instrument(inst: &InstrumentConfig, dir: &Path, command: &str) -> Option<GuardSpec> {
        Some(GuardSpec {
            dir: dir.to_path_buf(),
            run_pid: std::process::id(),
            guarded: format!("the manual command `hilrig {command}`"),
            instruments: vec![GuardedInstrument::of(inst)?],
        })
    }

    /// Why the guard acts when the pipe closed without a hand-over (`guard.json`'s trigger).
    pub fn trigger(&self) -> String {
        format!(
            "{} ended without handing over (its pipe to the guard closed)",
            self.guarded
        )
    }
}

/// What the guard did, as written to `guard.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GuardRecord {
    /// Why the guard acted.
    pub trigger: String,
    /// The guarded process's id.
    pub run_pid: u32,
    /// When the guard noticed (RFC 3339).
    pub noticed_at: String,
    /// Each action, with whether the read-back confirmed it.
    pub actions: Vec<SafeStateAction>,
    /// Whether every action was confirmed.
    pub safe_state_reached: bool,
}

/// A running guard, owned by the run.
pub struct Guard {
    child: Child,
    pipe: Option<ChildStdin>,
}

impl Guard {
    /// Start `hilrig guard` (this executable) for `spec` and wait until it is watching.
    pub fn start(spec: &GuardSpec) -> Result<Guard, GuardError> {
        let exe = std::env::current_exe().map_err(GuardError::Start)?;
        Self::start_with(&exe, spec)
    }

    /// Start the guard from the hilrig executable `exe`.
    pub fn start_with(exe: &Path, spec: &GuardSpec) -> Result<Guard, GuardError> {
        let mut cmd = Command::new(exe);
        cmd.arg("guard")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            // Its own process group: a Ctrl-C at the terminal is for the run, not the guard.
            cmd.process_group(0);
        }
        let mut child = cmd.spawn().map_err(GuardError::Start)?;
        let mut pipe = child.stdin.take();
        let stdout = child.stdout.take();
        let line = serde_json::to_string(spec).map_err(|e| GuardError::Start(e.into()))?;
        let sent = pipe
            .as_mut()
            .map(|p| writeln!(p, "{line}").and_then(|_| p.flush()))
            .unwrap_or_else(|| Err(std::io::Error::other("no pipe to the guard")));
        if let Err(e) = sent {
            let _ = child.kill();
            let _ = child.wait();
            return Err(GuardError::Start(e));
        }
        let mut answer = String::new();
        if let Some(out) = stdout {
            let _ = BufReader::new(out).read_line(&mut answer);
        }
        if answer.trim() != ARMED {
            let _ = child.kill();
            let _ = child.wait();
            return Err(GuardError::NotArmed(answer.trim().to_string()));
        }
        Ok(Guard { child, pipe })
    }

    /// Hand over cleanly: the run brought the bench to its safe state itself.
    pub fn release(mut self) {
        if let Some(mut p) = self.pipe.take() {
            let _ = writeln!(p, "{RELEASE}").and_then(|_| p.flush());
        }
        let _ = self.child.wait();
    }

    /// Leave it to the guard: close the pipe without a hand-over, so that the guard drives
    /// the safe state itself (used when the run could not confirm it); returns at once.
    pub fn hand_over_unconfirmed(mut self) {
        self.pipe.take();
    }
}

/// `hilrig guard`: read the spec, answer `armed`, wait for the hand-over or the end of the
/// pipe, and act on the latter. Returns the exit code (0 released or safe, 2 not confirmed).
pub async fn serve() -> i32 {
    ignore_terminal_signals();
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let spec: GuardSpec = match lines.next() {
        Some(Ok(l)) => match serde_json::from_str(&l) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("hilrig guard: the first line is not a guard specification: {e}");
                return 2;
            }
        },
        _ => return 2,
    };
    {
        let mut out = std::io::stdout();
        if writeln!(out, "{ARMED}").and_then(|_| out.flush()).is_err() {
            // Nobody is listening: the run never started.
            return 2;
        }
    }
    // Wait on the pipe (a blocking read in this process is fine: it does nothing else).
    let released = loop {
        match lines.next() {
            Some(Ok(l)) if l.trim() == RELEASE => break true,
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => break false,
        }
    };
    drop(lines);
    if released {
        return 0;
    }
    let noticed_at = crate::trace::rfc3339(std::time::SystemTime::now());
    let actions = drive_safe_state(&spec.instruments, GUARD_DEADLINE).await;
    let record = GuardRecord {
        trigger: spec.trigger(),
        run_pid: spec.run_pid,
        noticed_at,
        safe_state_reached: actions.iter().all(|a| a.ok),
        actions,
    };
    let reached = record.safe_state_reached;
    let _ = std::fs::create_dir_all(&spec.dir);
    if let Ok(text) = serde_json::to_string_pretty(&record) {
        let _ =
            crate::durable::write_atomic(&spec.dir.join("guard.json"), (text + "\n").as_bytes());
    }
    if reached {
        0
    } else {
        2
    }
}

#[cfg(unix)]
fn ignore_terminal_signals() {
    // SAFETY: setting the disposition of signals to SIG_IGN has no preconditions.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

#[cfg(not(unix))]
fn ignore_terminal_signals() {}

/// Switch every instrument off (the short-circuit switch open) and confirm it by read-back,
/// retrying each until `deadline` has passed since the start; in the order of
/// `instruments` (the switch, loads, supplies).
pub async fn drive_safe_state(
    instruments: &[GuardedInstrument],
    deadline: Duration,
) -> Vec<SafeStateAction> {
    let until = tokio::time::Instant::now() + deadline;
    let mut out = Vec::new();
    for inst in instruments {
        let what = match inst.role {
            Role::Short => "short-circuit switch open (confirmed by read-back)",
            Role::Load => "input off (confirmed by read-back)",
            _ => "output off (confirmed by read-back)",
        };
        let mut last: Result<(), String>;
        loop {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            last =
                match tokio::time::timeout(left.max(Duration::from_millis(500)), switch_off(inst))
                    .await
                {
                    Ok(r) => r,
                    Err(_) => Err("no confirmation before the guard's deadline".into()),
                };
            if last.is_ok() || tokio::time::Instant::now() >= until {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        out.push(SafeStateAction {
            instrument: inst.id.clone(),
            action: what.into(),
            ok: last.is_ok(),
            confirmed: last.is_ok(),
            error: last.err(),
        });
    }
    out
}

async fn switch_off(inst: &GuardedInstrument) -> Result<(), String> {
    let timeout = Duration::from_secs_f64(inst.timeout_s.clamp(0.1, 60.0));
    let e = |e: crate::instrument::InstrumentError| e.to_string();
    if inst.role == Role::Short {
        let dialect = crate::scpi::builtin_switch_dialect(&inst.dialect)
            .ok_or_else(|| format!("unknown switch dialect `{}`", inst.dialect))?;
        let channel = inst
            .channel
            .ok_or_else(|| "the short-circuit switch has no channel".to_string())?;
        let mut s = ScpiSwitch::connect(&inst.id, &inst.address, dialect, channel, timeout)
            .await
            .map_err(e)?;
        return s.open().await.map_err(e);
    }
    let dialect = crate::scpi::builtin_dialect(&inst.dialect)
        .ok_or_else(|| format!("unknown dialect `{}`", inst.dialect))?;
    match inst.role {
        Role::Load => {
            let mut l = ScpiLoad::connect(&inst.id, &inst.address, dialect, timeout)
                .await
                .map_err(e)?;
            l.set_input(false).await.map_err(e)?;
            match l.input().await.map_err(e)? {
                false => Ok(()),
                true => Err("input still on after switching it off".into()),
            }
        }
        _ => {
            let mut s = ScpiSupply::connect(&inst.id, &inst.address, dialect, timeout)
                .await
                .map_err(e)?;
            s.set_output(false).await.map_err(e)?;
            match s.output().await.map_err(e)? {
                false => Ok(()),
                true => Err("output still on after switching it off".into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_round_trips_and_lists_the_short_then_loads_first() {
        let rig: Rig = serde_saphyr::from_str(
            "station: s\ninstruments:\n  - {id: psu, role: supply, dialect: ea-psb, address: 'tcp://127.0.0.1:1'}\n  - {id: el, role: load, dialect: rigol-dl3000, address: 'tcp://127.0.0.1:2'}\n  - {id: sc, role: short, dialect: keysight-daq970a, address: 'tcp://127.0.0.1:3', short: {channel: 101, resistance: 250 mOhm, max_closed: 50 ms}}\n  - {id: scope, role: scope, dialect: rigol-ds1000z, address: 'tcp://127.0.0.1:4', capture: {volts_per_amp: 0.01}}\nbuses: []\nenvelope: {max_pack_voltage: 60 V, max_charge_current: 30 A, max_discharge_current: 40 A, cell_voltage_min: 2 V, cell_voltage_max: 4 V, temperature_min: -30 °C, temperature_max: 80 °C}\nsample_period: 100 ms\n",
        )
        .unwrap();
        let spec = GuardSpec::of_rig(&rig, Path::new("/tmp/x"));
        let order: Vec<&str> = spec.instruments.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(order, ["sc", "el", "psu"]);
        assert_eq!(spec.instruments[0].channel, Some(101));
        let text = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<GuardSpec>(&text).unwrap(), spec);
    }

    /// guard.json's trigger names what was guarded: the run, or the manual command.
    #[rstest::rstest]
    #[case::a_run(
        None,
        "the run process ended without handing over (its pipe to the guard closed)"
    )]
    #[case::a_timed_supply_on(
        Some("supply on --for 30 s"),
        "the manual command `hilrig supply on --for 30 s` ended without handing over (its pipe \
         to the guard closed)"
    )]
    #[case::a_timed_load_on(
        Some("load on --for 600 s"),
        "the manual command `hilrig load on --for 600 s` ended without handing over (its pipe \
         to the guard closed)"
    )]
    fn the_trigger_names_the_guarded_process(#[case] command: Option<&str>, #[case] want: &str) {
        let rig: Rig = serde_saphyr::from_str(
            "station: s\ninstruments:\n  - {id: psu, role: supply, dialect: ea-psb, address: 'tcp://127.0.0.1:1'}\nbuses: []\nenvelope: {max_pack_voltage: 60 V, max_charge_current: 30 A, max_discharge_current: 40 A, cell_voltage_min: 2 V, cell_voltage_max: 4 V, temperature_min: -30 °C, temperature_max: 80 °C}\nsample_period: 100 ms\n",
        )
        .unwrap();
        let dir = Path::new("/tmp/x");
        let spec = match command {
            None => GuardSpec::of_rig(&rig, dir),
            Some(c) => GuardSpec::of_instrument(&rig.instruments[0], dir, c).unwrap(),
        };
        assert_eq!(spec.trigger(), want);
        // The guard reads it back from the pipe.
        let text = serde_json::to_string(&spec).unwrap();
        let read: GuardSpec = serde_json::from_str(&text).unwrap();
        assert_eq!(read.trigger(), want);
    }

    #[test]
    fn a_spec_without_the_guarded_process_is_a_run() {
        let spec: GuardSpec =
            serde_json::from_str(r#"{"dir": "/tmp/x", "run_pid": 1, "instruments": []}"#).unwrap();
        assert_eq!(spec.guarded, RUN_PROCESS);
    }

    /// A short-circuit switch left closed is opened by the guard, confirmed by read-back,
    /// before anything else.
    #[tokio::test]
    async fn the_guard_opens_a_closed_short_circuit_switch() {
        let plant = crate::sim::plant::Plant::new(16, 3.3, 4, 25.0);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sim = crate::sim::scpi_server::SimSwitch::serve(listener, plant.clone(), 101).await;
        {
            let mut g = plant.lock();
            g.dsg_fet = true;
            g.short.closed = true;
        }
        let mut client = crate::instrument::ScpiSwitch::connect(
            "short",
            &sim.address(),
            crate::scpi::builtin_switch_dialect("keysight-daq970a").unwrap(),
            101,
            Duration::from_secs(1),
        )
        .await
        .unwrap();
        client.close().await.unwrap();
        assert!(sim.is_closed(101));
        let inst = GuardedInstrument {
            id: "short".into(),
            role: Role::Short,
            address: sim.address(),
            dialect: "keysight-daq970a".into(),
            timeout_s: 1.0,
            channel: Some(101),
        };
        let actions = drive_safe_state(&[inst], Duration::from_secs(2)).await;
        assert_eq!(actions.len(), 1);
        assert!(actions[0].ok && actions[0].confirmed, "{actions:?}");
        assert_eq!(
            actions[0].action,
            "short-circuit switch open (confirmed by read-back)"
        );
        assert!(!sim.is_closed(101));
        assert!(!plant.lock().short.closed);
        sim.shutdown();
    }

    #[tokio::test]
    async fn an_unreachable_instrument_is_recorded_as_not_confirmed() {
        let inst = GuardedInstrument {
            id: "psu".into(),
            role: Role::Supply,
            address: "tcp://127.0.0.1:1".into(),
            dialect: "ea-psb".into(),
            timeout_s: 0.2,
            channel: None,
        };
        let actions = drive_safe_state(&[inst], Duration::from_millis(300)).await;
        assert_eq!(actions.len(), 1);
        assert!(!actions[0].ok);
        assert!(actions[0].error.is_some());
    }
}
