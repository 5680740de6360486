use rstest::rstest;

use super::*;

fn frame(id: u32, extended: bool, data: &[u8]) -> Frame {
    Frame {
        id,
        extended,
        data: data.to_vec(),
        kind: FrameKind::Classic,
    }
}

fn kind(frame: Frame, kind: FrameKind) -> Frame {
    Frame { kind, ..frame }
}

fn data_frame(id: u32, extended: bool, data: &[u8], ts: Option<u16>) -> Incoming {
    Incoming::Frame(SlcanFrame {
        frame: frame(id, extended, data),
        timestamp_ms: ts,
    })
}

const REMOTE: FrameKind = FrameKind::Remote;
const FD: FrameKind = FrameKind::Fd {
    brs: false,
    esi: false,
};
const BRS: FrameKind = FrameKind::Fd {
    brs: true,
    esi: false,
};

#[rstest]
#[case::standard("t1232AABB", data_frame(0x123, false, &[0xAA, 0xBB], None))]
#[case::standard_empty("t7FF0", data_frame(0x7FF, false, &[], None))]
#[case::lowercase_hex("t1ab2aabb", data_frame(0x1AB, false, &[0xAA, 0xBB], None))]
#[case::eight_bytes("t00080011223344556677", data_frame(0, false, &[0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77], None))]
#[case::extended("T1F3344552DEAD", data_frame(0x1F33_4455, true, &[0xDE, 0xAD], None))]
#[case::timestamp("t1231FF1234", data_frame(0x123, false, &[0xFF], Some(0x1234)))]
#[case::timestamp_max("t1230EA5F", data_frame(0x123, false, &[], Some(59_999)))]
#[case::extended_timestamp("T000000012AB00FFFF", data_frame(1, true, &[0xAB, 0x00], Some(0xFFFF)))]
#[case::ok("", Incoming::Ok)]
#[case::ack_std("z", Incoming::TxAck)]
#[case::ack_ext("Z", Incoming::TxAck)]
#[case::status("F24", Incoming::Status(0x24))]
#[case::state_bus_off("sb256256", Incoming::State { state: BusState::BusOff, rx_errors: 256, tx_errors: 256 })]
#[case::state_active("sa057033", Incoming::State { state: BusState::ErrorActive, rx_errors: 57, tx_errors: 33 })]
#[case::version("V1013", Incoming::Version("1013".into()))]
#[case::serial("NA123", Incoming::Serial("A123".into()))]
fn decodes(#[case] line: &str, #[case] want: Incoming) {
    assert_eq!(decode_line(line.as_bytes()), Ok(want));
}

#[rstest]
#[case::remote("r1234", 0x123, false, 4, None)]
#[case::remote_ext("R1F3344558", 0x1F33_4455, true, 8, None)]
#[case::remote_ts("r12300010", 0x123, false, 0, Some(0x10))]
fn decodes_remote(
    #[case] line: &str,
    #[case] id: u32,
    #[case] extended: bool,
    #[case] len: usize,
    #[case] ts: Option<u16>,
) {
    let Ok(Incoming::Frame(f)) = decode_line(line.as_bytes()) else {
        panic!("{line}")
    };
    assert_eq!(f.frame, kind(frame(id, extended, &vec![0; len]), REMOTE));
    assert_eq!(f.timestamp_ms, ts);
}

#[rstest]
#[case::fd_eight("d1238", 8, false, false)]
#[case::fd_12("d1239", 12, false, false)]
#[case::fd_16("d123A", 16, false, false)]
#[case::fd_20("d123B", 20, false, false)]
#[case::fd_24("d123C", 24, false, false)]
#[case::fd_32("d123D", 32, false, false)]
#[case::fd_48("d123E", 48, false, false)]
#[case::fd_64("d123F", 64, false, false)]
#[case::brs_64("b123F", 64, true, false)]
#[case::ext_fd("D1F334455F", 64, false, true)]
#[case::ext_brs("B1F3344559", 12, true, true)]
fn decodes_fd(#[case] head: &str, #[case] len: usize, #[case] brs: bool, #[case] extended: bool) {
    let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
    let hex: String = data.iter().map(|b| format!("{b:02X}")).collect();
    let line = format!("{head}{hex}");
    let Ok(Incoming::Frame(f)) = decode_line(line.as_bytes()) else {
        panic!("{line}")
    };
    assert_eq!(
        (f.frame.kind, f.frame.extended),
        (FrameKind::Fd { brs, esi: false }, extended)
    );
    assert_eq!(f.frame.data, data);
    // And back, byte for byte.
    assert_eq!(encode_frame(&f).unwrap(), format!("{line}\r"));
}

