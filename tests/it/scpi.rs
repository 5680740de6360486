//! SCPI layer end to end: the EA supply against its simulated instrument over real loopback
//! TCP (lock, header path, protection latch, shared connections), and the client's failure
//! modes against small hand-written fake servers. Every dialect's table is in
//! `scpi_dialects.rs`.

use std::time::Duration;

use hilrig::instrument::{InstrumentError, Load, ScpiLoad, ScpiSupply, Supply};
use hilrig::scpi::{builtin_dialect, connect, Client, ClientOptions, ScpiError};
use hilrig::sim::plant::Plant;
use hilrig::sim::scpi_server::{serve, SimInstrument};
use rstest::rstest;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const TIMEOUT: Duration = Duration::from_millis(300);

/// A simulated instrument of dialect `id` on a loopback port, over a 16-cell plant at 3.3 V.
async fn simulated(id: &str) -> SimInstrument {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    serve(
        listener,
        builtin_dialect(id).unwrap(),
        Plant::new(16, 3.3, 4, 25.0),
    )
    .await
}

/// The simulated EA supply, connected with its dialect.
async fn connect_supply(sim: &SimInstrument) -> ScpiSupply {
    ScpiSupply::connect("psu", &sim.address(), sim.dialect().clone(), TIMEOUT)
        .await
        .unwrap()
}

#[tokio::test]
async fn supply_voltage_reads_back_with_units() {
    let sim = simulated("ea-psb").await;
    let mut instrument = connect_supply(&sim).await;
    instrument.set_voltage(58.4).await.unwrap();
    assert_eq!(
        instrument.client().query("VOLTage?").await.unwrap(),
        "58.40 V"
    );
    assert_eq!(sim.plant().snapshot().supply.voltage_set, 58.4);
}

/// OVP: 55 V set above a 50 V OVP. OCP: 10 A flowing into the pack above a 5 A OCP.
#[rstest]
#[case::over_voltage(50.0, 20.0, 55.0, 10.0)]
#[case::over_current(70.0, 5.0, 58.4, 10.0)]
#[tokio::test]
async fn protection_trips_and_latches_until_cleared(
    #[case] ovp: f64,
    #[case] ocp: f64,
    #[case] volts: f64,
    #[case] amps: f64,
) {
    let sim = simulated("ea-psb").await;
    sim.plant().lock().chg_fet = true;
    let mut psu = connect_supply(&sim).await;
    psu.program_protection(ovp, ocp).await.unwrap();
    assert_eq!(
        (
            sim.plant().snapshot().supply.ovp,
            sim.plant().snapshot().supply.ocp
        ),
        (Some(ovp), Some(ocp))
    );
    psu.set_voltage(volts).await.unwrap();
    psu.set_current(amps).await.unwrap();
    psu.set_output(true).await.unwrap();

    let state = sim.plant().snapshot().supply;
    assert!(state.protection_tripped && !state.output, "{state:?}");
    assert!(!psu.output().await.unwrap());

    let error = psu.set_output(true).await.unwrap_err();
    assert!(
        matches!(error.scpi(), Some(ScpiError::Instrument { code: -221, .. })),
        "{error}"
    );

    psu.clear_protection().await.unwrap();
    psu.program_protection(82.0, 62.0).await.unwrap();
    psu.set_output(true).await.unwrap();
    assert!(psu.output().await.unwrap());
    assert!(!sim.plant().snapshot().supply.protection_tripped);
}

#[tokio::test]
async fn ea_refuses_settings_until_locked() {
    let sim = simulated("ea-psb").await;
    let mut client = Client::new(
        connect(&sim.address(), TIMEOUT).await.unwrap(),
        ClientOptions {
            timeout: TIMEOUT,
            ..Default::default()
        },
    );
    let error = client.write_checked("SOUR:VOLT 5").await.unwrap_err();
    assert!(
        matches!(error, ScpiError::Instrument { code: -203, .. }),
        "{error}"
    );
    assert_eq!(sim.plant().snapshot().supply.voltage_set, 0.0);
    client.write_checked("SYST:LOCK 1").await.unwrap();
    client
        .write_checked("SOURce:VOLTage:LEVel 5")
        .await
        .unwrap();
    assert_eq!(sim.plant().snapshot().supply.voltage_set, 5.0);
}

#[tokio::test]
async fn several_commands_on_one_line_follow_the_header_path() {
    let sim = simulated("ea-psb").await;
    let mut client = Client::new(
        connect(&sim.address(), TIMEOUT).await.unwrap(),
        ClientOptions {
            timeout: TIMEOUT,
            ..Default::default()
        },
    );
    client.write_checked("syst:lock on").await.unwrap();
    let reply = client
        .query("SOUR:VOLT 12;CURR 3;VOLT?;CURR?")
        .await
        .unwrap();
    assert_eq!(reply, "12.00 V;3.00 A");
}

