//! The live page of a run (`hilrig run --serve`) and the prompt step, through the binary on
//! the simulated bench in virtual time: the page, the event stream, STOP into the safe state,
//! the token off loopback, and prompts answered by default, refused, or answered on the page.
//! A prompt without defaults holds the run (and its virtual clock) while the test talks to it.

use crate::common::*;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A plan: one test in setup, then `steps` (YAML lines, indented by 2).
fn plan(dir: &Path, steps: &str) -> PathBuf {
    let fixture = root().join("fixtures/sim-bms-16s-lfp.yaml");
    let text = format!(
        "plan: live
title: Live page
dut: {}
limits: iec62619-bms
setup:
  - cells: {{all: 3.30 V}}
  - supply: {{voltage: 56.0 V, current: 5 A, output: on}}
  - wait_for: {{until: bms.state == charge, timeout: 5 s}}
  - trip:
      name: OV trip time cell 5
      protection: ov
      stimulus: {{step: {{of: cell 5, from: 3.60 V, to: 3.70 V}}}}
      detect: bms.chg_fet == open
      timeout: 10 s
      judge: [ov_trip_time]
  - cells: {{all: 3.30 V}}
steps:
{steps}
teardown:
  - supply: {{output: off}}
",
        fixture.display()
    );
    let p = dir.join("plan.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

const ASK_SERIAL: &str = "  - prompt:
      text: Scan the DUT's serial
      entries: [{name: dut_serial}, {name: harness, default: H1}]
  - wait: 1 s";

/// A run of the binary with the live page; stderr lines arrive on `stderr`.
struct Run {
    child: Child,
    stderr: mpsc::Receiver<String>,
    out: PathBuf,
}

impl Run {
    fn start(dir: &Path, plan: &Path, serve: Option<&str>) -> Run {
        let out = dir.join("out");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hilrig"));
        cmd.args(["run", plan.to_str().unwrap(), "--virtual-time", "--json"])
            .args(["--out", out.to_str().unwrap()])
            .env("HILRIG_LOCK_DIR", dir)
            .current_dir(root())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(addr) = serve {
            cmd.args(["--serve", addr]);
        }
        let mut child = cmd.spawn().unwrap();
        let err = child.stderr.take().unwrap();
        let (tx, stderr) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Run { child, stderr, out }
    }

    /// The first stderr line starting with `prefix`, without it.
    fn line(&self, prefix: &str) -> String {
        loop {
            let line = self
                .stderr
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|e| panic!("no `{prefix}` line on stderr: {e}"));
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.trim().to_string();
            }
        }
    }

    /// The page's address (host:port) from the URL printed at start.
    fn addr(&self) -> SocketAddr {
        let url = self.line("live page:");
        let host = url
            .strip_prefix("http://")
            .and_then(|u| u.split('/').next())
            .unwrap_or_else(|| panic!("not a URL: {url}"));
        host.parse().unwrap()
    }

    /// Wait for the end; the run's results.
    fn results(mut self) -> serde_json::Value {
        let status = self.child.wait().unwrap();
        let rest: Vec<String> = self.stderr.try_iter().collect();
        let r = read_json(&first_run_dir(&self.out).join("results.json"));
        assert!(status.code().is_some(), "{status:?} {rest:?}");
        r
    }
}

/// One HTTP/1.1 request; (status, body).
fn http(addr: SocketAddr, method: &str, path: &str, headers: &[&str], body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status: {text}"));
    let body = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    (status, body.to_string())
}

/// Read the event stream until an event of kind `until`; every event read (parsed).
fn events_until(addr: SocketAddr, path: &str, until: &str) -> Vec<serde_json::Value> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut seen = Vec::new();
    for line in BufReader::new(s).lines() {
        let line = line.expect("the event stream ended before the event");
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        let v: serde_json::Value = serde_json::from_str(data).unwrap();
        let done = v["event"] == until;
        seen.push(v);
        if done {
            return seen;
        }
    }
    panic!("the event stream ended without `{until}`: {seen:?}");
}

