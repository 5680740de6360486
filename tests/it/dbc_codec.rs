//! The project DBC through the codec: known frames (with the bit arithmetic shown), round
//! trips over every message, and broken DBC inputs that must fail with a line number,
//! never a panic.

use std::path::Path;

use hilrig::dbc::{Dbc, DbcError, Message, Multiplex, ValueType};
use rstest::rstest;

fn project_dbc() -> Dbc {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/dbc/sim-bms.dbc");
    Dbc::from_file(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn msg<'a>(dbc: &'a Dbc, name: &str) -> &'a Message {
    dbc.message(name)
        .unwrap_or_else(|| panic!("no message {name}"))
}

fn physical(msg: &Message, data: &[u8], signal: &str) -> f64 {
    let decoded = msg.decode(data).unwrap();
    decoded
        .iter()
        .find(|d| d.name == signal)
        .unwrap_or_else(|| panic!("{signal} not decoded"))
        .physical
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn project_dbc_loads_cleanly() {
    let dbc = project_dbc();
    let names: Vec<&str> = dbc.messages().iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "BMS_Status",
            "BMS_Pack",
            "BMS_CellVoltages",
            "BMS_Balancing",
            "BMS_Temps",
            "BMS_Version",
            "BMS_Energy",
            "BMS_Soc",
            "CellSim_SetCell",
            "CellSim_SetTemp",
            "CellSim_GetCurrent",
            "CellSim_Current",
            "Host_StateRequest"
        ]
    );
    assert!(dbc.notes().is_empty(), "{:?}", dbc.notes());
    assert_eq!(msg(&dbc, "BMS_Status").cycle_time_ms, Some(100));
    assert_eq!(msg(&dbc, "BMS_Temps").cycle_time_ms, Some(1000));
    assert_eq!(msg(&dbc, "BMS_Energy").cycle_time_ms, None);
    assert_eq!(msg(&dbc, "BMS_Soc").cycle_time_ms, Some(1000));
    assert_eq!(dbc.message_by_id(0x101, false).unwrap().name, "BMS_Pack");
    assert!(dbc.message_by_id(0x101, true).is_none());
    let (_, fault_cell) = dbc.signal("BMS_Status.FaultCell").unwrap();
    assert!(fault_cell
        .comment
        .as_deref()
        .unwrap()
        .starts_with("1-based index"));
}

#[test]
fn bms_pack_motorola_frame() {
    let dbc = project_dbc();
    let m = msg(&dbc, "BMS_Pack");
    // PackVoltage 52.80 V = raw 5280 = 0x14A0; PackCurrent -12.3 A = raw -123 = 0xFF85;
    // cell max 3.456 V = 0x0D80, min 3.200 V = 0x0C80; all big-endian from byte 0.
    let expected = [0x14, 0xA0, 0xFF, 0x85, 0x0D, 0x80, 0x0C, 0x80];
    let data = m
        .encode(&[
            ("PackVoltage", 52.80),
            ("PackCurrent", -12.3),
            ("MaxCellVoltage", 3.456),
            ("MinCellVoltage", 3.2),
        ])
        .unwrap();
    assert_eq!(data, expected);
    assert_eq!(
        m.encode(&[("PackVoltage", 52.80)]).unwrap(),
        [0x14, 0xA0, 0, 0, 0, 0, 0, 0]
    );

    assert!(close(physical(m, &expected, "PackVoltage"), 52.80, 1e-9));
    assert!(close(physical(m, &expected, "PackCurrent"), -12.3, 1e-9));
    assert!(close(physical(m, &expected, "MaxCellVoltage"), 3.456, 1e-9));
    assert!(close(physical(m, &expected, "MinCellVoltage"), 3.2, 1e-9));
    let current = m
        .decode(&expected)
        .unwrap()
        .into_iter()
        .find(|d| d.name == "PackCurrent")
        .unwrap();
    assert_eq!((current.raw, current.unit.as_str()), (-123.0, "A"));
}

#[test]
fn pack_current_signed_motorola_extremes() {
    let dbc = project_dbc();
    let m = msg(&dbc, "BMS_Pack");
    assert!(close(
        physical(m, &[0, 0, 0x80, 0x00, 0, 0, 0, 0], "PackCurrent"),
        -3276.8,
        1e-9
    ));
    assert!(close(
        physical(m, &[0, 0, 0x7F, 0xFF, 0, 0, 0, 0], "PackCurrent"),
        3276.7,
        1e-9
    ));
    assert!(close(
        physical(m, &[0, 0, 0xFF, 0xFF, 0, 0, 0, 0], "PackCurrent"),
        -0.1,
        1e-12
    ));
    assert!(m.encode(&[("PackCurrent", 3276.8)]).is_err());
}

