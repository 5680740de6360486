//! Codec and loader tests. Expected byte vectors follow from the DBC bit numbering (the
//! comments beside the cases show the arithmetic), independently of the codec under test.

use std::collections::BTreeMap;

use rstest::rstest;

use super::*;

use ByteOrder::{Intel as I, Motorola as M};
use ValueType::{Float32 as F32, Float64 as F64, Signed as S, Unsigned as U};

fn signal(
    start_bit: u32,
    size: u32,
    order: ByteOrder,
    vt: ValueType,
    factor: f64,
    offset: f64,
) -> Signal {
    Signal {
        name: "X".into(),
        start_bit,
        size,
        byte_order: order,
        value_type: vt,
        factor,
        offset,
        min: 0.0,
        max: 0.0,
        unit: "u".into(),
        multiplex: Multiplex::Plain,
        selector: None,
        value_table: BTreeMap::new(),
        comment: None,
    }
}

fn message(signals: Vec<Signal>) -> Message {
    Message {
        id: 0x123,
        extended: false,
        name: "T".into(),
        size: 8,
        fd: false,
        signals,
        cycle_time_ms: None,
        comment: None,
    }
}

fn frame(prefix: &[u8]) -> Vec<u8> {
    let mut v = prefix.to_vec();
    v.resize(8, 0);
    v
}

/// Cases: (start bit, length, byte order, value type), (factor, offset), physical, bytes.
#[rstest]
// Intel: start bit is the LSB, bits count up through the bytes.
#[case::intel_byte0((0, 8, I, U), (1.0, 0.0), 171.0, &[0xAB])]
#[case::intel_nibble_offset((4, 12, I, U), (1.0, 0.0), 2748.0, &[0xC0, 0xAB])] // 0xABC
#[case::intel_unaligned((3, 10, I, U), (1.0, 0.0), 1023.0, &[0xF8, 0x1F])]
#[case::intel_signed((8, 8, I, S), (1.0, 0.0), -2.0, &[0x00, 0xFE])]
#[case::intel_scaled((0, 16, I, U), (0.1, -40.0), 25.0, &[0x8A, 0x02])] // raw 650
#[case::intel_signed_scaled((8, 16, I, S), (0.1, 0.0), -12.5, &[0x00, 0x83, 0xFF])] // raw -125
#[case::intel_64((0, 64, I, U), (1.0, 0.0), 4_822_678_189_205_111.0, &[0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 0x00])]
#[case::intel_64_signed((0, 64, I, S), (1.0, 0.0), -1.0, &[0xFF; 8])]
#[case::intel_top_nibble((60, 4, I, U), (1.0, 0.0), 15.0, &[0, 0, 0, 0, 0, 0, 0, 0xF0])]
#[case::intel_last_bit((63, 1, I, U), (1.0, 0.0), 1.0, &[0, 0, 0, 0, 0, 0, 0, 0x80])]
// Motorola: start bit is the MSB in sawtooth numbering.
#[case::moto_16((7, 16, M, U), (0.01, 0.0), 52.80, &[0x14, 0xA0])] // raw 5280
#[case::moto_signed((23, 16, M, S), (0.1, 0.0), -12.3, &[0x00, 0x00, 0xFF, 0x85])] // raw -123
#[case::moto_12_from_bit3((3, 12, M, U), (1.0, 0.0), 2748.0, &[0x0A, 0xBC])] // 0xABC
#[case::moto_high_nibble((7, 4, M, U), (1.0, 0.0), 9.0, &[0x90])]
#[case::moto_crossing((12, 6, M, U), (1.0, 0.0), 45.0, &[0x00, 0x16, 0x80])] // 0b101101
#[case::moto_10_from_bit1((1, 10, M, U), (1.0, 0.0), 755.0, &[0x02, 0xF3])] // 0x2F3
#[case::moto_64((7, 64, M, U), (1.0, 0.0), 4_822_678_189_205_111.0, &[0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77])]
#[case::moto_1bit_signed((0, 1, M, S), (1.0, 0.0), -1.0, &[0x01])]
#[case::moto_last_byte((63, 8, M, U), (1.0, 0.0), 90.0, &[0, 0, 0, 0, 0, 0, 0, 0x5A])]
#[case::moto_min_signed((7, 8, M, S), (1.0, 0.0), -128.0, &[0x80])]
// IEEE floats.
#[case::f32_intel((0, 32, I, F32), (1.0, 0.0), 1.5, &[0x00, 0x00, 0xC0, 0x3F])]
#[case::f32_moto((7, 32, M, F32), (1.0, 0.0), 1.5, &[0x3F, 0xC0, 0x00, 0x00])]
#[case::f32_scaled((32, 32, I, F32), (0.5, 0.0), 3.0, &[0, 0, 0, 0, 0x00, 0x00, 0xC0, 0x40])] // raw 6.0
#[case::f64_intel((0, 64, I, F64), (1.0, 0.0), -2.0, &[0, 0, 0, 0, 0, 0, 0, 0xC0])]
#[case::f64_moto((7, 64, M, F64), (1.0, 0.0), 1.0, &[0x3F, 0xF0, 0, 0, 0, 0, 0, 0])]
fn encodes_and_decodes_hand_computed_frames(
    #[case] layout: (u32, u32, ByteOrder, ValueType),
    #[case] scaling: (f64, f64),
    #[case] physical: f64,
    #[case] bytes: &[u8],
) {
    let (start, size, order, vt) = layout;
    let (factor, offset) = scaling;
    let msg = message(vec![signal(start, size, order, vt, factor, offset)]);
    let expected = frame(bytes);
    assert_eq!(msg.encode(&[("X", physical)]).unwrap(), expected, "encode");
    let decoded = msg.decode(&expected).unwrap();
    assert_eq!(decoded.len(), 1);
    let d = &decoded[0];
    assert!(
        (d.physical - physical).abs() <= factor.abs() * 1e-6,
        "decoded {} != {physical}",
        d.physical
    );
    assert!((d.raw * factor + offset - d.physical).abs() < 1e-9);
    assert_eq!(d.unit, "u");
}

