//! The simulated pack as a rig file describes it (`simulation:` chemistry, state of charge,
//! ambient), and a clear located error for a bad value.

use crate::common;

use common::*;
use hilrig::plan::load_rig;
use hilrig::sim::cell::Chemistry;
use hilrig::sim::Bench;
use rstest::rstest;

/// The shipped simulated rig with its `simulation:` section extended by `extra` lines.
fn rig_with(name: &str, extra: &str) -> std::path::PathBuf {
    let dir = temp_dir(name);
    // The shipped pack lines are dropped, so that the defaults show.
    let text: String = std::fs::read_to_string(root().join("rig/sim.yaml"))
        .unwrap()
        .replace("../", &format!("{}/", root().display()))
        .lines()
        .filter(|l| {
            !["  chemistry:", "  soc:", "  ambient:"]
                .iter()
                .any(|k| l.starts_with(k))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let text = text.replace(
        "simulation:\n",
        &format!("simulation:\n{}", extra.replace('|', "\n")),
    );
    let path = dir.join("rig.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

#[rstest]
#[case::defaults("", Chemistry::Lfp, 0.50, 25.0)]
#[case::nmc_full_and_warm(
    "  chemistry: nmc|  soc: 80|  ambient: 35 °C|",
    Chemistry::Nmc,
    0.80,
    35.0
)]
#[case::lfp_empty("  chemistry: LFP|  soc: 5|", Chemistry::Lfp, 0.05, 25.0)]
#[tokio::test]
async fn the_rig_chooses_the_simulated_pack(
    #[case] extra: &str,
    #[case] chemistry: Chemistry,
    #[case] soc: f64,
    #[case] ambient: f64,
) {
    let path = rig_with(&format!("pack-{}", extra.len()), extra);
    let rig = load_rig(&path).unwrap_or_else(|e| panic!("{e}")).value;
    let bench = Bench::start(&rig, &path).await.unwrap();
    let s = bench.plant.snapshot();
    assert_eq!(s.chemistry, chemistry);
    assert_eq!(s.cell_models.len(), 16);
    for cell in &s.cell_models {
        assert!((cell.soc - soc).abs() < 1e-9, "{}", cell.soc);
        assert!((cell.temperature - ambient).abs() < 1e-9);
    }
    assert!((s.room_ambient - ambient).abs() < 1e-9);
    // What the BMS front end sees follows the chemistry's rest voltage at that charge.
    let ocv = chemistry.ocv(soc);
    assert!(
        s.cells.iter().all(|v| (v - ocv).abs() < 1e-6),
        "{:?} vs {ocv}",
        s.cells
    );
}

#[rstest]
#[case::soc_above_100("  soc: 150|", "150 is not a percentage from 0 to 100")]
#[case::unknown_chemistry("  chemistry: nca|", "nca")]
#[case::ambient_without_unit("  ambient: 25|", "unit")]
fn a_bad_pack_value_names_file_line_and_column(#[case] extra: &str, #[case] message: &str) {
    let path = rig_with(&format!("bad-pack-{}", extra.len()), extra);
    let e = load_rig(&path).unwrap_err().to_string();
    assert!(e.contains("rig.yaml:6:"), "{e}");
    assert!(e.contains(message), "{e}");
}
