//! Modbus: hilrig's client reads the simulated BMS's inverter-facing register map over
//! Modbus TCP and gets what the firmware announces; exceptions come back in words, a silent
//! peer times out; `hilrig modbus read` prints the map; and (opt-in: HILRIG_PEER_TESTS=1)
//! pymodbus, as an independent client, reads the same values.

use crate::can_common::peers_enabled;
use crate::common::*;

use std::io::Write;
use std::time::Duration;

use hilrig::modbus::{Client, Function, ModbusError, RegisterMap, ValueType, WordOrder};
use hilrig::sim::modbus_server::announced_value;
use hilrig::sim::Bench;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn map() -> RegisterMap {
    RegisterMap::load(&root().join("fixtures/modbus/sim-bms-inverter.yaml")).unwrap()
}

/// A simulated bench over TCP whose firmware has announced at least once.
async fn bench() -> Bench {
    let rig = sim_rig(None);
    let bench = Bench::start(&rig, &root().join("rig/sim.yaml"))
        .await
        .unwrap();
    for _ in 0..200 {
        if bench.inverter_board().latest().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(bench.inverter_board().latest().is_some(), "no announcement");
    bench
}

#[test]
fn the_client_reads_what_the_simulated_bms_announces() {
    runtime().block_on(async {
        let bench = bench().await;
        let endpoint = bench
            .modbus_address()
            .expect("a Modbus endpoint")
            .to_string();
        let map = map();
        let mut client = Client::connect(&endpoint, map.unit, Duration::from_secs(2))
            .await
            .unwrap();
        // The idle bench's announcement is steady; read until two reads agree with it.
        let mut last = Vec::new();
        for _ in 0..5 {
            let values = client.read_map(&map).await.unwrap();
            let (a, soc) = bench.inverter_board().latest().unwrap();
            let want: Vec<(String, f64)> = values
                .iter()
                .map(|(n, _, _)| (n.clone(), announced_value(n, &a, soc).unwrap()))
                .collect();
            let got: Vec<(String, f64)> = values.iter().map(|(n, v, _)| (n.clone(), *v)).collect();
            let agree = want
                .iter()
                .zip(&got)
                .all(|(w, g)| w.0 == g.0 && (w.1 - g.1).abs() < 1e-6);
            if agree {
                assert_eq!(got.len(), map.registers.len());
                assert!(got
                    .iter()
                    .any(|(n, v)| n == "inv.cvl" && (*v - 56.8).abs() < 1e-9));
                return;
            }
            last = vec![want, got];
        }
        panic!("Modbus values never matched the announcement: {last:?}");
    });
}

#[test]
fn exceptions_are_reported_in_words_and_a_silent_peer_times_out() {
    runtime().block_on(async {
        let bench = bench().await;
        let endpoint = bench.modbus_address().unwrap().to_string();
        let mut client = Client::connect(&endpoint, 1, Duration::from_secs(2))
            .await
            .unwrap();
        let e = client
            .read_raw(Function::Input, 0x7000, 1)
            .await
            .unwrap_err();
        assert!(
            matches!(e, ModbusError::Exception { code: 0x02, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("illegal data address"), "{e}");
        let mut other = Client::connect(&endpoint, 7, Duration::from_secs(2))
            .await
            .unwrap();
        let e = other
            .read_raw(Function::Input, 0x0100, 1)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("gateway target"), "{e}");

        // A peer that accepts the connection and never answers.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = silent.local_addr().unwrap().port();
        let keep = tokio::spawn(async move {
            let (_s, _) = silent.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        let mut client = Client::connect(
            &format!("tcp://127.0.0.1:{port}"),
            1,
            Duration::from_millis(300),
        )
        .await
        .unwrap();
        let e = client.read_raw(Function::Holding, 0, 1).await.unwrap_err();
        assert!(matches!(e, ModbusError::Timeout { .. }), "{e}");
        assert!(e.to_string().contains("within 300 ms"), "{e}");
        keep.abort();
    });
}

/// `hilrig modbus read` prints the simulated BMS's map (the binary against the in-process
/// bench).
#[test]
fn the_cli_reads_the_map() {
    let rt = runtime();
    let bench = rt.block_on(bench());
    let endpoint = bench.modbus_address().unwrap().to_string();
    let (code, stdout, stderr) = hilrig(&[
        "modbus",
        "read",
        &endpoint,
        "--map",
        "fixtures/modbus/sim-bms-inverter.yaml",
        "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["inv.cvl"].as_f64(), Some(56.8), "{stdout}");
    assert_eq!(doc["inv.dvl"].as_f64(), Some(48.0), "{stdout}");
    let (code, _, stderr) = hilrig(&[
        "modbus",
        "read",
        "tcp://127.0.0.1:1",
        "--map",
        "fixtures/modbus/sim-bms-inverter.yaml",
        "--timeout",
        "500 ms",
    ]);
    assert_eq!(code, 2);
    assert!(stderr.contains("tcp://127.0.0.1:1"), "{stderr}");
    drop(bench);
}

#[test]
fn pymodbus_reads_the_values_hilrig_reports() {
    if !peers_enabled("pymodbus_reads_the_values_hilrig_reports") {
        return;
    }
    let rt = runtime();
    let bench = rt.block_on(bench());
    let endpoint = bench.modbus_address().unwrap().to_string();
    let port = endpoint.rsplit(':').next().unwrap().to_string();
    let map = map();
    let regs: Vec<serde_json::Value> = map
        .registers
        .iter()
        .map(|(n, r)| {
            serde_json::json!({
                "name": n,
                "function": match r.function {
                    Function::Coil => "coil",
                    Function::DiscreteInput => "discrete_input",
                    Function::Holding => "holding",
                    Function::Input => "input",
                },
                "address": r.address,
                "type": match r.value_type {
                    ValueType::Bool => "bool",
                    ValueType::U16 => "u16",
                    ValueType::I16 => "i16",
                    ValueType::U32 => "u32",
                    ValueType::I32 => "i32",
                },
                "scale": r.scale,
                "offset": r.offset,
                "word_order": match map.word_order(r) {
                    WordOrder::Big => "big",
                    WordOrder::Little => "little",
                },
            })
        })
        .collect();
    let ours = rt.block_on(async {
        let mut c = Client::connect(&endpoint, map.unit, Duration::from_secs(2))
            .await
            .unwrap();
        c.read_map(&map).await.unwrap()
    });
    let out = python(
        &[
            "tests/peers/pymodbus_read.py",
            "127.0.0.1",
            &port,
            &map.unit.to_string(),
        ],
        Some(&serde_json::Value::Array(regs).to_string()),
    );
    let theirs: serde_json::Value = serde_json::from_str(&out).unwrap();
    for (name, v, _) in &ours {
        let t = theirs[name.as_str()]
            .as_f64()
            .unwrap_or_else(|| panic!("pymodbus gave no {name}"));
        assert!((t - v).abs() < 1e-6, "{name}: pymodbus {t}, hilrig {v}");
    }
    drop(bench);
}

/// CRC-16/MODBUS of `data` (sent low byte first).
fn crc16(data: &[u8]) -> u16 {
    let mut crc = 0xFFFFu16;
    for b in data {
        crc ^= *b as u16;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// Modbus RTU over a serial line (a pseudo-terminal): the client's request frame is what
/// the RTU framing prescribes (unit, function, address, count, CRC), a hand-built answer
/// decodes to the register's value, and an exception answer comes back in words.
#[test]
fn the_rtu_client_speaks_rtu_framing_on_a_serial_line() {
    use std::io::Read;
    let mut pty = crate::can_common::Pty::open();
    let mut master = pty.master.try_clone().unwrap();
    let endpoint = format!("serial://{}?baud=9600", pty.slave_path);
    let peer = std::thread::spawn(move || {
        let mut requests = Vec::new();
        for answer_exception in [false, true] {
            let mut req = [0u8; 8];
            master.read_exact(&mut req).unwrap();
            requests.push(req.to_vec());
            let mut reply = if answer_exception {
                vec![0x11, 0x84, 0x02]
            } else {
                // Input register 0x0100 = 568 (CVL 56.8 V at 0.1 V).
                vec![0x11, 0x04, 0x02, 0x02, 0x38]
            };
            let crc = crc16(&reply);
            reply.extend([crc as u8, (crc >> 8) as u8]);
            master.write_all(&reply).unwrap();
        }
        requests
    });
    let map = map();
    let (value, err) = runtime().block_on(async {
        let mut c = Client::connect(&endpoint, 0x11, Duration::from_secs(2))
            .await
            .unwrap();
        let v = c.read(&map, &map.registers["inv.cvl"]).await.unwrap();
        let e = c.read_raw(Function::Input, 0x7000, 1).await.unwrap_err();
        (v, e)
    });
    pty.release_slave();
    let requests = peer.join().unwrap();
    let mut want = vec![0x11, 0x04, 0x01, 0x00, 0x00, 0x01];
    let crc = crc16(&want);
    want.extend([crc as u8, (crc >> 8) as u8]);
    assert_eq!(requests[0], want);
    assert!((value - 56.8).abs() < 1e-9, "{value}");
    assert!(err.to_string().contains("illegal data address"), "{err}");
}
