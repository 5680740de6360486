//! Round trip of `*IDN?` through hilrig's SCPI client to a simulated instrument (the EA
//! supply, which keeps no pause between commands): over loopback TCP and over a
//! pseudo-terminal as a serial port (instrument on its own runtime, client on a
//! single-threaded one), and through an in-memory pipe (both on the client's thread).
//!
//! `cargo bench --bench scpi_ping`. The side-by-side figures against pyvisa-py, measured
//! with `hilrig instruments ping` and `tests/peers/pyvisa_ping.py` against `hilrig sim
//! serve`, are in BENCHMARKS.md.

// criterion_group! makes a public function without a doc comment.
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use hilrig::scpi::{builtin_dialect, connect, Client, ClientOptions, Transport};
use hilrig::sim::plant::Plant;
use hilrig::sim::scpi_server::{serve, serve_in_memory, SimInstrument};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;

fn client(transport: Box<dyn Transport>) -> Client {
    Client::new(
        transport,
        ClientOptions {
            timeout: Duration::from_secs(2),
            ..Default::default()
        },
    )
}

/// Time `iters` round trips of `*IDN?`.
fn round_trips(rt: &Runtime, client: &mut Client, iters: u64) -> Duration {
    rt.block_on(async {
        let started = Instant::now();
        for _ in 0..iters {
            client.query("*IDN?").await.expect("*IDN? answered");
        }
        started.elapsed()
    })
}

fn bench(c: &mut Criterion) {
    // The instruments run on a runtime of their own, as `hilrig sim serve` does; the client
    // on a single-threaded one, as `hilrig instruments ping` does.
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dialect = builtin_dialect("ea-psb").expect("shipped dialect");
    let plant = Plant::new(16, 3.3, 4, 25.0);
    let (tcp, port) = server.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("loopback");
        let tcp: SimInstrument = serve(listener, dialect.clone(), plant.clone()).await;
        let port = serve_in_memory(dialect.clone(), plant.clone())
            .serve_serial()
            .expect("pty");
        (tcp, port)
    });
    // In memory both ends share the client's thread, as in a virtual-time run.
    let in_memory_transport =
        rt.block_on(async { serve_in_memory(dialect.clone(), plant.clone()).connect_in_memory() });
    let (mut over_tcp, mut over_serial) = rt.block_on(async {
        let over_tcp = client(
            connect(&tcp.address(), Duration::from_secs(2))
                .await
                .expect("tcp"),
        );
        let over_serial = client(
            connect(&port.address(), Duration::from_secs(2))
                .await
                .expect("serial"),
        );
        (over_tcp, over_serial)
    });
    let mut in_memory = client(in_memory_transport);

    let mut group = c.benchmark_group("idn_round_trip");
    group.bench_function("tcp", |b| {
        b.iter_custom(|iters| round_trips(&rt, &mut over_tcp, iters))
    });
    group.bench_function("serial_pty", |b| {
        b.iter_custom(|iters| round_trips(&rt, &mut over_serial, iters))
    });
    group.bench_function("in_memory", |b| {
        b.iter_custom(|iters| round_trips(&rt, &mut in_memory, iters))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