#[test]
fn stop_on_the_live_page_aborts_into_the_safe_state() {
    let dir = temp_dir("live-stop");
    let run = Run::start(&dir, &plan(&dir, ASK_SERIAL), Some("127.0.0.1:0"));
    let addr = run.addr();
    let (code, page) = http(addr, "GET", "/", &[], "");
    assert_eq!(code, 200);
    assert!(
        page.contains("<canvas") && page.contains("EventSource") && page.contains("SIMULATED"),
        "{page}"
    );
    assert!(
        !page.contains("src=\"http") && !page.contains("href=\"http"),
        "{page}"
    );
    let seen = events_until(addr, "/events", "test");
    // The page gets what --json prints from the first line on: the bench (simulated), the
    // signals' units and value names, then the firmware.
    assert_eq!(seen[0]["event"], "bench", "{seen:?}");
    assert_eq!(seen[0]["simulated"], true, "{seen:?}");
    assert_eq!(seen[1]["event"], "signal_labels", "{seen:?}");
    assert_eq!(
        seen[1]["signals"]["bms.chg_fet"]["names"]["1"], "closed",
        "{seen:?}"
    );
    assert_eq!(seen[1]["signals"]["supply.v"]["unit"], "V", "{seen:?}");
    assert_eq!(seen[2]["event"], "firmware", "{seen:?}");
    assert!(seen
        .iter()
        .any(|e| e["event"] == "plan" && e["plan"] == "live"));
    assert_eq!(seen.last().unwrap()["name"], "OV trip time cell 5");
    // The run waits at the prompt; STOP ends it.
    let (code, _) = http(addr, "POST", "/stop", &[], "");
    assert_eq!(code, 202);
    let r = run.results();
    assert_eq!(r["outcome"], "aborted", "{r}");
    assert_eq!(r["abort"]["stopped_by"], "STOP on the live page", "{r}");
    let cause = r["abort"]["cause"].as_str().unwrap();
    assert!(cause.starts_with("cancelled by the operator"), "{cause}");
    assert_eq!(r["safe_state_reached"], true, "{r}");
    // The server went with the run.
    assert!(TcpStream::connect(addr).is_err());
}

#[test]
fn a_late_subscriber_gets_the_events_so_far() {
    let dir = temp_dir("live-late");
    let run = Run::start(&dir, &plan(&dir, ASK_SERIAL), Some("127.0.0.1:0"));
    let addr = run.addr();
    let first = events_until(addr, "/events", "prompt");
    let again = events_until(addr, "/events", "prompt");
    assert_eq!(first, again);
    http(addr, "POST", "/stop", &[], "");
    run.results();
}

#[test]
fn a_non_loopback_address_needs_the_token() {
    let dir = temp_dir("live-token");
    let run = Run::start(&dir, &plan(&dir, ASK_SERIAL), Some("0.0.0.0:0"));
    let addr = run.addr();
    let token = run
        .line("live page token:")
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(token.len(), 32, "{token}");
    assert!(addr.ip().is_loopback(), "{addr}");
    assert_eq!(http(addr, "GET", "/", &[], "").0, 401);
    assert_eq!(http(addr, "GET", "/events", &[], "").0, 401);
    assert_eq!(
        http(addr, "POST", "/stop", &["Authorization: Bearer wrong"], "").0,
        401
    );
    assert_eq!(http(addr, "GET", "/?token=wrong", &[], "").0, 401);
    assert_eq!(
        http(addr, "GET", &format!("/?token={token}"), &[], "").0,
        200
    );
    events_until(addr, &format!("/events?token={token}"), "prompt");
    let bearer = format!("Authorization: Bearer {token}");
    assert_eq!(http(addr, "POST", "/stop", &[&bearer], "").0, 202);
    let r = run.results();
    assert_eq!(r["abort"]["stopped_by"], "STOP on the live page", "{r}");
    assert_eq!(r["safe_state_reached"], true, "{r}");
}