#[rstest]
#[case::round_down(0.01, 52.804, 5280.0)]
#[case::round_up(0.01, 52.806, 5281.0)]
#[case::half_away_from_zero(1.0, 2.5, 3.0)]
#[case::tiny_factor_noise(0.001, 3.456, 3456.0)]
fn encode_rounds_to_the_nearest_raw(#[case] factor: f64, #[case] physical: f64, #[case] raw: f64) {
    let msg = message(vec![signal(0, 16, I, U, factor, 0.0)]);
    let data = msg.encode(&[("X", physical)]).unwrap();
    assert_eq!(msg.decode(&data).unwrap()[0].raw, raw);
}

#[rstest]
#[case::unsigned_too_big(signal(0, 8, I, U, 1.0, 0.0), 256.0)]
#[case::unsigned_negative(signal(0, 8, I, U, 1.0, 0.0), -1.0)]
#[case::signed_too_big(signal(0, 8, I, S, 1.0, 0.0), 128.0)]
#[case::signed_too_small(signal(0, 8, I, S, 1.0, 0.0), -129.0)]
#[case::scaled(signal(0, 8, M, U, 0.1, 0.0), 25.56)]
#[case::offset(signal(0, 8, I, U, 1.0, -40.0), -41.0)]
#[case::nan(signal(0, 8, I, U, 1.0, 0.0), f64::NAN)]
#[case::infinite(signal(0, 8, I, S, 1.0, 0.0), f64::INFINITY)]
#[case::float32_overflow(signal(0, 32, I, F32, 1.0, 0.0), 1e39)]
fn encode_rejects_values_outside_the_raw_range(#[case] sig: Signal, #[case] physical: f64) {
    let msg = message(vec![sig]);
    match msg.encode(&[("X", physical)]) {
        Err(DbcError::OutOfRange {
            signal, message, ..
        }) => {
            assert_eq!((message.as_str(), signal.as_str()), ("T", "X"));
        }
        other => panic!("expected OutOfRange, got {other:?}"),
    }
}

