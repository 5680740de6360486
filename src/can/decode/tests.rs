use super::value::{decimal, decimal_scaling};
use super::*;

/// A DBC text: the header every test DBC starts with (node `A`), then `body`.
macro_rules! dbc_text {
    ($body:literal) => {
        concat!("VERSION \"\"\nNS_ :\nBS_:\nBU_: A\n", $body)
    };
}

const DBC: &str = dbc_text!(
    r#"BO_ 256 Status: 2 A
 SG_ State : 0|4@1+ (1,0) [0|15] "" A
 SG_ Volt : 15|8@0+ (0.5,1) [0|128] "V" A
BO_ 2147483904 Ext: 1 A
 SG_ Mux M : 0|2@1+ (1,0) [0|3] "" A
 SG_ A m0 : 2|6@1- (1,0) [-32|31] "" A
 SG_ B m1 : 2|6@1+ (2,0) [0|126] "deg,C" A
VAL_ 256 State 1 "on" 2 "off" ;
"#
);

fn dbc() -> Dbc {
    Dbc::parse(DBC, "t.dbc").unwrap()
}

/// xorshift64: reproducible random bytes for frames.
fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

fn run_with(dbc: &Dbc, log: &str, options: DecodeOptions) -> (String, DecodeSummary) {
    let mut out = Vec::new();
    let summary = decode_log(log.as_bytes(), &mut out, dbc, options).unwrap();
    (String::from_utf8(out).unwrap(), summary)
}

fn run(log: &str, options: DecodeOptions) -> (String, DecodeSummary) {
    run_with(&dbc(), log, options)
}

#[test]
fn csv_has_units_in_the_header_and_one_column_per_signal() {
    let log = "(1.5) can0 100#1203\n(2.0) can0 00000100#41\n(2.5) can0 00000100#FC\n";
    let (out, s) = run(log, DecodeOptions::default());
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "time_s,interface,id,message,Status.State,Status.Volt [V],Ext.Mux,Ext.A,\"Ext.B [deg,C]\""
    );
    assert_eq!(lines[1], "1.5,can0,100,Status,2,2.5,,,");
    assert_eq!(lines[2], "2.0,can0,00000100,Ext,,,1,,32");
    assert_eq!(lines[3], "2.5,can0,00000100,Ext,,,0,-1,");
    assert_eq!((s.decoded, s.problems), (3, 0));
}

#[test]
fn json_lines_carry_labels() {
    let (out, _) = run(
        "(1.5) can0 100#1103\n",
        DecodeOptions {
            format: Format::Json,
            ..DecodeOptions::default()
        },
    );
    assert_eq!(
        out.trim_end(),
        r#"{"t":1.5,"interface":"can0","id":256,"extended":false,"message":"Status","signals":{"State":1,"Volt":2.5},"labels":{"State":"on"}}"#
    );
    let v: serde_json::Value = serde_json::from_str(out.trim_end()).unwrap();
    assert_eq!(v["signals"]["Volt"], 2.5);
}

const STATS_LOG: &str = "(1.0) can0 100#1103\n(2.0) can0 100#0509\n(3.0) can0 100#0200\n\
        (4.0) can0 00000100#01\n(5.0) can0 00000100#0D\n(6.0) can0 00000100#FC\n\
        (7.0) can0 7FF#00\n";

#[test]
fn stats_give_one_row_per_signal() {
    let (out, summary) = run(
        STATS_LOG,
        DecodeOptions {
            stats: true,
            ..DecodeOptions::default()
        },
    );
    assert_eq!(
        out,
        "message,id,signal,unit,frames,values,min,max,mean,last\n\
             Status,100,State,,3,3,1,5,2.6666666666666665,2\n\
             Status,100,Volt,V,3,3,1,5.5,3,1\n\
             Ext,00000100,Mux,,3,3,0,1,0.6666666666666666,0\n\
             Ext,00000100,A,,3,1,-1,-1,-1,-1\n\
             Ext,00000100,B,\"deg,C\",3,2,0,6,3,6\n"
    );
    assert_eq!(summary.decoded, 6);
    assert_eq!(summary.unknown_frames(), 1);
}

