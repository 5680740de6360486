//! The serial transport over pseudo-terminals: simulated instruments served on the master
//! end, hilrig's client opening the slave end as `serial:///dev/pts/N`.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use hilrig::instrument::{CellFault, Load, ScpiCellSim, ScpiLoad, ScpiSupply, Supply};
use hilrig::scpi::{builtin_dialect, connect, Client, ClientOptions, ScpiError};
use hilrig::sim::plant::Plant;
use hilrig::sim::scpi_server::{serve_in_memory, SimInstrument};
use rstest::rstest;

const TIMEOUT: Duration = Duration::from_secs(2);

fn simulated(id: &str) -> SimInstrument {
    serve_in_memory(builtin_dialect(id).unwrap(), Plant::new(16, 3.3, 4, 25.0))
}

#[rstest]
#[case::ea_psb("ea-psb")]
#[case::keysight_e36300("keysight-e36300")]
#[case::rigol_dp800("rigol-dp800")]
#[case::rs_hmp4040("rs-hmp4040")]
#[tokio::test]
async fn a_supply_answers_on_its_serial_port(#[case] id: &str) {
    let sim = simulated(id);
    let port = sim.serve_serial().unwrap();
    let dialect = sim.dialect().clone();
    let mut psu = ScpiSupply::connect("psu", &port.address(), dialect.clone(), TIMEOUT)
        .await
        .unwrap();
    assert!(psu.verify_identity().await.is_ok());
    psu.set_voltage(3.5).await.unwrap();
    psu.set_current(0.5).await.unwrap();
    psu.set_output(true).await.unwrap();
    assert!(psu.output().await.unwrap());
    let state = sim.plant().snapshot().supply;
    assert_eq!((state.voltage_set, state.current_set), (3.5, 0.5));
    let m = psu.measure().await.unwrap();
    assert!(m.voltage > 0.0, "{m:?}");
    psu.set_output(false).await.unwrap();
    assert!(!sim.plant().snapshot().supply.output);
}

#[tokio::test]
async fn a_load_with_cr_lf_on_its_serial_line_is_understood() {
    let sim = simulated("chroma-63600");
    sim.plant().lock().dsg_fet = true;
    let port = sim.serve_serial().unwrap();
    let mut load = ScpiLoad::connect(
        "load",
        &format!("{}?baud=9600", port.address()),
        sim.dialect().clone(),
        TIMEOUT,
    )
    .await
    .unwrap();
    load.set_current(2.0).await.unwrap();
    load.set_input(true).await.unwrap();
    assert!(load.input().await.unwrap());
    assert_eq!(load.measure().await.unwrap().current, 2.0);
    assert_eq!(sim.plant().snapshot().load.current_set, 2.0);
}

#[tokio::test]
async fn a_cell_simulator_on_a_serial_port() {
    let sim = simulated("bloomy-abs");
    let port = sim.serve_serial().unwrap();
    let mut cells = ScpiCellSim::connect("cells", &port.address(), sim.dialect().clone(), TIMEOUT)
        .await
        .unwrap();
    cells.set_voltage(3, 3.65).await.unwrap();
    cells.set_output(3, true).await.unwrap();
    assert_eq!(sim.plant().snapshot().cell_voltage(2), Some(3.65));
    cells.set_fault(3, CellFault::Short).await.unwrap();
    assert_eq!(sim.plant().snapshot().cell_voltage(2), Some(0.0));
}

/// A pseudo-terminal opened by the test itself, to see the raw bytes on the line.
struct RawPty {
    master: std::fs::File,
    path: String,
    _slave: OwnedFd,
}

fn raw_pty() -> RawPty {
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty fills in two descriptors; the other pointers may be null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty failed");
    // SAFETY: both descriptors were just opened and are owned here alone.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    // SAFETY: termios is plain data filled in by tcgetattr before use.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        assert_eq!(libc::tcgetattr(slave.as_raw_fd(), &mut t), 0);
        libc::cfmakeraw(&mut t);
        assert_eq!(libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &t), 0);
    }
    let mut name = vec![0u8; 256];
    // SAFETY: the buffer is writable for its whole length.
    let rc = unsafe { libc::ttyname_r(slave.as_raw_fd(), name.as_mut_ptr().cast(), name.len()) };
    assert_eq!(rc, 0);
    let end = name.iter().position(|&b| b == 0).unwrap();
    RawPty {
        master: std::fs::File::from(master),
        path: String::from_utf8(name[..end].to_vec()).unwrap(),
        _slave: slave,
    }
}