#[test]
fn cell_voltages_multiplexed_block_1() {
    let dbc = project_dbc();
    let m = msg(&dbc, "BMS_CellVoltages");
    // CellBlock = 1 in byte 0. Cell05 = 3456 = 0xD80 in bits 8..21: byte 1 = 0x80, byte 2 =
    // 0x0D. Cell06 = 3300 = 0xCE4 in bits 22..35: its low 2 bits (00) in byte 2 bits 6-7,
    // then 0xCE4 >> 2 = 0x339 -> byte 3 = 0x39, byte 4 = 0x03.
    let data = m
        .encode(&[("CellBlock", 1.0), ("Cell05", 3.456), ("Cell06", 3.3)])
        .unwrap();
    assert_eq!(data, [0x01, 0x80, 0x0D, 0x39, 0x03, 0x00, 0x00, 0x00]);
    let decoded = m.decode(&data).unwrap();
    let names: Vec<&str> = decoded.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["CellBlock", "Cell05", "Cell06", "Cell07", "Cell08"]);
    assert!(close(decoded[1].physical, 3.456, 1e-9));
    assert!(close(decoded[2].physical, 3.3, 1e-9));

    // Cell01 lives in block 0 only.
    let err = m
        .encode(&[("CellBlock", 1.0), ("Cell01", 3.3)])
        .unwrap_err();
    assert!(matches!(err, DbcError::NotSelected { .. }), "{err}");
    assert!(err.to_string().contains("CellBlock = 0"), "{err}");
}

#[test]
fn remaining_energy_float32() {
    let dbc = project_dbc();
    let m = msg(&dbc, "BMS_Energy");
    assert_eq!(
        m.signal("RemainingEnergy").unwrap().value_type,
        ValueType::Float32
    );
    // 1234.5 = 1.00110100101b x 2^10 -> 0x449A5000, little-endian.
    let data = m.encode(&[("RemainingEnergy", 1234.5)]).unwrap();
    assert_eq!(data, [0x00, 0x50, 0x9A, 0x44]);
    assert_eq!(physical(m, &data, "RemainingEnergy"), 1234.5);
}

#[test]
fn chg_fet_labels() {
    let dbc = project_dbc();
    let (m, chg) = dbc.signal("BMS_Status.ChgFet").unwrap();
    assert_eq!(chg.label_value("closed"), Some(1.0));
    assert_eq!(chg.label_value("open"), Some(0.0));
    assert_eq!(chg.label_for(1.0), Some("closed"));
    assert_eq!(chg.label_value("ajar"), None);

    // State = charge (1) in bits 0-3, ChgFet closed in bit 4.
    let state = m.signal("State").unwrap().label_value("charge").unwrap();
    let data = m.encode(&[("State", state), ("ChgFet", 1.0)]).unwrap();
    assert_eq!(data, [0x11, 0, 0, 0, 0, 0, 0, 0]);
    let decoded = m.decode(&data).unwrap();
    let label = |n: &str| decoded.iter().find(|d| d.name == n).unwrap().label.clone();
    assert_eq!(label("ChgFet").as_deref(), Some("closed"));
    assert_eq!(label("DsgFet").as_deref(), Some("open"));
    assert_eq!(label("State").as_deref(), Some("charge"));
    assert_eq!(label("FaultCell"), None);
}