#[test]
fn out_of_range_names_signal_value_and_range() {
    let msg = message(vec![signal(0, 8, I, U, 0.1, 0.0)]);
    let text = msg.encode(&[("X", 30.0)]).unwrap_err().to_string();
    assert!(
        text.contains("T.X") && text.contains("30") && text.contains("25.5"),
        "{text}"
    );
}

#[test]
fn encode_accepts_the_range_edges() {
    let msg = message(vec![signal(0, 8, I, U, 0.1, 0.0)]);
    assert_eq!(msg.encode(&[("X", 25.5)]).unwrap()[0], 0xFF);
    let msg = message(vec![signal(0, 8, I, S, 1.0, 0.0)]);
    assert_eq!(msg.encode(&[("X", -128.0)]).unwrap()[0], 0x80);
    assert_eq!(msg.encode(&[("X", 127.0)]).unwrap()[0], 0x7F);
}

#[test]
fn encode_rejects_unknown_and_repeated_signals() {
    let msg = message(vec![signal(0, 8, I, U, 1.0, 0.0)]);
    let err = msg.encode(&[("Nope", 1.0)]).unwrap_err();
    assert!(
        matches!(err, DbcError::UnknownSignal { ref signal, .. } if signal == "Nope"),
        "{err}"
    );
    let err = msg.encode(&[("X", 1.0), ("X", 2.0)]).unwrap_err();
    assert!(matches!(err, DbcError::DuplicateValue { .. }), "{err}");
}

#[test]
fn signals_not_given_encode_raw_zero() {
    let msg = message(vec![signal(0, 8, I, U, 1.0, 0.0), {
        let mut s = signal(8, 8, I, U, 1.0, -40.0);
        s.name = "Y".into();
        s
    }]);
    assert_eq!(msg.encode(&[("X", 7.0)]).unwrap(), frame(&[7, 0]));
    let decoded = msg.decode(&frame(&[7, 0])).unwrap();
    assert_eq!(decoded[1].physical, -40.0);
}

#[rstest]
#[case::intel_second_byte(signal(8, 16, I, U, 1.0, 0.0), 2, 3)]
#[case::moto_second_byte(signal(15, 16, M, U, 1.0, 0.0), 2, 3)]
#[case::empty(signal(0, 1, I, U, 1.0, 0.0), 0, 1)]
fn decode_rejects_short_frames(#[case] sig: Signal, #[case] got: usize, #[case] needed: usize) {
    let msg = message(vec![sig]);
    match msg.decode(&vec![0u8; got]) {
        Err(DbcError::FrameTooShort {
            needed: n, got: g, ..
        }) => assert_eq!((n, g), (needed, got)),
        other => panic!("expected FrameTooShort, got {other:?}"),
    }
}

#[test]
fn decode_ignores_bytes_beyond_the_signals() {
    let msg = message(vec![signal(0, 8, I, U, 1.0, 0.0)]);
    assert_eq!(msg.decode(&[5]).unwrap()[0].physical, 5.0);
    assert_eq!(msg.decode(&[5; 64]).unwrap()[0].physical, 5.0);
}

const MUX_DBC: &str = r#"VERSION ""

BU_: X

BO_ 1 Mux: 8 X
 SG_ Sel M : 0|8@1+ (1,0) [0|3] "" X
 SG_ A m0 : 8|16@1+ (1,0) [0|65535] "" X
 SG_ B m1 : 15|16@0- (0.5,0) [0|0] "V" X
 SG_ C : 63|8@0+ (1,0) [0|255] "" X
"#;

fn mux_message() -> Message {
    Dbc::parse(MUX_DBC, "mux.dbc")
        .unwrap()
        .message("Mux")
        .unwrap()
        .clone()
}

