//! A simulated bench in its own process (`hilrig sim serve`) reached through a rig file of
//! plain TCP and SLCAN endpoints, as a lab bench is: the run under test cannot take the
//! instruments down with it, so what they do after the run ends can be checked from their
//! side.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::root;

/// `hilrig sim serve`, stopped (SIGTERM) when dropped.
pub struct Server {
    child: Child,
    /// Endpoints by `KIND ID` (`instrument supply`, `bus bms`).
    pub endpoints: BTreeMap<String, String>,
    /// The server's standard output, held open for its life.
    _stdout: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: kill with the id of our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

impl Server {
    /// Start the simulated bench of rig/sim.yaml in its own process.
    pub fn start() -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hilrig"))
            .args(["sim", "serve"])
            .current_dir(root())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut endpoints = BTreeMap::new();
        // Every endpoint line, up to the last (`modbus …`); the pipe stays open after it.
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref() {
            let line = line.unwrap();
            let last = line.starts_with("modbus ");
            let parts: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(parts.len(), 3, "{line}");
            endpoints.insert(format!("{} {}", parts[0], parts[1]), parts[2].to_string());
            if last {
                break;
            }
        }
        Server {
            child,
            endpoints,
            _stdout: lines,
        }
    }

    /// `host:port` of an instrument.
    pub fn tcp(&self, id: &str) -> String {
        self.endpoints[&format!("instrument {id}")]
            .trim_start_matches("tcp://")
            .to_string()
    }

    /// A rig file in `dir` naming this server's endpoints (no `simulation:` section: to
    /// hilrig it is a lab bench). `station` should be unique to the test (bench lock).
    pub fn write_rig(&self, dir: &Path, station: &str) -> PathBuf {
        let pty = self.endpoints["bus bms"].trim_start_matches("slcan:");
        let dbc = root().join("fixtures/dbc/sim-bms.dbc");
        let text = format!(
            "station: {station}
instruments:
  - id: supply
    role: supply
    dialect: ea-psb
    address: {supply}
  - id: load
    role: load
    dialect: rigol-dl3000
    address: {load}
  - id: short
    role: short
    dialect: keysight-daq970a
    address: {short}
    short: {{channel: 101, resistance: 250 mOhm, max_closed: 50 ms}}
  - id: cells
    role: cell_sim
    bus: bms
    mapping:
      dbc: {dbc}
      voltage_message: CellSim_SetCell
      index_signal: CellIndex
      voltage_signal: Voltage
      accuracy: 1 mV
      update_period: 100 ms
      temperature:
        message: CellSim_SetTemp
        index_signal: SensorIndex
        value_signal: Temperature
        accuracy: 0.5 °C
buses:
  - id: bms
    backend: slcan
    interface: {pty}
    bitrate: 500000
    dut: true
envelope:
  max_pack_voltage: 60 V
  max_charge_current: 30 A
  max_discharge_current: 40 A
  cell_voltage_min: 2.0 V
  cell_voltage_max: 4.0 V
  temperature_min: -30 °C
  temperature_max: 80 °C
  max_short_current: 300 A
sample_period: 100 ms
",
            supply = self.endpoints["instrument supply"],
            load = self.endpoints["instrument load"],
            short = self.endpoints["instrument short"],
            dbc = dbc.display(),
        );
        let path = dir.join("rig.yaml");
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// A plan in `dir`: supply and load on, then a slow over-voltage trip (the BMS trips after
/// about 7 s of ramp), so a test can act while the trip runs.
pub fn write_trip_plan(dir: &Path) -> PathBuf {
    let text = format!(
        "plan: guard-trip
title: Supply and load on during a slow trip
dut: {fixture}
limits: {limits}
setup:
  - cells: {{all: 3.30 V}}
  - load: {{current: 1 A, input: on}}
  - supply: {{voltage: 56.0 V, current: 5 A, output: on}}
  - wait_for: {{until: bms.state == charge, timeout: 5 s}}
steps:
  - trip:
      name: OV cell 5
      protection: ov
      stimulus: {{ramp: {{of: cell 5, from: 3.50 V, to: 3.74 V, rate: 20 mV/s}}}}
      detect: bms.chg_fet == open
      timeout: 30 s
      judge: [ov_threshold, ov_trip_time, cell_never_above_upper_limit]
teardown:
  - load: {{input: off}}
  - supply: {{output: off}}
",
        fixture = root().join("fixtures/sim-bms-16s-lfp.yaml").display(),
        limits = root().join("fixtures/limits/iec62619-bms.yaml").display(),
    );
    let path = dir.join("plan.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// One SCPI query on a fresh connection (the instruments accept several at once).
pub fn query(addr: &str, q: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(format!("{q}\n").as_bytes()).unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    line.trim().to_string()
}

/// Whether the supply's output is on (EA PSB answers ON/OFF).
pub fn supply_on(server: &Server) -> bool {
    query(&server.tcp("supply"), "OUTP?") == "ON"
}

/// Whether the load's input is on (Rigol DL3000 answers 1/0).
pub fn load_on(server: &Server) -> bool {
    query(&server.tcp("load"), ":SOUR:INP:STAT?") == "1"
}

/// Start `hilrig run --json PLAN --rig RIG --out OUT` with its own lock directory.
pub fn spawn_run(plan: &Path, rig: &Path, out: &Path, lock_dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hilrig"));
    cmd.arg("run")
        .arg(plan)
        .arg("--rig")
        .arg(rig)
        .arg("--out")
        .arg(out)
        .arg("--json")
        .env("HILRIG_LOCK_DIR", lock_dir)
        .current_dir(root());
    cmd
}