#[test]
fn stats_as_json_name_unknown_ids_and_unseen_signals() {
    let (out, _) = run(
        "(1.0) can0 00000100#01\n(2.0) can0 7FF#00\n",
        DecodeOptions {
            stats: true,
            format: Format::Json,
            ..DecodeOptions::default()
        },
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["decoded"], 1);
    assert_eq!(v["unknown"][0]["id"], 0x7FF);
    assert_eq!(v["messages"][0]["message"], "Status");
    assert_eq!(v["messages"][0]["frames"], 0);
    assert_eq!(
        v["messages"][0]["signals"][0]["min"],
        serde_json::Value::Null
    );
    assert_eq!(v["messages"][1]["frames"], 1);
    assert_eq!(v["messages"][1]["signals"][2]["signal"], "B");
    assert_eq!(v["messages"][1]["signals"][2]["max"], 0.0);
    assert_eq!(v["messages"][1]["signals"][1]["values"], 0);
}

#[test]
fn stats_agree_with_the_codec() {
    let dbc = Dbc::parse(LAYOUTS, "layouts.dbc").unwrap();
    let mut next = xorshift(0x2545_F491_4F6C_DD1D);
    let mut log = String::new();
    let mut want: BTreeMap<(String, String), (u64, f64, f64)> = BTreeMap::new();
    for round in 0..3000 {
        let m = &dbc.messages()[round % dbc.messages().len()];
        let data: Vec<u8> = (0..m.size).map(|_| next() as u8).collect();
        let hex: String = data.iter().map(|b| format!("{b:02X}")).collect();
        let sep = if m.size > 8 { "##0" } else { "#" };
        let _ = writeln!(log, "(1.0) can0 {}{sep}{hex}", format_id(m.id, m.extended));
        for d in m.decode(&data).unwrap() {
            let e = want.entry((m.name.clone(), d.name.clone())).or_insert((
                0,
                f64::INFINITY,
                f64::NEG_INFINITY,
            ));
            e.0 += 1;
            if d.physical.is_finite() {
                e.1 = e.1.min(d.physical);
                e.2 = e.2.max(d.physical);
            }
        }
    }
    let (out, summary) = run_with(
        &dbc,
        &log,
        DecodeOptions {
            stats: true,
            format: Format::Json,
            ..DecodeOptions::default()
        },
    );
    assert_eq!(summary.problems, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut checked = 0;
    for m in v["messages"].as_array().unwrap() {
        for s in m["signals"].as_array().unwrap() {
            let key = (
                m["message"].as_str().unwrap().to_string(),
                s["signal"].as_str().unwrap().to_string(),
            );
            let Some(&(n, lo, hi)) = want.get(&key) else {
                continue;
            };
            assert_eq!(s["values"].as_u64(), Some(n), "{key:?}");
            for (got, w) in [(&s["min"], lo), (&s["max"], hi)] {
                let got = got.as_f64().unwrap();
                assert!(
                    (got - w).abs() <= 1e-9 * w.abs().max(1.0),
                    "{key:?}: {got} vs {w}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} signals checked");
}

#[test]
fn bad_lines_lengths_and_unknown_ids_are_reported_with_line_numbers() {
    let log = "(1.0) can0 100#1203\n\
                   (1.1) can0 100#12\n\
                   not a line\n\
                   (1.2) can0 7E0#0102\n\
                   (1.3) can0 7E0#0102\n\
                   (1.4) can0 123#R\n\
                   (1.5) can0 100#1203\n";
    let (out, s) = run(log, DecodeOptions::default());
    assert_eq!(out.lines().count(), 3, "header and two rows");
    assert_eq!((s.decoded, s.skipped, s.problems, s.lines), (2, 1, 2, 7));
    let msgs: Vec<String> = s.first_problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(
        msgs[0],
        "line 2: frame 100 has 1 data bytes, but Status in the DBC has 2"
    );
    assert!(msgs[1].starts_with("line 3: "), "{}", msgs[1]);
    assert_eq!(
        s.unknown.get(&(0x7E0, false)),
        Some(&Unknown {
            frames: 2,
            first_line: 4
        })
    );
    assert_eq!(s.unknown_frames(), 2);

    let (_, strict) = run(
        log,
        DecodeOptions {
            strict: true,
            ..DecodeOptions::default()
        },
    );
    assert_eq!(strict.problems, 4);
    assert_eq!(
        strict.first_problems[2].to_string(),
        "line 4: id 7E0 is not in the DBC"
    );
}

#[test]
fn problems_are_all_counted_but_only_some_kept() {
    let log = "junk\n".repeat(50);
    let (_, s) = run(
        &log,
        DecodeOptions {
            keep_errors: 5,
            ..DecodeOptions::default()
        },
    );
    assert_eq!((s.problems, s.first_problems.len()), (50, 5));
    assert_eq!(s.first_problems[4].line(), 5);
}

#[rstest::rstest]
#[case(0, 0, "0")]
#[case(3400, 3, "3.4")]
#[case(-5, 1, "-0.5")]
#[case(-50, 1, "-5")]
#[case(123_456, 2, "1234.56")]
#[case(7, 3, "0.007")]
#[case(-7, 3, "-0.007")]
#[case(1_000, 3, "1")]
fn decimals(#[case] scaled: i128, #[case] places: u32, #[case] want: &str) {
    let mut s = Vec::new();
    decimal(&mut s, scaled, places);
    assert_eq!(String::from_utf8(s).unwrap(), want);
}

#[rstest::rstest]
#[case(0.001, 0.0, Some((1, 0, 3)))]
#[case(0.1, -40.0, Some((1, -400, 1)))]
#[case(2.5, 0.0, Some((25, 0, 1)))]
#[case(1.0 / 3.0, 0.0, None)]
fn decimal_factors(
    #[case] factor: f64,
    #[case] offset: f64,
    #[case] want: Option<(i128, i128, u32)>,
) {
    assert_eq!(decimal_scaling(factor, offset), want);
}

const LAYOUTS: &str = dbc_text!(
    r#"BO_ 1 Mixed: 8 A
 SG_ I12 : 3|12@1+ (0.001,0) [0|4.095] "V" A
 SG_ M16 : 23|16@0- (0.1,-40) [0|0] "degC" A
 SG_ M1 : 33|1@0+ (1,0) [0|1] "" A
 SG_ S7 : 40|7@1- (3,1) [0|0] "" A
 SG_ M11 : 52|11@0+ (0.25,0) [0|0] "A" A
BO_ 2 Floats: 8 A
 SG_ F : 0|32@1- (1,0) [0|0] "" A
 SG_ G : 39|32@0- (2,0.5) [0|0] "" A
BO_ 3 Wide: 8 A
 SG_ W64 : 0|64@1+ (1,0) [0|0] "" A
BO_ 4 BigEnd64: 8 A
 SG_ B64 : 7|64@0- (1,0) [0|0] "" A
BO_ 5 FdMsg: 16 A
 SG_ Mux M : 0|4@1+ (1,0) [0|0] "" A
 SG_ Far m1 : 100|20@1+ (0.5,0) [0|0] "" A
 SG_ Near m2 : 15|12@0- (1,0) [0|0] "" A
BO_ 6 Nested: 8 A
 SG_ K M : 0|2@1+ (1,0) [0|3] "" A
 SG_ P m1M : 2|3@1+ (1,0) [0|7] "" A
 SG_ X m0 : 8|8@1+ (1,0) [0|0] "" A
 SG_ Y m2 : 15|16@0- (0.5,0) [0|0] "" A
 SG_ Z m5 : 8|8@1+ (1,0) [0|0] "" A
SIG_VALTYPE_ 2 F : 1;
SIG_VALTYPE_ 2 G : 1;
SG_MUL_VAL_ 6 P K 1-1;
SG_MUL_VAL_ 6 X K 0-0;
SG_MUL_VAL_ 6 Y P 2-3;
SG_MUL_VAL_ 6 Z P 5-7;
"#
);

/// The fast decoder against the codec, over random frames of many layouts.
#[test]
fn fast_path_agrees_with_the_codec() {
    let dbc = Dbc::parse(LAYOUTS, "layouts.dbc").unwrap();
    let layout = Layout::new(&dbc);
    let mut next = xorshift(0x9E37_79B9_7F4A_7C15);
    for round in 0..4000 {
        let m = &dbc.messages()[round % dbc.messages().len()];
        let c = &layout.messages[round % dbc.messages().len()];
        let data: Vec<u8> = (0..m.size).map(|_| next() as u8).collect();
        let mut row = Vec::new();
        let carried = c.extended_mux.then(|| m.carried(&data).unwrap());
        write_row(
            &mut row,
            &layout,
            c,
            &m.signals,
            carried.as_deref(),
            b"0.0",
            b"x",
            &data,
            false,
        );
        let row = String::from_utf8(row).unwrap();
        let cells: Vec<&str> = row.trim_end().split(',').collect();
        let ours = &cells[4 + c.start..4 + c.start + m.signals.len()];
        let want = m.decode(&data).unwrap();
        for (s, cell) in m.signals.iter().zip(ours) {
            match want.iter().find(|d| d.name == s.name) {
                None => assert_eq!(*cell, "", "{}.{} inactive", m.name, s.name),
                Some(d) if d.physical.is_nan() => assert_eq!(*cell, "NaN"),
                Some(d) => {
                    let v: f64 = cell.parse().unwrap_or_else(|_| panic!("{cell}"));
                    let tol = 1e-9 * d.physical.abs().max(1.0);
                    assert!(
                        (v - d.physical).abs() <= tol || v == d.physical,
                        "{}.{}: {cell} vs {} for {data:02X?}",
                        m.name,
                        s.name,
                        d.physical
                    );
                }
            }
        }
    }
}

#[test]
fn unusual_lines_take_the_full_parser() {
    let log = "(1.5) can0 100#12.03\n\
                   (1.6)  can0   100#1203\n\
                   (1.7) can0 00000100##141\n\
                   \n\
                   (1.8) can0 20000004#0000000000000000\n";
    let (out, s) = run(log, DecodeOptions::default());
    let rows: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(rows[0], "1.500000,can0,100,Status,2,2.5,,,");
    assert_eq!(rows[1], "1.600000,can0,100,Status,2,2.5,,,");
    assert_eq!(rows[2], "1.700000,can0,00000100,Ext,,,1,,32");
    assert_eq!((s.decoded, s.skipped, s.problems, s.lines), (3, 1, 0, 5));
}

#[test]
fn lines_straddling_reads_decode_the_same() {
    let log = "(1.0) can0 100#1203\r\n(2.0) can0 00000100#41\n\nbad\n(3.0) can0 100#1103";
    let (whole, s1) = run(log, DecodeOptions::default());
    for capacity in [1, 2, 5, 7, 13, 64] {
        let mut out = Vec::new();
        let reader = io::BufReader::with_capacity(capacity, log.as_bytes());
        let s2 = decode_log(reader, &mut out, &dbc(), DecodeOptions::default()).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            whole,
            "capacity {capacity}"
        );
        assert_eq!(
            (s2.decoded, s2.problems, s2.lines),
            (s1.decoded, s1.problems, s1.lines)
        );
    }
    assert_eq!((s1.decoded, s1.problems, s1.lines), (3, 1, 5));
}