#[rstest]
#[case::block0(&[("Sel", 0.0), ("A", 4660.0)], &[0x00, 0x34, 0x12], &["Sel", "A", "C"])]
#[case::block1(&[("Sel", 1.0), ("B", -1.0)], &[0x01, 0xFF, 0xFE], &["Sel", "B", "C"])] // raw -2
#[case::block1_plain(&[("C", 90.0), ("B", 2.0), ("Sel", 1.0)], &[0x01, 0x00, 0x04, 0, 0, 0, 0, 0x5A], &["Sel", "B", "C"])]
#[case::mux_default_zero(&[("A", 1.0)], &[0x00, 0x01], &["Sel", "A", "C"])]
#[case::unused_mux_value(&[("Sel", 2.0), ("C", 1.0)], &[0x02, 0, 0, 0, 0, 0, 0, 0x01], &["Sel", "C"])]
fn multiplexed_frames(
    #[case] values: &[(&str, f64)],
    #[case] bytes: &[u8],
    #[case] active: &[&str],
) {
    let msg = mux_message();
    let data = msg.encode(values).unwrap();
    assert_eq!(data, frame(bytes));
    let decoded = msg.decode(&data).unwrap();
    let names: Vec<&str> = decoded.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, active);
    for (name, value) in values {
        let d = decoded.iter().find(|d| d.name == *name).unwrap();
        assert_eq!(d.physical, *value, "{name}");
    }
}

#[rstest]
#[case::wrong_block(&[("Sel", 1.0), ("A", 1.0)], "A", 0, 1)]
#[case::mux_missing(&[("B", 1.0)], "B", 1, 0)]
fn multiplexed_signal_not_selected(
    #[case] values: &[(&str, f64)],
    #[case] name: &str,
    #[case] want: u64,
    #[case] got: i128,
) {
    match mux_message().encode(values) {
        Err(DbcError::NotSelected {
            signal,
            multiplexor,
            wanted,
            actual,
            ..
        }) => {
            assert_eq!(
                (signal.as_str(), multiplexor.as_str(), wanted, actual),
                (name, "Sel", want, got)
            );
        }
        other => panic!("expected NotSelected, got {other:?}"),
    }
}

#[test]
fn decode_signal_respects_the_multiplexor() {
    let msg = mux_message();
    let data = frame(&[0x01, 0xFF, 0xFE]);
    assert_eq!(
        msg.decode_signal("B", &data).unwrap().unwrap().physical,
        -1.0
    );
    assert!(msg.decode_signal("A", &data).unwrap().is_none());
    assert!(msg.decode_signal("Z", &data).is_err());
}

const MODEL_DBC: &str = r#"VERSION "1"

NS_ :
	CM_
	BA_DEF_
	BA_
	VAL_
	SIG_VALTYPE_

BS_:

BU_: A B

BO_ 2566844672 J1939: 8 A
 SG_ Speed : 0|16@1+ (0.00390625,0) [0|250.996] "km/h" B
 SG_ Mode : 16|2@1+ (1,0) [0|3] "" B

BO_ 100 Doubles: 8 A
 SG_ D : 0|64@1- (1,0) [0|0] "" B

BO_ 101 Scaled: 2 B
 SG_ Level : 0|8@1+ (0.5,10) [10|137.5] "%" A

BO_ 3221225472 VECTOR__INDEPENDENT_SIG_MSG: 0 Vector__XXX
 SG_ Orphan : 0|8@1+ (1,0) [0|0] "" Vector__XXX

CM_ BO_ 2566844672 "Engine \"speed\" frame";
CM_ SG_ 2566844672 Mode "Drive mode";
BA_DEF_ BO_ "GenMsgCycleTime" INT 0 10000;
BA_DEF_DEF_ "GenMsgCycleTime" 50;
BA_ "GenMsgCycleTime" BO_ 2566844672 20;
BA_ "GenMsgCycleTime" BO_ 100 0;
VAL_ 2566844672 Mode 0 "off" 1 "eco" 2 "sport" ;
VAL_ 101 Level 0 "empty" 255 "full" ;
VAL_ 101 Missing 1 "x" ;
SIG_VALTYPE_ 100 D : 2;
"#;

