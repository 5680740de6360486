use super::*;
use rstest::rstest;

#[test]
fn every_builtin_dialect_loads() {
    for (id, text) in BUILTIN {
        let dialect = Dialect::from_yaml(text, &format!("builtin:{id}")).unwrap();
        assert_eq!(dialect.id, *id);
    }
    assert_eq!(builtin_dialects().len(), BUILTIN.len());
    assert!(builtin_dialect("no-such-model").is_none());
}

#[test]
fn ea_psb_is_read_with_units() {
    let d = builtin_dialect("ea-psb").unwrap();
    assert_eq!(d.role, Role::Supply);
    assert_eq!(d.default_port, 5025);
    assert_eq!((d.ranges.max_voltage, d.ranges.max_current), (80.0, 60.0));
    assert!(d.settings_require_lock);
    assert!(d.on_connect.iter().any(|c| c == "SYST:LOCK 1"));
    assert_eq!(d.replies.number, NumberFormat::WithUnits);
    assert_eq!(
        d.replies.measure_all,
        Some(MeasureFields {
            voltage: 0,
            current: 1
        })
    );
    let w = d
        .watchdog
        .as_ref()
        .expect("the simulated bench's supply has a watchdog");
    assert_eq!(w.arm.len(), 2);
    assert_eq!(d.origin, "builtin:ea-psb");
}

#[test]
fn rigol_dl3000_is_a_load_on_port_5555() {
    let d = builtin_dialect("rigol-dl3000").unwrap();
    assert_eq!(d.role, Role::Load);
    assert_eq!(d.default_port, 5555);
    assert_eq!((d.ranges.max_voltage, d.ranges.max_current), (150.0, 40.0));
    assert_eq!(
        d.commands.output_on.as_ref().map(|t| t.steps.clone()),
        Some(vec![":SOUR:INP:STAT ON".to_string()])
    );
    assert!(d.on_connect.iter().any(|c| c == ":SOUR:FUNC CURR"));
    assert_eq!(d.inter_command_delay, Duration::from_millis(10));
    assert!(d.accuracy.voltage.set.is_none());
}

#[rstest]
#[case(
    "EA Elektro-Automatik GmbH & Co. KG,PSB 9080-60 DT,2080460001,V2.12",
    "ea-psb",
    true
)]
#[case("ea elektro-automatik,psb  9080-60,1,2", "ea-psb", true)]
#[case("EA Elektro-Automatik,PSB 9200-210,1,2", "ea-psb", false)]
#[case(
    "RIGOL TECHNOLOGIES,DL3021A,DL3A204800001,00.01.02.00.01",
    "rigol-dl3000",
    true
)]
#[case("RIGOL TECHNOLOGIES,DP832,DP8C0001,00.01.14", "rigol-dl3000", false)]
#[case("", "rigol-dl3000", false)]
fn identity_matching(#[case] idn: &str, #[case] id: &str, #[case] matches: bool) {
    assert_eq!(builtin_dialect(id).unwrap().matches_identity(idn), matches);
}

#[test]
fn accuracy_is_gain_plus_offset() {
    let spec = AccuracySpec {
        gain: 0.001,
        offset: 0.08,
    };
    assert!((spec.uncertainty(-50.0) - 0.13).abs() < 1e-12);
}

#[rstest]
#[case("SOUR:VOLT {v}", Some(58.4), 1, "SOUR:VOLT 58.4")]
#[case("VOLT {v},(@{ch})", Some(5.0), 2, "VOLT 5,(@2)")]
#[case(":OUTP CH{ch},ON", None, 3, ":OUTP CH3,ON")]
fn renders_templates(
    #[case] template: &str,
    #[case] v: Option<f64>,
    #[case] ch: u32,
    #[case] text: &str,
) {
    assert_eq!(render(template, v, ch), text);
}

const MINIMAL: &str = r#"
id: lab-supply
maker: ACME
model: PS-1
role: supply
default_port: 5025
inter_command_delay: 5 ms
commands:
  set_voltage: "VOLT {v}"
  set_current: "CURR {v}"
  output_on: "OUTP 1"
  output_off: "OUTP 0"
  output_query: "OUTP?"
  measure_voltage: "MEAS:VOLT?"
  measure_current: "MEAS:CURR?"
replies: {boolean: one_zero, number: nr3}
ranges: {max_voltage: 30, max_current: 3 A}
accuracy:
  voltage: {measure: {gain: 0.05 %, offset: 10 mV}}
  current: {measure: {gain: 0.001, offset: 0.002}}
"#;

#[test]
fn a_lab_dialect_loads_from_text() {
    let d = Dialect::from_yaml(MINIMAL, "rig/dialects/lab-supply.yaml").unwrap();
    assert_eq!(d.terminator, "\n");
    assert_eq!(d.error_query, "SYST:ERR?");
    assert_eq!(d.inter_command_delay, Duration::from_millis(5));
    assert_eq!(d.ranges.max_current, 3.0);
    assert!((d.accuracy.voltage.measure.gain - 0.0005).abs() < 1e-12);
    assert!((d.accuracy.voltage.measure.offset - 0.010).abs() < 1e-12);
    assert_eq!(d.origin, "rig/dialects/lab-supply.yaml");
}

#[rstest]
#[case("set_voltage: \"VOLT {v}\"", "set_voltage: \"VOLT 5\"", "needs a {v}")]
#[case("output_on: \"OUTP 1\"", "output_on: \"OUTP {v}\"", "takes no value")]
#[case(
    "output_on: \"OUTP 1\"",
    "output_on: \"OUTP {x}\"",
    "unknown placeholder"
)]
#[case("  output_query: \"OUTP?\"\n", "", "output_query` is missing")]
#[case("role: supply", "role: chamber", "role")]
#[case("max_current: 3 A", "max_current: 3 V", "expected a value in A")]
#[case("default_port: 5025", "default_port: 5025\nwatchdgo: null", "watchdgo")]
#[case(
    "inter_command_delay: 5 ms",
    "inter_command_delay: 5 parsecs",
    "not a duration"
)]
fn bad_dialects_say_what_is_wrong(#[case] from: &str, #[case] to: &str, #[case] expected: &str) {
    let text = MINIMAL.replace(from, to);
    assert_ne!(text, MINIMAL, "test case does not change the text");
    let error = Dialect::from_yaml(&text, "lab.yaml").unwrap_err();
    let message = error.to_string();
    assert!(message.contains("lab.yaml"), "{message}");
    assert!(message.contains(expected), "{message}");
}