#[rstest]
#[case::temps("BMS_Temps", &[("Temp1", -20.0), ("Temp4", 45.0)], &[0xEC, 0x00, 0x00, 0x2D])]
#[case::set_temp("CellSim_SetTemp", &[("SensorIndex", 2.0), ("Temperature", -12.5)], &[0x02, 0x83, 0xFF])]
#[case::set_cell("CellSim_SetCell", &[("CellIndex", 5.0), ("Voltage", 3.65)], &[0x05, 0x94, 0x8E])] // raw 36500 = 0x8E94
#[case::version("BMS_Version", &[("FwMajor", 1.0), ("ImageHash", 3_735_928_559.0)], &[0x01, 0, 0, 0, 0xEF, 0xBE, 0xAD, 0xDE])]
#[case::request("Host_StateRequest", &[("Request", 1.0)], &[0x01])]
#[case::status_counter("BMS_Status", &[("Counter", 15.0), ("FaultOV", 1.0)], &[0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0F])]
fn known_frames(#[case] name: &str, #[case] values: &[(&str, f64)], #[case] bytes: &[u8]) {
    let dbc = project_dbc();
    let m = msg(&dbc, name);
    assert_eq!(m.encode(values).unwrap(), bytes, "{name}");
    for (signal, value) in values {
        assert!(
            close(physical(m, bytes, signal), *value, 1e-9),
            "{name}.{signal}"
        );
    }
}

/// A small deterministic generator (Knuth's MMIX LCG).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 11 ^ self.0 << 21
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

#[test]
fn round_trip_over_all_messages() {
    let dbc = project_dbc();
    let mut rng = Lcg(0x5EED);
    let mut frames = 0;
    for m in dbc.messages() {
        let mut selectors: Vec<Option<u64>> = m
            .signals
            .iter()
            .filter_map(|s| match s.multiplex {
                Multiplex::Multiplexed(n) => Some(Some(n)),
                _ => None,
            })
            .collect();
        selectors.sort();
        selectors.dedup();
        if selectors.is_empty() {
            selectors.push(None);
        }
        for selector in selectors {
            for _ in 0..200 {
                let mut values: Vec<(&str, f64, f64)> = Vec::new(); // name, raw, physical
                for s in &m.signals {
                    let raw = match (s.multiplex, selector) {
                        (Multiplex::Multiplexor, Some(n)) => n as f64,
                        (Multiplex::Multiplexed(n), sel) if Some(n) != sel => continue,
                        _ => match s.value_type {
                            ValueType::Unsigned => rng.below(1u64 << s.size) as f64,
                            ValueType::Signed => {
                                rng.below(1u64 << s.size) as f64 - (1u64 << (s.size - 1)) as f64
                            }
                            ValueType::Float32 => {
                                let f = f32::from_bits(rng.next() as u32);
                                if f.is_finite() {
                                    f64::from(f)
                                } else {
                                    1.25
                                }
                            }
                            ValueType::Float64 => {
                                let f = f64::from_bits(rng.next());
                                if f.is_finite() {
                                    f
                                } else {
                                    -2.5
                                }
                            }
                        },
                    };
                    values.push((s.name.as_str(), raw, raw * s.factor + s.offset));
                }
                let given: Vec<(&str, f64)> = values.iter().map(|(n, _, p)| (*n, *p)).collect();
                let data = m
                    .encode(&given)
                    .unwrap_or_else(|e| panic!("{}: {e}", m.name));
                assert_eq!(data.len(), m.size);
                let decoded = m.decode(&data).unwrap();
                assert_eq!(decoded.len(), values.len(), "{}", m.name);
                for ((name, raw, phys), d) in values.iter().zip(&decoded) {
                    assert_eq!(*name, d.name);
                    assert_eq!(*raw, d.raw, "{}.{name}: {data:02X?}", m.name);
                    let factor = m.signal(name).unwrap().factor.abs();
                    assert!(close(*phys, d.physical, factor * 1e-6), "{}.{name}", m.name);
                }
                // Decoded physical values encode back to the same bytes.
                let again: Vec<(&str, f64)> = decoded
                    .iter()
                    .map(|d| (d.name.as_str(), d.physical))
                    .collect();
                assert_eq!(m.encode(&again).unwrap(), data, "{}", m.name);
                frames += 1;
            }
        }
    }
    assert_eq!(
        frames,
        200 * (12 + 4),
        "twelve plain messages and four cell blocks"
    );
}

#[test]
fn random_bytes_of_any_length_never_panic() {
    let dbc = project_dbc();
    let mut rng = Lcg(7);
    for m in dbc.messages() {
        for len in 0..=12 {
            let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            match m.decode(&data) {
                Ok(values) => {
                    let again: Vec<(&str, f64)> = values
                        .iter()
                        .map(|d| (d.name.as_str(), d.physical))
                        .collect();
                    let bytes = m.encode(&again).unwrap();
                    // Debug text compares NaN (a float32 made of random bits) as equal.
                    let redecoded = m.decode(&bytes).unwrap();
                    assert_eq!(
                        format!("{redecoded:?}"),
                        format!("{values:?}"),
                        "{}",
                        m.name
                    );
                }
                Err(e) => assert!(matches!(e, DbcError::FrameTooShort { .. }), "{e}"),
            }
        }
    }
}