#[tokio::test]
async fn raw_tcp_client_reads_idn_while_a_supply_is_connected() {
    let sim = simulated("ea-psb").await;
    let mut instrument = connect_supply(&sim).await;
    instrument.set_voltage(10.0).await.unwrap();

    let stream = TcpStream::connect(sim.local_addr()).await.unwrap();
    let (read, mut write) = stream.into_split();
    write.write_all(b"*IDN?\n").await.unwrap();
    let mut line = String::new();
    let mut reader = BufReader::new(read);
    tokio::time::timeout(TIMEOUT, reader.read_line(&mut line))
        .await
        .unwrap()
        .unwrap();
    assert!(
        line.starts_with("EA Elektro-Automatik,PSB 9080-60,") && line.ends_with('\n'),
        "{line:?}"
    );

    instrument.set_voltage(11.0).await.unwrap();
    assert_eq!(sim.plant().snapshot().supply.voltage_set, 11.0);
    assert!(sim.command_log().iter().any(|c| c == "*IDN?"));
}

#[tokio::test]
async fn rejected_settings_send_nothing() {
    let sim = simulated("ea-psb").await;
    let mut instrument = connect_supply(&sim).await;
    sim.clear_command_log();
    let error = instrument.set_voltage(f64::INFINITY).await.unwrap_err();
    assert!(
        matches!(error, InstrumentError::NotFinite { .. }),
        "{error}"
    );
    assert!(sim.command_log().is_empty(), "{:?}", sim.command_log());
}

#[tokio::test]
async fn in_memory_transport_reaches_the_same_instrument() {
    let sim = simulated("rigol-dl3000").await;
    sim.plant().lock().dsg_fet = true;
    let dialect = sim.dialect().clone();
    let mut load = ScpiLoad::open("load", sim.connect_in_memory(), dialect, TIMEOUT)
        .await
        .unwrap();
    load.set_current(3.0).await.unwrap();
    load.set_input(true).await.unwrap();
    assert_eq!(load.measure().await.unwrap().current, 3.0);
    assert!(sim.plant().snapshot().load.input);
}

#[tokio::test]
async fn shutdown_closes_connections_and_refuses_new_ones() {
    let sim = simulated("ea-psb").await;
    let mut instrument = connect_supply(&sim).await;
    sim.shutdown();
    let error = instrument.measure().await.unwrap_err();
    assert!(
        matches!(
            error.scpi(),
            Some(ScpiError::Disconnected { .. } | ScpiError::Io { .. })
        ),
        "{error}"
    );
    let dialect = sim.dialect().clone();
    let mut refused = false;
    // The listener closes as soon as the accept task sees the shutdown.
    for _ in 0..50 {
        match ScpiSupply::connect("psu", &sim.address(), dialect.clone(), TIMEOUT).await {
            Err(InstrumentError::Scpi {
                error: ScpiError::Connect { .. },
                ..
            }) => {
                refused = true;
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    assert!(refused);
}

#[tokio::test]
async fn unknown_scheme_and_refused_connection_are_typed_errors() {
    let error = connect("hislip://10.0.0.5", TIMEOUT).await.err().unwrap();
    assert!(matches!(error, ScpiError::BadAddress { .. }), "{error}");
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    };
    let error = connect(&format!("tcp://127.0.0.1:{port}"), TIMEOUT)
        .await
        .err()
        .unwrap();
    assert!(
        matches!(
            error,
            ScpiError::Connect { .. } | ScpiError::ConnectTimeout { .. }
        ),
        "{error}"
    );
    assert!(error.to_string().contains(&port.to_string()), "{error}");
}

/// How the fake server answers a received line.
#[derive(Clone, Copy, Debug)]
enum Fake {
    /// Send these bytes.
    Reply(&'static [u8]),
    /// Send these bytes, then close the connection.
    ReplyAndClose(&'static [u8]),
    /// Say nothing.
    Silent,
}

/// A one-connection fake instrument: answers `*OPC?` with `1`, `*IDN?` as an EA PSB,
/// `SYST:ERR?` with `on_error_query`, everything else with `on_query`.
async fn fake_instrument(on_query: Fake, on_error_query: Fake) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("tcp://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let action = match line.as_str() {
                "*OPC?" => Fake::Reply(b"1\n"),
                "*IDN?" => Fake::Reply(b"EA Elektro-Automatik,PSB 9080-60,1234,V1\n"),
                "SYST:ERR?" => on_error_query,
                _ if line.ends_with('?') => on_query,
                _ => Fake::Silent,
            };
            match action {
                Fake::Reply(bytes) => {
                    if write.write_all(bytes).await.is_err() {
                        return;
                    }
                }
                Fake::ReplyAndClose(bytes) => {
                    let _ = write.write_all(bytes).await;
                    return;
                }
                Fake::Silent => {}
            }
        }
        // Keep the socket open until the peer goes away.
        let mut rest = Vec::new();
        let _ = lines.into_inner().read_to_end(&mut rest).await;
    });
    address
}