#[rstest]
#[case::unknown("x123", SlcanLineError::Unknown('x'))]
#[case::short_id("t12", SlcanLineError::Truncated("t12".into()))]
#[case::no_dlc("t123", SlcanLineError::Truncated("t123".into()))]
#[case::bad_id("tG232AABB", SlcanLineError::BadId("G23".into()))]
#[case::id_range("t8001AA", SlcanLineError::IdRange { id: 0x800, max: 0x7FF })]
#[case::ext_id_range("T200000000", SlcanLineError::IdRange { id: 0x2000_0000, max: 0x1FFF_FFFF })]
#[case::classic_dlc_9("t1239", SlcanLineError::BadDlc { digit: '9', kind: "classic" })]
#[case::remote_dlc_f("r123F", SlcanLineError::BadDlc { digit: 'F', kind: "remote" })]
#[case::dlc_not_hex("t123G", SlcanLineError::BadDlc { digit: 'G', kind: "classic" })]
#[case::missing_data("t1232AA", SlcanLineError::DataLength { len: 2, got: 2, want: 4, want_ts: 8 })]
#[case::extra_data("t1231AABB", SlcanLineError::DataLength { len: 1, got: 4, want: 2, want_ts: 6 })]
#[case::data_not_hex("t1231ZZ", SlcanLineError::NotHex("ZZ".into()))]
#[case::ts_not_hex("t1231AAXYZW", SlcanLineError::NotHex("XYZW".into()))]
#[case::status_short("F2", SlcanLineError::BadStatus("F2".into()))]
#[case::status_not_hex("FZZ", SlcanLineError::BadStatus("FZZ".into()))]
#[case::state_code("sx000000", SlcanLineError::BadState("sx000000".into()))]
#[case::state_digits("sa00000", SlcanLineError::BadState("sa00000".into()))]
#[case::control("t123\u{1}", SlcanLineError::NotText)]
#[case::ack_with_text("z1", SlcanLineError::Unknown('z'))]
fn rejects(#[case] line: &str, #[case] want: SlcanLineError) {
    assert_eq!(decode_line(line.as_bytes()), Err(want));
}

#[test]
fn rejects_non_ascii_bytes() {
    assert_eq!(
        decode_line(b"t123\xFF"),
        Err(SlcanLineError::NotText),
        "bytes above 0x7E"
    );
}

#[rstest]
#[case::classic(frame(0x123, false, &[0xAA, 0xBB]), None, "t1232AABB\r")]
#[case::extended(frame(0x1F33_4455, true, &[]), None, "T1F3344550\r")]
#[case::remote(kind(frame(0x123, false, &[0; 3]), REMOTE), None, "r1233\r")]
#[case::remote_ext(kind(frame(0x1, true, &[0; 8]), REMOTE), None, "R000000018\r")]
#[case::fd_small(kind(frame(0x10, false, &[1]), FD), None, "d010101\r")]
#[case::brs_ext(kind(frame(0x10, true, &[0; 12]), BRS), None, "B000000109000000000000000000000000\r")]
#[case::timestamp(frame(0x7FF, false, &[0xFF]), Some(59_999), "t7FF1FFEA5F\r")]
fn encodes(#[case] frame: Frame, #[case] ts: Option<u16>, #[case] want: &str) {
    let f = SlcanFrame {
        frame,
        timestamp_ms: ts,
    };
    let line = encode_frame(&f).unwrap();
    assert_eq!(line, want);
    // Round trip through the decoder.
    let back = decode_line(line.trim_end_matches('\r').as_bytes()).unwrap();
    assert_eq!(back, Incoming::Frame(f));
}

#[rstest]
#[case::classic_nine(frame(0x1, false, &[0; 9]))]
#[case::fd_nine(kind(frame(0x1, false, &[0; 9]), FD))]
#[case::error_frame(kind(frame(0x4, false, &[0; 8]), FrameKind::Error))]
#[case::std_range(frame(0x800, false, &[]))]
#[case::ext_range(frame(0x2000_0000, true, &[]))]
fn refuses_to_encode(#[case] frame: Frame) {
    let f = SlcanFrame {
        frame,
        timestamp_ms: None,
    };
    assert!(matches!(encode_frame(&f), Err(SlcanLineError::Encode(_))));
}

#[test]
fn random_lines_never_panic() {
    let alphabet = b"tTrRdDbBzZFsVN0123456789abcdefABCDEFGx\x07 ";
    let mut state: u64 = 7;
    for _ in 0..20_000 {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let len = (state >> 58) as usize;
        let line: Vec<u8> = (0..len)
            .map(|i| {
                let r = state.rotate_left(i as u32 * 7);
                alphabet[(r >> 33) as usize % alphabet.len()]
            })
            .collect();
        if let Ok(Incoming::Frame(f)) = decode_line(&line) {
            let again = encode_frame(&f).unwrap();
            assert_eq!(
                decode_line(again.trim_end_matches('\r').as_bytes()),
                Ok(Incoming::Frame(f))
            );
        }
    }
}