#[test]
fn loads_the_model() {
    let dbc = Dbc::parse(MODEL_DBC, "model.dbc").unwrap();
    assert_eq!(dbc.messages().len(), 3, "the pseudo-message is skipped");
    assert!(
        dbc.notes()
            .iter()
            .any(|n| n.contains("VECTOR__INDEPENDENT_SIG_MSG")),
        "{:?}",
        dbc.notes()
    );
    assert!(
        dbc.warnings()
            .iter()
            .any(|w| w.message.contains("Missing") && w.at.line == 35),
        "{:?}",
        dbc.warnings()
    );

    let j = dbc.message_by_id(0x18FE_F100, true).unwrap();
    assert_eq!(j.name, "J1939");
    assert!(dbc.message_by_id(0x18FE_F100, false).is_none());
    assert_eq!(j.cycle_time_ms, Some(20));
    assert_eq!(j.comment.as_deref(), Some("Engine \"speed\" frame"));
    let mode = j.signal("Mode").unwrap();
    assert_eq!(mode.comment.as_deref(), Some("Drive mode"));
    assert_eq!(mode.label_value("sport"), Some(2.0));
    assert_eq!(mode.label_value("ECO"), Some(1.0));
    assert_eq!(mode.label_for(0.0), Some("off"));
    assert_eq!(mode.label_for(3.0), None);

    let d = dbc.message("Doubles").unwrap();
    assert_eq!(d.signals[0].value_type, ValueType::Float64);
    assert_eq!(d.cycle_time_ms, None, "an explicit 0 means not cyclic");
    assert_eq!(
        dbc.message("Scaled").unwrap().cycle_time_ms,
        Some(50),
        "BA_DEF_DEF_ default"
    );

    let (m, level) = dbc.signal("Scaled.Level").unwrap();
    assert_eq!(m.name, "Scaled");
    assert_eq!(level.label_value("full"), Some(137.5));
    assert_eq!(level.label_for(137.5), Some("full"));
    assert_eq!(level.label_for(10.0), Some("empty"));
    assert_eq!(level.label_for(10.25), None);
    assert_eq!(level.physical_range(), (10.0, 137.5));
    assert!(dbc.signal("Scaled.Nope").is_none());
    assert!(dbc.signal("Scaled").is_none());

    let data = m.encode(&[("Level", 137.5)]).unwrap();
    assert_eq!(data, vec![0xFF, 0x00]);
    let decoded = m.decode(&data).unwrap();
    assert_eq!(decoded[0].label.as_deref(), Some("full"));
    assert_eq!(decoded[0].unit, "%");

    let speed = j.encode(&[("Speed", 100.0), ("Mode", 2.0)]).unwrap();
    assert_eq!(speed, frame(&[0x00, 0x64, 0x02])); // 100 / 2^-8 = 25600 = 0x6400
}

#[rstest]
#[case::size_65("BO_ 1 M: 8 X\n SG_ S : 0|65@1+ (1,0) [0|0] \"\" X\n", 2, "1 to 64")]
#[case::size_0("BO_ 1 M: 8 X\n SG_ S : 0|0@1+ (1,0) [0|0] \"\" X\n", 2, "1 to 64")]
#[case::intel_past_end(
    "BO_ 1 M: 2 X\n\n SG_ S : 12|8@1+ (1,0) [0|0] \"\" X\n",
    3,
    "needs 3 bytes"
)]
#[case::moto_past_end(
    "BO_ 1 M: 1 X\n SG_ S : 0|2@0+ (1,0) [0|0] \"\" X\n",
    2,
    "needs 2 bytes"
)]
#[case::start_bit_huge(
    "BO_ 1 M: 8 X\n SG_ S : 4294967296|8@1+ (1,0) [0|0] \"\" X\n",
    2,
    "beyond"
)]
#[case::float_size(
    "BO_ 1 M: 8 X\n SG_ S : 0|16@1- (1,0) [0|0] \"\" X\nSIG_VALTYPE_ 1 S : 1;\n",
    2,
    "32 bits"
)]
#[case::zero_factor("BO_ 1 M: 8 X\n SG_ S : 0|8@1+ (0,0) [0|0] \"\" X\n", 2, "non-zero")]
#[case::orphan_mux(
    "BO_ 1 M: 8 X\n SG_ S m1 : 0|8@1+ (1,0) [0|0] \"\" X\n",
    2,
    "no multiplexor"
)]
#[case::ext_mux(
    "BO_ 1 M: 8 X\n SG_ A M : 0|8@1+ (1,0) [0|0] \"\" X\n SG_ S m1M : 8|8@1+ (1,0) [0|0] \"\" X\n",
    3,
    "no SG_MUL_VAL_ says which multiplexor"
)]
#[case::twice(
    "BO_ 1 M: 8 X\n SG_ S : 0|8@1+ (1,0) [0|0] \"\" X\n SG_ S : 8|8@1+ (1,0) [0|0] \"\" X\n",
    3,
    "twice"
)]
fn bad_signals_are_reported_with_their_line(
    #[case] text: &str,
    #[case] line: usize,
    #[case] why: &str,
) {
    let err = Dbc::parse(text, "bad.dbc").unwrap_err();
    assert!(matches!(err, DbcError::BadSignal { .. }), "{err:?}");
    assert_eq!(err.location().map(|l| l.line), Some(line), "{err}");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("bad.dbc:{line}:")) && text.contains("M.S") && text.contains(why),
        "{text}"
    );
}