fn is_timeout(e: &ScpiError) -> bool {
    matches!(e, ScpiError::Timeout { .. })
}
fn is_disconnected(e: &ScpiError) -> bool {
    matches!(e, ScpiError::Disconnected { .. })
}
fn is_bad_reply(e: &ScpiError) -> bool {
    matches!(e, ScpiError::BadReply { .. })
}

const NO_ERROR: Fake = Fake::Reply(b"0,\"No error\"\n");

#[rstest]
#[case::no_reply(Fake::Silent, NO_ERROR, is_timeout as fn(&ScpiError) -> bool)]
#[case::truncated_block_then_silence(Fake::Reply(b"#210abc"), NO_ERROR, is_timeout)]
#[case::truncated_block_then_close(Fake::ReplyAndClose(b"#210abc"), NO_ERROR, is_disconnected)]
#[case::dropped_mid_query(Fake::ReplyAndClose(b""), NO_ERROR, is_disconnected)]
#[case::malformed_block_header(Fake::Reply(b"#3abc\n"), NO_ERROR, is_bad_reply)]
#[tokio::test]
async fn broken_replies_to_a_query_are_typed_errors(
    #[case] on_query: Fake,
    #[case] on_error_query: Fake,
    #[case] expected: fn(&ScpiError) -> bool,
) {
    let address = fake_instrument(on_query, on_error_query).await;
    let mut client = Client::new(
        connect(&address, TIMEOUT).await.unwrap(),
        ClientOptions {
            timeout: TIMEOUT,
            ..Default::default()
        },
    );
    let error = client.query("MEAS:VOLT?").await.unwrap_err();
    assert!(expected(&error), "{error:?}");
    assert!(error.to_string().contains("MEAS:VOLT?"), "{error}");
}

#[rstest]
#[case::garbage(Fake::Reply(b"\x15\x8f garbage\n"), is_bad_reply as fn(&ScpiError) -> bool)]
#[case::no_reply(Fake::Silent, is_timeout)]
#[case::dropped(Fake::ReplyAndClose(b"-1"), is_disconnected)]
#[tokio::test]
async fn broken_error_queue_replies_are_typed_errors(
    #[case] on_error_query: Fake,
    #[case] expected: fn(&ScpiError) -> bool,
) {
    let address = fake_instrument(Fake::Silent, on_error_query).await;
    let mut client = Client::new(
        connect(&address, TIMEOUT).await.unwrap(),
        ClientOptions {
            timeout: TIMEOUT,
            ..Default::default()
        },
    );
    let error = client.write_checked("OUTP ON").await.unwrap_err();
    assert!(expected(&error), "{error:?}");
}

#[rstest]
#[case::garbage_measurement(Fake::Reply(b"over 9000\n"), is_bad_reply as fn(&ScpiError) -> bool)]
#[case::no_reply(Fake::Silent, is_timeout)]
#[case::dropped_mid_query(Fake::ReplyAndClose(b"48.0"), is_disconnected)]
#[tokio::test]
async fn supply_over_a_broken_instrument_gives_typed_errors(
    #[case] on_query: Fake,
    #[case] expected: fn(&ScpiError) -> bool,
) {
    let address = fake_instrument(on_query, NO_ERROR).await;
    let dialect = builtin_dialect("ea-psb").unwrap();
    let mut psu = ScpiSupply::connect("psu", &address, dialect, TIMEOUT)
        .await
        .unwrap();
    let error = psu.measure().await.unwrap_err();
    assert_eq!(error.instrument_id(), "psu");
    assert!(error.scpi().is_some_and(expected), "{error:?}");
    assert!(
        error.to_string().starts_with("instrument `psu`: "),
        "{error}"
    );
}

#[tokio::test]
async fn a_block_containing_line_feeds_arrives_whole_over_tcp() {
    let address = fake_instrument(Fake::Reply(b"#209ab\ncd\nef\n\n"), NO_ERROR).await;
    let mut client = Client::new(
        connect(&address, TIMEOUT).await.unwrap(),
        ClientOptions {
            timeout: TIMEOUT,
            ..Default::default()
        },
    );
    assert_eq!(client.query_block("DATA?").await.unwrap(), b"ab\ncd\nef\n");
    assert_eq!(client.query("*OPC?").await.unwrap(), "1");
}