#[test]
fn a_prompt_is_answered_on_the_page() {
    let dir = temp_dir("live-prompt");
    let run = Run::start(&dir, &plan(&dir, ASK_SERIAL), Some("127.0.0.1:0"));
    let addr = run.addr();
    let seen = events_until(addr, "/events", "prompt");
    let p = seen.last().unwrap();
    assert_eq!(p["text"], "Scan the DUT's serial");
    assert_eq!(p["entries"][0], serde_json::json!(["dut_serial", null]));
    // The run's virtual clock waits with the prompt (it would race ahead if the paused
    // clock jumped to the next timer while the run idles).
    std::thread::sleep(Duration::from_millis(300));
    // A missing value without default is refused; the prompt still waits.
    let (code, body) = http(addr, "POST", "/prompt", &[], r#"{"answers": {}}"#);
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("dut_serial"), "{body}");
    let (code, body) = http(
        addr,
        "POST",
        "/prompt",
        &[],
        r#"{"answers": {"dut_serial": "SN-42"}}"#,
    );
    assert_eq!(code, 200, "{body}");
    let r = run.results();
    assert_eq!(r["outcome"], "passed", "{r}");
    let rec = &r["prompts"][0];
    assert_eq!(rec["answered_by"], "page", "{r}");
    assert_eq!(
        rec["answers"],
        serde_json::json!({"dut_serial": "SN-42", "harness": "H1"})
    );
    assert!(
        rec["step"].as_str().unwrap().starts_with("steps[0] prompt"),
        "{rec}"
    );
    // The serial scanned at the prompt names the item tested (no --dut-serial was given).
    assert_eq!(r["dut_serial"], "SN-42", "{r}");
    let source = r["dut_serial_source"].as_str().unwrap();
    assert!(
        source.contains("Scan the DUT's serial") && source.contains("page"),
        "{source}"
    );
    // Setup (about 7 s) and the 1 s wait: no time passed at the prompt.
    let took = r["duration_s"].as_f64().unwrap();
    assert!(took < 30.0, "virtual time ran on at the prompt: {took} s");
}

#[test]
fn the_dry_run_lists_a_prompt() {
    let dir = temp_dir("prompt-dry");
    let out = Command::new(env!("CARGO_BIN_EXE_hilrig"))
        .args(["run", plan(&dir, ASK_SERIAL).to_str().unwrap(), "--dry-run"])
        .current_dir(root())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(out.status.success(), "{text}");
    assert!(
        flat.contains("[0] prompt: ask the operator \"Scan the DUT's serial\": dut_serial (no default: needs an operator), harness (default `H1`)"),
        "{text}"
    );
}

#[test]
fn in_ci_a_prompt_takes_its_defaults() {
    let dir = temp_dir("prompt-default");
    let steps = "  - prompt:
      text: Check the harness
      entries: [{name: dut_serial, default: SN-0}, {name: harness}]
      default: H9";
    let r = Run::start(&dir, &plan(&dir, steps), None).results();
    assert_eq!(r["outcome"], "passed", "{r}");
    let rec = &r["prompts"][0];
    assert_eq!(rec["answered_by"], "default", "{r}");
    assert_eq!(
        rec["answers"],
        serde_json::json!({"dut_serial": "SN-0", "harness": "H9"})
    );
}

#[test]
fn in_ci_a_prompt_without_a_default_is_an_error_at_its_step() {
    let dir = temp_dir("prompt-refused");
    let r = Run::start(&dir, &plan(&dir, ASK_SERIAL), None).results();
    assert_eq!(r["outcome"], "aborted", "{r}");
    let during = r["abort"]["during"].as_str().unwrap();
    assert!(during.starts_with("steps[0] prompt"), "{during}");
    let cause = r["abort"]["cause"].as_str().unwrap();
    assert!(cause.contains("dut_serial has no default"), "{cause}");
    assert_eq!(r["safe_state_reached"], true, "{r}");
    assert!(r.get("prompts").is_none(), "{r}");
}