#[rstest]
#[case::standard_id_too_big("BO_ 2048 M: 8 X\n", 1, "11 bits")]
#[case::too_long("\nBO_ 1 M: 65 X\n", 2, "64")]
#[case::duplicate_id("BO_ 1 M: 8 X\nBO_ 1 N: 8 X\n", 2, "already used")]
#[case::duplicate_name("BO_ 1 M: 8 X\nBO_ 2 M: 8 X\n", 2, "name")]
#[case::two_muxes(
    "BO_ 1 M: 8 X\n SG_ A M : 0|8@1+ (1,0) [0|0] \"\" X\n SG_ B M : 8|8@1+ (1,0) [0|0] \"\" X\n",
    1,
    "multiplexor"
)]
fn bad_messages_are_reported_with_their_line(
    #[case] text: &str,
    #[case] line: usize,
    #[case] why: &str,
) {
    let err = Dbc::parse(text, "bad.dbc").unwrap_err();
    assert!(matches!(err, DbcError::BadMessage { .. }), "{err:?}");
    assert_eq!(err.location().map(|l| l.line), Some(line), "{err}");
    assert!(err.to_string().contains(why), "{err}");
}

#[test]
fn utf8_bom_and_crlf_are_accepted() {
    let text = "\u{feff}VERSION \"\"\r\n\r\nBO_ 1 M: 1 X\r\n SG_ S : 0|8@1+ (1,0) [0|0] \"\" X\r\n";
    let dbc = Dbc::parse(text, "crlf.dbc").unwrap();
    assert_eq!(dbc.message("M").unwrap().signals.len(), 1);
}

