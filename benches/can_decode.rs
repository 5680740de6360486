//! Decode throughput: a candump log through the project DBC (`hilrig can decode`'s engine,
//! CSV and JSON, written to a sink), the general codec per frame, and SLCAN lines.
//!
//! `cargo bench --bench can_decode`. The log is built in memory: 100,000 random frames of
//! the DBC's messages (valid multiplexor values), 1 ms apart.

// criterion_group! makes a public function without a doc comment.
#![allow(missing_docs)]

use std::hint::black_box;
use std::io;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hilrig::can::decode::{decode_log, DecodeOptions, Format};
use hilrig::can::slcan::decode_line;
use hilrig::dbc::{Dbc, Multiplex};

const FRAMES: usize = 100_000;

fn dbc() -> Dbc {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/dbc/sim-bms.dbc");
    Dbc::from_file(&path).expect("project DBC")
}

/// A deterministic candump log of `n` frames over the DBC's messages.
fn log(dbc: &Dbc, n: usize) -> (String, Vec<(usize, Vec<u8>)>) {
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut text = String::with_capacity(n * 42);
    let mut frames = Vec::with_capacity(n);
    for i in 0..n {
        let index = (next() % dbc.messages().len() as u64) as usize;
        let m = &dbc.messages()[index];
        let mut data: Vec<u8> = (0..m.size).map(|_| next() as u8).collect();
        // A multiplexor value the message's signals use.
        if let Some(mux) = m.multiplexor() {
            let values: Vec<u64> = m
                .signals
                .iter()
                .filter_map(|s| match s.multiplex {
                    Multiplex::Multiplexed(v) => Some(v),
                    _ => None,
                })
                .collect();
            let v = values[(next() % values.len() as u64) as usize];
            mux.insert_bits(&mut data, v).expect("multiplexor fits");
        }
        let id = if m.extended {
            format!("{:08X}", m.id)
        } else {
            format!("{:03X}", m.id)
        };
        let hex: String = data.iter().map(|b| format!("{b:02X}")).collect();
        let us = 1_700_000_000_000_000u64 + i as u64 * 1000;
        text.push_str(&format!(
            "({}.{:06}) can0 {id}#{hex}\n",
            us / 1_000_000,
            us % 1_000_000
        ));
        frames.push((index, data));
    }
    (text, frames)
}

fn bench(c: &mut Criterion) {
    let dbc = dbc();
    let (text, frames) = log(&dbc, FRAMES);

    let mut g = c.benchmark_group("can_decode");
    g.throughput(Throughput::Elements(FRAMES as u64));
    g.sample_size(20);
    for (name, format) in [("log_to_csv", Format::Csv), ("log_to_json", Format::Json)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let options = DecodeOptions {
                    format,
                    ..DecodeOptions::default()
                };
                let s = decode_log(text.as_bytes(), io::sink(), &dbc, options).unwrap();
                assert_eq!(s.decoded, FRAMES as u64);
            })
        });
    }
    g.bench_function("message_decode", |b| {
        b.iter(|| {
            let mut n = 0;
            for (index, data) in &frames {
                n += dbc.messages()[*index]
                    .decode(black_box(data))
                    .unwrap()
                    .len();
            }
            n
        })
    });
    let lines: Vec<String> = frames
        .iter()
        .map(|(index, data)| {
            let m = &dbc.messages()[*index];
            let hex: String = data.iter().map(|b| format!("{b:02X}")).collect();
            format!("t{:03X}{}{hex}1A2B", m.id, data.len())
        })
        .collect();
    g.bench_function("slcan_decode_line", |b| {
        b.iter(|| {
            for l in &lines {
                black_box(decode_line(l.as_bytes()).unwrap());
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