#[rstest]
#[case(0x00, BusState::ErrorActive)]
#[case(0x04, BusState::ErrorWarning)]
#[case(0x20, BusState::ErrorPassive)]
#[case(0x24, BusState::ErrorPassive)]
#[case(0x80, BusState::ErrorActive)]
fn status_flags(#[case] flags: u8, #[case] want: BusState) {
    assert_eq!(state_from_status(flags), want);
}

#[rstest]
#[case(10_000, Some("S0"))]
#[case(125_000, Some("S4"))]
#[case(500_000, Some("S6"))]
#[case(800_000, Some("S7"))]
#[case(1_000_000, Some("S8"))]
#[case(83_333, None)]
fn bitrates(#[case] rate: u32, #[case] want: Option<&str>) {
    assert_eq!(bitrate_command(rate), want);
}

#[test]
fn parses_endpoints() {
    let c = SlcanConfig::parse(
        "slcan:/dev/ttyACM0?bitrate=500000&variant=lawicel&timestamps=1&baud=921600",
    )
    .unwrap();
    assert_eq!(c.port, "/dev/ttyACM0");
    assert_eq!((c.bitrate, c.baud), (500_000, 921_600));
    assert_eq!(c.variant, SlcanVariant::Lawicel);
    assert!(c.timestamps && !c.listen_only && !c.brs);
    assert_eq!(c.status_poll, Some(Duration::from_millis(1000)));

    let c = SlcanConfig::parse("slcan:COM3?bitrate=1000000&variant=CANable&brs=1").unwrap();
    assert_eq!(
        (c.port.as_str(), c.variant),
        ("COM3", SlcanVariant::Canable)
    );
    assert!(c.brs && c.status_poll.is_none());

    let c = SlcanConfig::parse(
        "slcan:/dev/x?bitrate=250000&variant=lawicel&status_poll_ms=0&timeout_ms=50",
    )
    .unwrap();
    assert_eq!(c.status_poll, None);
    assert_eq!(c.reply_timeout, Duration::from_millis(50));
}

#[rstest]
#[case::no_bitrate("slcan:/dev/ttyACM0", "bitrate")]
#[case::odd_bitrate("slcan:/dev/ttyACM0?bitrate=83333", "83333")]
#[case::not_number("slcan:/dev/ttyACM0?bitrate=fast", "fast")]
#[case::variant("slcan:/dev/ttyACM0?bitrate=500000&variant=peak", "peak")]
#[case::flag("slcan:/dev/ttyACM0?bitrate=500000&timestamps=maybe", "0 or 1")]
#[case::unknown("slcan:/dev/ttyACM0?bitrate=500000&speed=1", "speed")]
#[case::no_value("slcan:/dev/ttyACM0?bitrate", "=value")]
fn rejects_endpoints(#[case] endpoint: &str, #[case] mentions: &str) {
    let err = SlcanConfig::parse(endpoint).unwrap_err().to_string();
    assert!(err.contains(mentions), "{err}");
    assert!(err.contains(endpoint), "{err}");
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn clock_keeps_the_wire_spacing_of_a_burst() {
    let base = Instant::now();
    let mut clock = AdapterClock::new();
    // Three frames 10 ms apart on the wire, read together 30 ms after the first.
    let a = clock.map(1000, base);
    let read = base + ms(30);
    let b = clock.map(1010, read);
    let c = clock.map(1020, read);
    let near = |d: Duration, want: Duration| d.abs_diff(want) < Duration::from_micros(100);
    assert_eq!(a, base);
    assert!(near(b - a, ms(10)), "{:?}", b - a);
    assert!(near(c - a, ms(20)), "{:?}", c - a);
    assert!(c <= read);
}

#[test]
fn clock_unwraps_at_sixty_seconds() {
    let base = Instant::now();
    let mut clock = AdapterClock::new();
    clock.map(59_990, base);
    let t = clock.map(5, base + ms(15));
    assert_eq!(t - base, ms(15));
}

#[test]
fn clock_counts_wraps_hidden_in_a_long_silence() {
    let base = Instant::now();
    let mut clock = AdapterClock::new();
    clock.map(100, base);
    // 150.2 s later the counter shows 30_300: two wraps and 30.2 s.
    let t = clock.map(30_300, base + ms(150_200));
    assert_eq!(t - base, ms(150_200));
}

#[test]
fn clock_never_maps_after_the_read_time() {
    let base = Instant::now();
    let mut clock = AdapterClock::new();
    clock.map(0, base + ms(5)); // first frame arrived late
    let t = clock.map(10, base + ms(12)); // this one only 2 ms late... but first was later
    assert!(t <= base + ms(12));
    // An adapter clock running fast is pulled back to the host.
    let t = clock.map(1000, base + ms(900));
    assert!(t <= base + ms(900));
}

#[test]
fn clock_ignores_out_of_range_stamps() {
    let base = Instant::now();
    let mut clock = AdapterClock::new();
    assert_eq!(clock.map(60_000, base), base);
    assert_eq!(clock.map(0xFFFF, base + ms(1)), base + ms(1));
}