const HEAD: &str = "VERSION \"\"\n\nBO_ 1 M: 8 X\n";

#[rstest]
#[case::missing_colon(" SG_ S 0|8@1+ (1,0) [0|0] \"\" X\n", 4)]
#[case::bad_byte_order(" SG_ S : 0|8@2+ (1,0) [0|0] \"\" X\n", 4)]
#[case::missing_length(" SG_ S : 0@1+ (1,0) [0|0] \"\" X\n", 4)]
#[case::start_bit_overflows_u64(" SG_ S : 99999999999999999999|8@1+ (1,0) [0|0] \"\" X\n", 4)]
#[case::bad_mux_indicator(" SG_ S x1 : 0|8@1+ (1,0) [0|0] \"\" X\n", 4)]
#[case::length_too_big(" SG_ S : 0|65@1+ (1,0) [0|0] \"\" X\n", 4)]
#[case::beyond_frame(" SG_ S : 60|8@1+ (1,0) [0|0] \"\" X\n", 4)]
#[case::second_signal_bad(
    " SG_ A : 0|8@1+ (1,0) [0|0] \"\" X\n SG_ B : 8|8@1+ (1,0) [0|0 \"\" X\n",
    5
)]
#[case::unterminated_comment("\nCM_ BO_ 1 \"no end;\n", 5)]
#[case::value_table_float_key("\nVAL_ 1 S 1.5 \"x\" ;\n", 5)]
#[case::garbage("\n\u{0}\u{1}\u{7f}\n", 5)]
#[case::message_id_overflow("\nBO_ 99999999999 N: 8 X\n", 5)]
#[case::negative_size("\nBO_ 2 N: -1 X\n", 5)]
#[case::standard_id_too_big("\nBO_ 4096 N: 8 X\n", 5)]
#[case::size_too_big("\nBO_ 2 N: 65 X\n", 5)]
#[case::float_wrong_length(" SG_ F : 0|16@1- (1,0) [0|0] \"\" X\n\nSIG_VALTYPE_ 1 F : 1;\n", 4)]
fn broken_dbc_reports_a_line(#[case] tail: &str, #[case] line: usize) {
    let text = format!("{HEAD}{tail}");
    let err = Dbc::parse(&text, "broken.dbc").expect_err("must not load");
    let at = err
        .location()
        .unwrap_or_else(|| panic!("no location in {err:?}"));
    assert_eq!((at.origin.as_str(), at.line), ("broken.dbc", line), "{err}");
    assert!(at.column >= 1, "{err}");
    assert!(
        err.to_string().starts_with(&format!("broken.dbc:{line}:")),
        "{err}"
    );
}

#[test]
fn mutated_project_dbc_never_panics() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/dbc/sim-bms.dbc");
    let original = std::fs::read_to_string(path).unwrap();
    let lines = original.lines().count();
    let mut rng = Lcg(42);
    let alphabet = b" \t\n\"|@+-:;()[],.0123456789MmSG_BO_xyz";
    for _ in 0..400 {
        let mut text: Vec<u8> = original.as_bytes().to_vec();
        for _ in 0..=rng.below(3) {
            let at = rng.below(text.len() as u64) as usize;
            match rng.below(4) {
                0 => {
                    let end = (at + 1 + rng.below(8) as usize).min(text.len());
                    text.drain(at..end);
                }
                1 => text.insert(at, alphabet[rng.below(alphabet.len() as u64) as usize]),
                2 => text
                    .splice(at..at, b"99999999999999999999".iter().copied())
                    .for_each(drop),
                _ => text[at] = alphabet[rng.below(alphabet.len() as u64) as usize],
            }
        }
        let text = String::from_utf8(text).unwrap();
        match Dbc::parse(&text, "mutated.dbc") {
            Ok(dbc) => {
                for m in dbc.messages() {
                    let _ = m.decode(&[0xA5; 8]);
                    let _ = m.encode(&[]);
                }
            }
            Err(e) => {
                let at = e.location().unwrap_or_else(|| panic!("no location: {e:?}"));
                assert!(at.line >= 1 && at.line <= lines + 5, "{e}");
            }
        }
    }
}
