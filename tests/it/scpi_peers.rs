//! Independent peer (opt-in: HILRIG_PEER_TESTS=1, with tests/peers/requirements.txt):
//! pyvisa-py talks to every simulated instrument over TCP (`TCPIP::127.0.0.1::PORT::SOCKET`)
//! with each model's own commands and gets the answers the real model gives
//! (tests/peers/pyvisa_interop.py); what it set is then seen in the simulated plant.

use crate::common::python;
use std::collections::BTreeMap;

use hilrig::scpi::builtin_dialects;
use hilrig::sim::plant::Plant;
use hilrig::sim::scpi_server::{serve, SimInstrument};
use tokio::net::TcpListener;

fn peers_enabled(test: &str) -> bool {
    if std::env::var("HILRIG_PEER_TESTS").as_deref() == Ok("1") {
        true
    } else {
        println!("{test}: not run: set HILRIG_PEER_TESTS=1");
        false
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyvisa_py_gets_each_models_answers() {
    if !peers_enabled("pyvisa_py_gets_each_models_answers") {
        return;
    }
    let mut sims: BTreeMap<String, SimInstrument> = BTreeMap::new();
    for dialect in builtin_dialects() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let id = dialect.id.clone();
        let sim = serve(listener, dialect, Plant::new(16, 3.3, 4, 25.0)).await;
        sims.insert(id, sim);
    }
    let ports: BTreeMap<&str, u16> = sims
        .iter()
        .map(|(id, sim)| (id.as_str(), sim.local_addr().port()))
        .collect();
    let input = serde_json::to_string(&ports).unwrap();
    let stdout = tokio::task::spawn_blocking(move || {
        python(&["tests/peers/pyvisa_interop.py"], Some(&input))
    })
    .await
    .unwrap();
    println!("{stdout}");
    let checks = stdout.lines().filter(|l| l.starts_with("ok ")).count();
    assert!(checks >= 12 * sims.len(), "too few checks ran:\n{stdout}");

    // What pyvisa-py set on the channel wired to the plant is in the plant.
    let set: BTreeMap<String, f64> =
        serde_json::from_str(stdout.lines().last().unwrap_or("{}")).unwrap();
    let plant = |id: &str| sims[id].plant().snapshot();
    for id in [
        "ea-psb",
        "keysight-e36300",
        "keysight-n6700",
        "keysight-rp7900",
    ] {
        assert_eq!(plant(id).supply.voltage_set, set[id], "{id}");
        assert!(plant(id).supply.output, "{id}");
    }
    for id in ["rigol-dl3000", "siglent-sdl1000x", "chroma-63600"] {
        assert_eq!(plant(id).load.current_set, set[id], "{id}");
        assert!(plant(id).load.input, "{id}");
    }
    assert_eq!(
        plant("bloomy-abs").cell_override[2],
        Some(set["bloomy-abs"])
    );
    // The R&S and Rigol sessions drove channel 2, which is not wired to the plant.
    for id in ["rigol-dp800", "rs-hmp4040", "rs-nge100"] {
        assert_eq!(plant(id).supply.voltage_set, 0.0, "{id}");
    }
}