#[test]
fn windows_1252_files_load() {
    let dir = std::env::temp_dir().join(format!("hilrig-dbc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("cp1252.dbc");
    // 0xB0 is the degree sign in Windows-1252 and invalid on its own in UTF-8.
    let mut bytes = b"BO_ 1 M: 1 X\n SG_ T : 0|8@1- (1,0) [0|0] \"".to_vec();
    bytes.extend_from_slice(&[0xB0, b'C']);
    bytes.extend_from_slice(b"\" X\n");
    std::fs::write(&path, &bytes).unwrap();
    let dbc = Dbc::from_file(&path).unwrap();
    assert_eq!(dbc.message("M").unwrap().signals[0].unit, "\u{b0}C");
    assert!(dbc.notes()[0].contains("Windows-1252"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn missing_file_is_an_io_error_with_the_path() {
    let err = Dbc::from_file(std::path::Path::new("/nonexistent/x.dbc")).unwrap_err();
    assert!(matches!(err, DbcError::Io { .. }));
    assert!(err.to_string().contains("/nonexistent/x.dbc"), "{err}");
}

fn data_file(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

#[test]
fn vendor_constructs_load() {
    let dbc = Dbc::from_file(&data_file("vendor-constructs.dbc")).unwrap();
    assert!(dbc.warnings().is_empty(), "{:?}", dbc.warnings());
    // Four statements (VAL_TABLE_ and three VAL_) are written over several lines.
    assert!(
        dbc.notes()
            .iter()
            .any(|n| n.contains(":38:1:") && n.contains("4 statement")),
        "{:?}",
        dbc.notes()
    );
    let names: Vec<&str> = dbc.messages().iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "BMS_State",
            "Charger_Limits",
            "Cell_Data",
            "FD_Cells",
            "FD_Status",
            "State_Request"
        ]
    );
    // Multi-line VAL_ tables keep every entry.
    let state = dbc.signal("BMS_State.State").unwrap().1;
    assert_eq!(state.value_table.len(), 6);
    assert_eq!(state.label_for(5.0), Some("Error"));
    assert_eq!(
        dbc.signal("BMS_State.Contactors").unwrap().1.label_for(3.0),
        Some("welded")
    );
    // Multi-line comments with quotes and tabs.
    let bms = dbc.message("BMS_State").unwrap();
    assert_eq!(
        bms.comment.as_deref(),
        Some(
            "State of the BMS, sent every 100 ms.\nA second line, with \"quotes\" of a sort and a tab\tinside."
        )
    );
    assert_eq!(bms.cycle_time_ms, Some(100));
    assert!(!bms.fd);
    // Extended ids, the same number as a standard id, FD by VFrameFormat.
    let ext = dbc.message_by_id(0x200, true).unwrap();
    assert_eq!(
        (ext.name.as_str(), ext.size, ext.fd),
        ("FD_Cells", 64, true)
    );
    assert_eq!(dbc.message_by_id(0x200, false).unwrap().name, "Cell_Data");
    assert!(dbc.message("FD_Status").unwrap().fd);
    assert_eq!(
        dbc.message_by_id(0x18FF_5010, true).unwrap().name,
        "Charger_Limits"
    );
    let fd = dbc.message("FD_Cells").unwrap();
    assert_eq!(fd.signal("Soc").unwrap().value_type, ValueType::Float32);
    assert_eq!(fd.signal("Energy").unwrap().value_type, ValueType::Float64);
    // Extended multiplexing.
    let cells = dbc.message("Cell_Data").unwrap();
    assert!(cells.extended_multiplexing());
    let page = cells.signal("Page").unwrap();
    assert_eq!(page.multiplex, Multiplex::MultiplexedMultiplexor(1));
    assert_eq!(
        cells.signal("Serial").unwrap().selector,
        Some(MuxSelector {
            multiplexor: "Page".into(),
            ranges: vec![(8, 11), (14, 14)]
        })
    );
}

/// Signals a frame of Cell_Data carries, by the raw values of Kind and Page.
#[rstest]
#[case::kind0(0, 0, &["Kind", "Cell0", "Cell1", "Cell2", "Cell3"])]
#[case::kind1_page4(1, 4, &["Kind", "Page", "TempHigh"])]
#[case::kind1_page14(1, 14, &["Kind", "Page", "Serial"])]
#[case::kind1_page12(1, 12, &["Kind", "Page", "Ratio"])]
#[case::kind1_page15(1, 15, &["Kind", "Page"])]
#[case::kind2(2, 9, &["Kind", "Status"])]
#[case::kind6(6, 9, &["Kind", "TempLow"])]
#[case::kind7(7, 9, &["Kind"])]
fn extended_multiplexing_selects_by_nested_multiplexors(
    #[case] kind: u8,
    #[case] page: u8,
    #[case] want: &[&str],
) {
    let dbc = Dbc::from_file(&data_file("vendor-constructs.dbc")).unwrap();
    let m = dbc.message("Cell_Data").unwrap();
    let data = [kind | (page << 4), 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77];
    let got: Vec<String> = m
        .decode(&data)
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(got, want);
    for name in ["Cell0", "TempHigh", "Serial", "Status"] {
        let one = m.decode_signal(name, &data).unwrap();
        assert_eq!(one.is_some(), want.contains(&name), "{name}");
    }
}

#[test]
fn extended_multiplexing_encodes_parents_first() {
    let dbc = Dbc::from_file(&data_file("vendor-constructs.dbc")).unwrap();
    let m = dbc.message("Cell_Data").unwrap();
    // Kind 1, Page 9 selects Serial (Intel, bytes 1..4).
    let data = m
        .encode(&[("Serial", 0x0403_0201 as f64), ("Page", 9.0), ("Kind", 1.0)])
        .unwrap();
    assert_eq!(data, vec![0x91, 0x01, 0x02, 0x03, 0x04, 0, 0, 0]);
    let back = m.decode(&data).unwrap();
    assert_eq!(back.len(), 3);
    assert_eq!(back[2].physical, f64::from(0x0403_0201u32));
    // Serial is not selected when Page is 4.
    let err = m
        .encode(&[("Serial", 1.0), ("Page", 4.0), ("Kind", 1.0)])
        .unwrap_err();
    assert!(
        err.to_string().contains("Page") && err.to_string().contains("Serial"),
        "{err}"
    );
    // Page itself needs Kind 1.
    assert!(m.encode(&[("Page", 4.0)]).is_err());
}

#[test]
fn windows_1252_vendor_file_loads() {
    let dbc = Dbc::from_file(&data_file("cp1252.dbc")).unwrap();
    assert!(dbc.notes()[0].contains("Windows-1252"), "{:?}", dbc.notes());
    let (m, t) = dbc.signal("Temperatures.CellTemp").unwrap();
    assert_eq!(t.unit, "\u{b0}C");
    assert_eq!(
        m.comment.as_deref(),
        Some("Zellentemperatur \u{2013} gemessen am P\u{f4}l, \u{b1}2 \u{b0}C")
    );
    assert_eq!(t.label_for(127.0), Some("\u{dc}berlauf"));
}

/// Each file under tests/data/strict reproduces one problem cantools' strict mode refuses
/// or warns about; each gives an error or a warning at its line and column.
#[rstest]
#[case::overlap("overlap.dbc", true, "12:2", "overlaps signal Current")]
#[case::mux_range("mux-range.dbc", true, "12:2", "never has the value 4")]
#[case::classic_9("classic-9.dbc", true, "9:1", "9 bytes is not a CAN frame length")]
#[case::classic_12(
    "classic-12.dbc",
    true,
    "9:1",
    "classic CAN message (VFrameFormat) of 12 bytes"
)]
#[case::empty("empty.dbc", true, "1:1", "no messages")]
#[case::duplicate_val("duplicate-val.dbc", false, "13:12", "value 1 is labelled twice")]
#[case::min_max(
    "min-max.dbc",
    false,
    "10:2",
    "minimum 100 is greater than maximum -40"
)]
#[case::valtype_unknown(
    "valtype-unknown.dbc",
    false,
    "13:1",
    "SIG_VALTYPE_ 999 Energy: no message"
)]
#[case::fd_unmarked("fd-unmarked.dbc", false, "9:1", "needs CAN FD, but no VFrameFormat")]
#[case::mux_val_range("mux-val-range.dbc", true, "15:1", "beyond what multiplexor Page")]
#[case::mux_val_unknown("mux-val-unknown.dbc", true, "14:1", "multiplexor Nope")]
fn strict_problems_are_located(
    #[case] file: &str,
    #[case] error: bool,
    #[case] at: &str,
    #[case] why: &str,
) {
    let path = data_file("strict").join(file);
    let origin = path.display().to_string();
    let text = match Dbc::from_file(&path) {
        Err(e) => {
            assert!(error, "unexpected error: {e}");
            assert!(e.location().is_some(), "{e}");
            e.to_string()
        }
        Ok(dbc) => {
            assert!(!error, "loaded, but should fail: {:?}", dbc.warnings());
            assert_eq!(dbc.warnings().len(), 1, "{:?}", dbc.warnings());
            dbc.warnings()[0].to_string()
        }
    };
    assert!(
        text.starts_with(&format!("{origin}:{at}:")) && text.contains(why),
        "{text}"
    );
}