#[rstest]
#[case::lf_by_default("rigol-dp800", "\n")]
#[case::cr_lf_where_the_dialect_says_so("chroma-63600", "\r\n")]
#[tokio::test]
async fn the_dialects_serial_terminator_goes_on_the_wire(
    #[case] id: &str,
    #[case] terminator: &'static str,
) {
    let pty = raw_pty();
    let mut master = pty.master.try_clone().unwrap();
    let dialect = builtin_dialect(id).unwrap();
    let idn = format!("{},{},1,1{terminator}", dialect.maker[0], dialect.model[0]);
    // A fake instrument that records what arrives, answers the identity query as the
    // dialect's model and the first error query with `0,"No error"`, in the same terminator.
    let fake = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 256];
        let mut identified = false;
        while !seen.ends_with(b"SYST:ERR?\r\n") && !seen.ends_with(b"SYST:ERR?\n") {
            let n = master.read(&mut buf).unwrap();
            seen.extend_from_slice(&buf[..n]);
            if !identified && seen.ends_with(format!("*IDN?{terminator}").as_bytes()) {
                master.write_all(idn.as_bytes()).unwrap();
                identified = true;
            }
        }
        master
            .write_all(format!("0,\"No error\"{terminator}").as_bytes())
            .unwrap();
        seen
    });
    let address = format!("serial://{}", pty.path);
    let load_or_supply = match dialect.role {
        hilrig::scpi::Role::Supply => ScpiSupply::connect("x", &address, dialect, TIMEOUT)
            .await
            .map(|_| ()),
        _ => ScpiLoad::connect("x", &address, dialect, TIMEOUT)
            .await
            .map(|_| ()),
    };
    load_or_supply.unwrap();
    let seen = tokio::task::spawn_blocking(move || fake.join().unwrap())
        .await
        .unwrap();
    let expected = format!("*IDN?{terminator}*CLS{terminator}");
    assert!(
        seen.starts_with(expected.as_bytes()),
        "{:?}",
        String::from_utf8_lossy(&seen)
    );
}

#[tokio::test]
async fn a_vanished_port_is_a_typed_error_not_a_hang() {
    let pty = raw_pty();
    let mut client = Client::new(
        connect(&format!("serial://{}", pty.path), TIMEOUT)
            .await
            .unwrap(),
        ClientOptions {
            timeout: Duration::from_millis(500),
            ..Default::default()
        },
    );
    drop(pty);
    let error = client.query("*IDN?").await.unwrap_err();
    assert!(
        matches!(
            error,
            ScpiError::Disconnected { .. } | ScpiError::Io { .. } | ScpiError::Timeout { .. }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn silence_on_a_serial_port_is_a_timeout() {
    let pty = raw_pty();
    let mut client = Client::new(
        connect(&format!("serial://{}?baud=115200", pty.path), TIMEOUT)
            .await
            .unwrap(),
        ClientOptions {
            timeout: Duration::from_millis(300),
            ..Default::default()
        },
    );
    let error = client.query("MEAS:VOLT?").await.unwrap_err();
    assert!(matches!(error, ScpiError::Timeout { .. }), "{error:?}");
    drop(pty);
}

#[tokio::test]
async fn a_missing_device_names_the_port() {
    let error = connect("serial:///dev/hilrig-no-such-tty", TIMEOUT)
        .await
        .err()
        .unwrap();
    assert!(matches!(error, ScpiError::Connect { .. }), "{error}");
    assert!(
        error.to_string().contains("/dev/hilrig-no-such-tty"),
        "{error}"
    );
}

#[tokio::test]
async fn a_client_sending_cr_lf_reads_replies_ending_in_lf_only() {
    // Some instruments want CR LF on commands but answer with LF alone.
    let pty = raw_pty();
    let mut master = pty.master.try_clone().unwrap();
    let fake = std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        let mut seen = Vec::new();
        while !seen.ends_with(b"\r\n") {
            let n = master.read(&mut buf).unwrap();
            seen.extend_from_slice(&buf[..n]);
        }
        master.write_all(b"+1.250000E+01\n").unwrap();
        seen
    });
    let mut client = Client::new(
        connect(&format!("serial://{}", pty.path), TIMEOUT)
            .await
            .unwrap(),
        ClientOptions {
            timeout: TIMEOUT,
            terminator: "\r\n".into(),
            ..Default::default()
        },
    );
    assert_eq!(client.query("MEAS:VOLT?").await.unwrap(), "+1.250000E+01");
    let seen = tokio::task::spawn_blocking(move || fake.join().unwrap())
        .await
        .unwrap();
    assert_eq!(seen, b"MEAS:VOLT?\r\n");
}
