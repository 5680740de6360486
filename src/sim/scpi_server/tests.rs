//! Unit tests of the simulated instruments' parser and command execution.

use super::parser::*;
use super::*;
use crate::scpi::builtin_dialects;
use rstest::rstest;

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[rstest]
#[case("VOLT 5", &["VOLT"], false, &["5"])]
#[case("SOURce:VOLTage:LEVel 5 V", &["SOURCE", "VOLTAGE", "LEVEL"], false, &["5 V"])]
#[case("meas:volt?", &["MEAS", "VOLT"], true, &[])]
#[case(":SOUR:INP:STAT ON", &["SOUR", "INP", "STAT"], false, &["ON"])]
fn parses_single_commands(
    #[case] line: &str,
    #[case] mnemonics: &[&str],
    #[case] query: bool,
    #[case] params: &[&str],
) {
    let commands = parse_line(line);
    assert_eq!(
        commands,
        vec![Command {
            common: false,
            mnemonics: names(mnemonics),
            query,
            params: names(params)
        }]
    );
}

#[test]
fn header_path_carries_across_semicolons() {
    let commands = parse_line("SOUR:VOLT 5;CURR 1;:OUTP ON;*OPC?;STAT?");
    let headers: Vec<Vec<String>> = commands.iter().map(|c| c.mnemonics.clone()).collect();
    assert_eq!(
        headers,
        vec![
            names(&["SOUR", "VOLT"]),
            names(&["SOUR", "CURR"]),
            names(&["OUTP"]),
            names(&["*OPC"]),
            names(&["STAT"]),
        ]
    );
}

#[rstest]
#[case("VOLT", true)]
#[case("VOLTAGE", true)]
#[case("SOUR:VOLT", true)]
#[case("SOURCE:VOLTAGE:LEVEL:IMMEDIATE:AMPLITUDE", true)]
#[case("SOUR1:VOLT", true)]
#[case("SOUR2:VOLT", false)]
#[case("VOLTA", false)]
#[case("VOLT:PROT", false)]
#[case("LEV", false)]
fn matches_short_long_and_optional_nodes(#[case] header: &str, #[case] expected: bool) {
    let pattern = Pattern::new(
        "[SOURce]:VOLTage[:LEVel][:IMMediate][:AMPLitude]",
        Action::Voltage,
    );
    let mnemonics: Vec<String> = header.split(':').map(str::to_string).collect();
    assert_eq!(pattern.matches(&mnemonics).is_some(), expected, "{header}");
}

fn shared(dialect: &Dialect) -> Shared {
    Shared::new(
        dialect.clone(),
        Plant::new(16, 3.3, 4, 25.0),
        "SIM".into(),
        CancellationToken::new(),
    )
}

/// Every command a shipped dialect sends, on every channel it declares, is one the
/// simulated instrument understands.
#[test]
fn every_dialect_command_is_understood() {
    for dialect in builtin_dialects() {
        let shared = shared(&dialect);
        let mut commands: Vec<String> = dialect.on_connect.clone();
        commands.push(dialect.error_query.clone());
        if let Some(w) = &dialect.watchdog {
            commands.extend(w.arm.iter().map(|c| crate::scpi::render(c, Some(5.0), 1)));
            commands.extend(w.disarm.iter().cloned());
        }
        for ch in dialect.channel_numbers() {
            for (_, template) in dialect.templates() {
                let mut values = vec![Some(1.0)];
                values.extend(template.ranges.iter().map(|r| Some(r.up_to)));
                for value in values {
                    commands.extend(template.render(value, ch));
                }
            }
        }
        for command in commands {
            shared.handle_line(&command);
            let errors = &lock(&shared.state).errors;
            assert!(
                errors.is_empty(),
                "{}: `{command}` gave {errors:?}",
                dialect.id
            );
        }
    }
}

#[rstest]
#[case("(@1)", Some(Ok(vec![1])))]
#[case("(@1,3)", Some(Ok(vec![1, 3])))]
#[case("(@2:4)", Some(Ok(vec![2, 3, 4])))]
#[case("(@x)", Some(Err(-222)))]
#[case("CH1", None)]
fn channel_lists(#[case] text: &str, #[case] expected: Option<Result<Vec<u32>, i32>>) {
    assert_eq!(
        channel_list(text).map(|r| r.map_err(|(code, _)| code)),
        expected
    );
}

#[test]
fn channel_lists_stay_whole_when_parameters_are_split() {
    assert_eq!(split_outside_quotes("5,(@1,2)", ','), vec!["5", "(@1,2)"]);
}

#[rstest]
#[case("SOUR2:VOLT", Some(Some(2)))]
#[case("VOLT", Some(None))]
#[case("SOURCE3:VOLTAGE:LEVEL", Some(Some(3)))]
#[case("SOURX:VOLT", None)]
fn channel_suffixes_are_captured(#[case] header: &str, #[case] expected: Option<Option<u32>>) {
    let pattern = Pattern::new("[SOURce#]:VOLTage[:LEVel]", Action::Voltage);
    let mnemonics: Vec<String> = header.split(':').map(str::to_string).collect();
    assert_eq!(pattern.matches(&mnemonics), expected, "{header}");
}

#[rstest]
#[case(&["5"], 80.0, Ok(5.0))]
#[case(&["5 V"], 80.0, Ok(5.0))]
#[case(&["500 mV"], 80.0, Ok(0.5))]
#[case(&["MAX"], 80.0, Ok(80.0))]
#[case(&["min"], 80.0, Ok(0.0))]
#[case(&["80.0000000001"], 80.0, Ok(80.0000000001))]
#[case(&["81"], 80.0, Err(-222))]
#[case(&["-1"], 80.0, Err(-222))]
#[case(&["five"], 80.0, Err(-104))]
#[case(&["5 A"], 80.0, Err(-104))]
#[case(&[], 80.0, Err(-109))]
#[case(&["1", "2"], 80.0, Err(-108))]
fn numeric_parameters(
    #[case] params: &[&str],
    #[case] max: f64,
    #[case] expected: Result<f64, i32>,
) {
    let got = numeric(&names(params), max, "V").map_err(|(code, _)| code);
    assert_eq!(got, expected);
}

/// The simulated fault `stick_output_on`: once on, a supply's output ignores every command
/// that switches it off (in each supply dialect's own command set) and reads back on; without
/// the fault the same commands switch it off.
#[rstest]
fn a_stuck_output_ignores_switching_off(#[values(false, true)] stuck: bool) {
    for dialect in builtin_dialects()
        .into_iter()
        .filter(|d| d.role == crate::scpi::Role::Supply)
    {
        let shared = shared(&dialect);
        lock(&shared.state).output_stuck_on = stuck;
        let template = |name: &str| {
            dialect
                .templates()
                .into_iter()
                .find(|(n, _)| *n == name)
                .map(|(_, t)| t.render(None, 1))
                .unwrap_or_else(|| panic!("{}: no `{name}`", dialect.id))
        };
        let connect = dialect.on_connect.clone();
        for command in connect
            .iter()
            .chain(&template("output_on"))
            .chain(&template("output_off"))
        {
            shared.handle_line(command);
        }
        let replies: Vec<String> = template("output_query")
            .iter()
            .filter_map(|q| shared.handle_line(q))
            .collect();
        let on = replies
            .iter()
            .all(|r| matches!(r.trim(), "1" | "ON" | "on"));
        assert_eq!(on, stuck, "{}: {replies:?}", dialect.id);
        assert!(lock(&shared.state).errors.is_empty(), "{}", dialect.id);
    }
}
