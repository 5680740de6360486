//! Firmware images for the simulated target: YAML files that configure the reference
//! firmware core (`sim-bms`), identified by their SHA-256.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::plan::fixture::QuantityValue;
use crate::plan::InputError;
use crate::units::{Dimension, Seconds, Volts};

/// A firmware image file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageFile {
    image: String,
    target: String,
    version: String,
    cells: u8,
    afe_period: Seconds,
    can_cycle: Seconds,
    state_request_timeout: Seconds,
    protections: BTreeMap<String, ImageProtection>,
    #[serde(default)]
    defects: DefectsFile,
    /// What the firmware announces to an inverter (absent: it speaks no inverter protocol).
    #[serde(default)]
    inverter: Option<super::inverter::ImageInverter>,
    /// The front end's hardware protection (absent: none).
    #[serde(default)]
    afe: Option<ImageAfe>,
    /// Passive cell balancing (absent: none).
    #[serde(default)]
    balancing: Option<ImageBalancing>,
    /// The state-of-charge estimator (absent: the firmware estimates none).
    #[serde(default)]
    soc: Option<ImageSoc>,
}

/// `balancing:` in an image: passive balancing (`sim_bms::balance`) and its resistors.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageBalancing {
    /// A cell this far above the lowest starts to bleed.
    start_spread: QuantityValue,
    /// A bleeding cell stops below this spread above the lowest.
    stop_spread: QuantityValue,
    /// `charging`, `rest` or `both`.
    when: String,
    /// Bleed current through one balancing resistor.
    current: QuantityValue,
    /// Most cells bleeding at once.
    max_cells: u8,
}

impl ImageBalancing {
    fn config(&self) -> Result<sim_bms::balance::BalanceConfig, String> {
        let mv = |q: &QuantityValue, key: &str| -> Result<u16, String> {
            if q.0.dim != Dimension::Voltage || !(0.0..=1.0).contains(&q.0.value) {
                return Err(format!("balancing.{key}: a voltage of 0 to 1 V expected"));
            }
            Ok((q.0.value * 1000.0).round() as u16)
        };
        let start_spread_mv = mv(&self.start_spread, "start_spread")?;
        let stop_spread_mv = mv(&self.stop_spread, "stop_spread")?;
        if stop_spread_mv > start_spread_mv {
            return Err(format!(
                "balancing: stop_spread {stop_spread_mv} mV is above start_spread {start_spread_mv} mV"
            ));
        }
        let when = match self.when.as_str() {
            "charging" => sim_bms::balance::When::Charging,
            "rest" => sim_bms::balance::When::Rest,
            "both" => sim_bms::balance::When::Both,
            other => {
                return Err(format!(
                    "balancing.when: `{other}` is not `charging`, `rest` or `both`"
                ))
            }
        };
        if self.current.0.dim != Dimension::Current
            || !(self.current.0.value > 0.0 && self.current.0.value <= 5.0)
        {
            return Err("balancing.current: a current above 0 and at most 5 A expected".into());
        }
        if self.max_cells == 0 {
            return Err("balancing.max_cells: at least 1 expected".into());
        }
        Ok(sim_bms::balance::BalanceConfig {
            start_spread_mv,
            stop_spread_mv,
            when,
            max_cells: self.max_cells,
            bleed_ma: (self.current.0.value * 1000.0).round() as u32,
        })
    }
}

/// `soc:` in an image: the estimator's settings (`sim_bms::soc`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageSoc {
    /// Capacity the estimator counts against.
    capacity: QuantityValue,
    /// Rest time before the OCV correction.
    rest_after: Seconds,
    /// Largest current that counts as rest (default 200 mA).
    #[serde(default)]
    rest_current: Option<QuantityValue>,
    /// Rest voltage of a cell against state of charge: `[percent, volts]` pairs, ascending.
    ocv: Vec<(f64, Volts)>,
}

impl ImageSoc {
    fn config(&self) -> Result<sim_bms::soc::SocConfig, String> {
        let cap = self.capacity.0;
        if cap.dim != Dimension::Charge || !(cap.value > 0.0 && cap.value < 4_000_000.0) {
            return Err("soc.capacity: a positive charge (Ah) up to 4000 kAh expected".into());
        }
        let rest = match self.rest_current {
            None => 0.2,
            Some(q) if q.0.dim == Dimension::Current && q.0.value >= 0.0 => q.0.value,
            Some(_) => return Err("soc.rest_current: a current of 0 A or more expected".into()),
        };
        let n = self.ocv.len();
        if !(2..=sim_bms::soc::MAX_OCV_POINTS).contains(&n) {
            return Err(format!(
                "soc.ocv: 2 to {} points expected, {n} given",
                sim_bms::soc::MAX_OCV_POINTS
            ));
        }
        let mut ocv = [sim_bms::soc::OcvPoint::default(); sim_bms::soc::MAX_OCV_POINTS];
        for (i, (pct, v)) in self.ocv.iter().enumerate() {
            if !((0.0..=100.0).contains(pct) && v.0 > 0.0 && v.0 < 65.0) {
                return Err(format!(
                    "soc.ocv point {}: a percentage 0..100 and a voltage 0..65 V expected",
                    i + 1
                ));
            }
            ocv[i] = sim_bms::soc::OcvPoint {
                soc_permille: (pct * 10.0).round() as u16,
                mv: (v.0 * 1000.0).round() as u16,
            };
        }
        if ocv[..n]
            .windows(2)
            .any(|w| w[1].soc_permille <= w[0].soc_permille || w[1].mv <= w[0].mv)
        {
            return Err("soc.ocv: percentages and voltages must both rise point to point".into());
        }
        Ok(sim_bms::soc::SocConfig {
            capacity_mah: (cap.value * 1000.0).round() as u32,
            rest_after_ms: ms(self.rest_after),
            rest_current_ma: (rest * 1000.0).round().min(i32::MAX as f64) as i32,
            ocv,
            ocv_len: n as u8,
        })
    }
}

/// `afe:` in an image: the front end's hardware protection ([`super::afe`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageAfe {
    /// Short circuit in discharge.
    scd: ImageScd,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageScd {
    trip: QuantityValue,
    delay: Seconds,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageProtection {
    trip: QuantityValue,
    release: QuantityValue,
    delay: Seconds,
    /// How long the value must stay back past the release level before the fault clears
    /// (default 0 s).
    #[serde(default)]
    release_delay: Option<Seconds>,
    #[serde(default)]
    latching: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DefectsFile {
    #[serde(default)]
    no_hysteresis: bool,
    #[serde(default)]
    wrong_cell_index: bool,
    #[serde(default)]
    ignore_ot_in_charge: bool,
    #[serde(default)]
    uv_latch_never_releases: bool,
    #[serde(default)]
    no_warning_output: bool,
    /// The balancing switch of the high cell's neighbour is driven.
    #[serde(default)]
    balance_wrong_cell: bool,
    /// Balancing never starts.
    #[serde(default)]
    balance_never: bool,
}

/// A loaded image: the core configuration plus its identity.
#[derive(Debug, Clone)]
pub struct FirmwareImage {
    /// Image id.
    pub id: String,
    /// Version string (`major.minor.patch`).
    pub version: String,
    /// SHA-256 of the image file, hex.
    pub sha256: String,
    /// The configuration the core runs.
    pub config: sim_bms::Config,
    /// The inverter side's configuration, when the image speaks to an inverter.
    pub inverter: Option<sim_bms::pylon::InverterConfig>,
    /// The front end's hardware short-circuit comparator, when the image programs one.
    pub afe: Option<super::afe::ScdConfig>,
    /// The state-of-charge estimator's settings, when the image has one.
    pub soc: Option<sim_bms::soc::SocConfig>,
}

impl FirmwareImage {
    /// Load and check an image file.
    pub fn load(path: &Path) -> Result<Self, InputError> {
        let bytes = std::fs::read(path)
            .map_err(|e| InputError::file(path, format!("cannot read firmware image: {e}")))?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let f: ImageFile =
            serde_saphyr::from_str(&text).map_err(|e| InputError::from_yaml(path, &text, &e))?;
        let err = |m: String| InputError::file(path, m);
        if f.target != "sim-bms" {
            return Err(err(format!("image target `{}` is not `sim-bms`", f.target)));
        }
        let version = parse_version(&f.version)
            .ok_or_else(|| err(format!("version `{}` is not major.minor.patch", f.version)))?;
        let prot =
            |key: &str, dim: Dimension, scale: f64| -> Result<sim_bms::Protection, InputError> {
                let p = f
                    .protections
                    .get(key)
                    .ok_or_else(|| err(format!("protection `{key}` missing")))?;
                for q in [p.trip.0, p.release.0] {
                    if q.dim != dim {
                        return Err(err(format!("{key}: {} expected", dim.name())));
                    }
                }
                Ok(sim_bms::Protection {
                    trip: (p.trip.0.value * scale).round() as i32,
                    release: (p.release.0.value * scale).round() as i32,
                    delay_ms: ms(p.delay),
                    release_delay_ms: p.release_delay.map_or(0, ms),
                    latching: p.latching,
                })
            };
        let config = sim_bms::Config {
            cells: f.cells,
            afe_period_ms: ms(f.afe_period).max(1),
            can_cycle_ms: ms(f.can_cycle).max(1),
            state_request_timeout_ms: ms(f.state_request_timeout),
            ov: prot("ov", Dimension::Voltage, 1000.0)?,
            uv: prot("uv", Dimension::Voltage, 1000.0)?,
            otc: prot("otc", Dimension::Temperature, 10.0)?,
            otd: prot("otd", Dimension::Temperature, 10.0)?,
            utc: prot("utc", Dimension::Temperature, 10.0)?,
            occ: prot("occ", Dimension::Current, 1000.0)?,
            ocd: prot("ocd", Dimension::Current, 1000.0)?,
            version,
            balance: f
                .balancing
                .as_ref()
                .map(|b| b.config())
                .transpose()
                .map_err(err)?,
            defects: sim_bms::Defects {
                no_hysteresis: f.defects.no_hysteresis,
                wrong_cell_index: f.defects.wrong_cell_index,
                ignore_ot_in_charge: f.defects.ignore_ot_in_charge,
                uv_latch_never_releases: f.defects.uv_latch_never_releases,
                no_warning_output: f.defects.no_warning_output,
                balance: sim_bms::balance::BalanceDefects {
                    wrong_cell: f.defects.balance_wrong_cell,
                    never: f.defects.balance_never,
                },
            },
        };
        if config.cells == 0 || config.cells as usize > sim_bms::MAX_CELLS {
            return Err(err(format!("cells must be 1..{}", sim_bms::MAX_CELLS)));
        }
        let inverter = f
            .inverter
            .as_ref()
            .map(|i| i.config().map_err(err))
            .transpose()?;
        let afe = match &f.afe {
            None => None,
            Some(a) => {
                if a.scd.trip.0.dim != Dimension::Current || a.scd.trip.0.value <= 0.0 {
                    return Err(err("afe.scd.trip: a positive current expected".into()));
                }
                if !(a.scd.delay.0 >= 0.0 && a.scd.delay.0 <= 10.0) {
                    return Err(err("afe.scd.delay: 0 to 10 s expected".into()));
                }
                Some(super::afe::ScdConfig {
                    trip_a: a.scd.trip.0.value,
                    delay: std::time::Duration::from_secs_f64(a.scd.delay.0),
                })
            }
        };
        let soc = f
            .soc
            .as_ref()
            .map(|s| s.config().map_err(err))
            .transpose()?;
        Ok(Self {
            afe,
            soc,
            inverter,
            id: f.image,
            version: f.version,
            sha256: hex(&Sha256::digest(&bytes)),
            config,
        })
    }

    /// The first four bytes of the SHA-256 read as a little-endian number: encoded into
    /// the little-endian `ImageHash` signal, the frame carries those bytes in hash order.
    pub fn hash_prefix(&self) -> u32 {
        crate::flash::manifest::hash_prefix(&self.sha256).unwrap_or(0)
    }
}

/// The list of firmware images shipped for a target (`firmware-under-test/manifest.yaml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The images.
    pub images: Vec<ManifestEntry>,
}

/// One image in the manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestEntry {
    /// Image id (the `image:` inside the file).
    pub id: String,
    /// Version (the `version:` inside the file).
    pub version: String,
    /// Target the image runs on (`sim-bms` for the simulated BMS).
    pub target: String,
    /// File format (`sim-yaml` for the simulated target).
    pub format: String,
    /// File name, relative to the manifest.
    pub file: String,
    /// SHA-256 of the file, lower-case hex.
    pub sha256: String,
    /// For a seeded-defect image: what is wrong and which test should catch it.
    #[serde(default)]
    pub defect: Option<SeededDefect>,
}

/// A deliberately planted defect and the test meant to find it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeededDefect {
    /// What the image does wrong.
    pub summary: String,
    /// The check that should fail on this image (test catalogue wording).
    pub caught_by: String,
}

impl Manifest {
    /// Read a manifest file.
    pub fn load(path: &Path) -> Result<Self, InputError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| InputError::file(path, format!("cannot read firmware manifest: {e}")))?;
        serde_saphyr::from_str(&text).map_err(|e| InputError::from_yaml(path, &text, &e))
    }

    /// Check every entry against its file (hash, id, version, target, format); returns one
    /// message per problem, empty when all is well. `path` is the manifest's own path.
    pub fn verify(&self, path: &Path) -> Vec<String> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut problems = Vec::new();
        for e in &self.images {
            let file = dir.join(&e.file);
            let at = format!("{} (entry `{}`)", path.display(), e.id);
            if e.format != "sim-yaml" {
                problems.push(format!(
                    "{at}: format `{}` is not `sim-yaml`, the only format of the simulated target",
                    e.format
                ));
            }
            let bytes = match std::fs::read(&file) {
                Ok(b) => b,
                Err(err) => {
                    problems.push(format!("{at}: cannot read {}: {err}", file.display()));
                    continue;
                }
            };
            let actual = hex(&Sha256::digest(&bytes));
            if actual != e.sha256.to_ascii_lowercase() {
                problems.push(format!(
                    "{at}: sha256 {} does not match the file {} ({actual}); update the manifest if the change is intended",
                    e.sha256,
                    file.display()
                ));
            }
            match FirmwareImage::load(&file) {
                Ok(img) => {
                    if img.id != e.id || img.version != e.version {
                        problems.push(format!(
                            "{at}: the file says image `{}` version {}, the manifest `{}` version {}",
                            img.id, img.version, e.id, e.version
                        ));
                    }
                    if e.target != "sim-bms" {
                        problems.push(format!(
                            "{at}: target `{}` is not `sim-bms`, the target the file is built for",
                            e.target
                        ));
                    }
                }
                Err(err) => problems.push(format!("{at}: {err}")),
            }
        }
        problems
    }

    /// The entry for an image id.
    pub fn image(&self, id: &str) -> Option<&ManifestEntry> {
        self.images.iter().find(|e| e.id == id)
    }
}

fn ms(s: Seconds) -> u32 {
    (s.0 * 1000.0).round().clamp(0.0, u32::MAX as f64) as u32
}

fn parse_version(v: &str) -> Option<(u8, u8, u8)> {
    let mut it = v.split('.').map(|p| p.parse::<u8>().ok());
    let r = (it.next()??, it.next()??, it.next()??);
    it.next().is_none().then_some(r)
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("{start_spread: 30 mV, stop_spread: 10 mV, when: both, current: 100 mA, max_cells: 4}", Ok((30, 10, 100)))]
    #[case(
        "{start_spread: 30 mV, stop_spread: 40 mV, when: both, current: 100 mA, max_cells: 4}",
        Err("stop_spread 40 mV is above start_spread 30 mV")
    )]
    #[case(
        "{start_spread: 30 mV, stop_spread: 10 mV, when: always, current: 100 mA, max_cells: 4}",
        Err("`always` is not `charging`, `rest` or `both`")
    )]
    #[case(
        "{start_spread: 30 mA, stop_spread: 10 mV, when: rest, current: 100 mA, max_cells: 4}",
        Err("balancing.start_spread: a voltage")
    )]
    #[case(
        "{start_spread: 30 mV, stop_spread: 10 mV, when: rest, current: 10 A, max_cells: 4}",
        Err("balancing.current")
    )]
    #[case(
        "{start_spread: 30 mV, stop_spread: 10 mV, when: rest, current: 100 mA, max_cells: 0}",
        Err("max_cells")
    )]
    fn balancing_declarations(#[case] yaml: &str, #[case] want: Result<(u16, u16, u32), &str>) {
        let b: ImageBalancing = serde_saphyr::from_str(yaml).unwrap();
        match (b.config(), want) {
            (Ok(c), Ok((start, stop, ma))) => {
                assert_eq!(
                    (c.start_spread_mv, c.stop_spread_mv, c.bleed_ma),
                    (start, stop, ma)
                );
            }
            (Err(e), Err(part)) => assert!(e.contains(part), "{e}"),
            (got, want) => panic!("{got:?} vs {want:?}"),
        }
    }

    const GOOD: &str =
        "{capacity: 100 Ah, rest_after: 5 min, ocv: [[0, 2.5 V], [50, 3.3 V], [100, 3.45 V]]}";

    #[test]
    fn an_image_soc_section_becomes_the_estimator_configuration() {
        let s: ImageSoc = serde_saphyr::from_str(GOOD).unwrap();
        let c = s.config().unwrap();
        assert_eq!(c.capacity_mah, 100_000);
        assert_eq!(c.rest_after_ms, 300_000);
        assert_eq!(c.rest_current_ma, 200);
        assert_eq!(c.ocv_len, 3);
        assert_eq!(c.soc_from_ocv(3300), 500);
    }

    #[rstest]
    #[case("capacity: 100 Ah", "capacity: 100 V", "soc.capacity")]
    #[case("capacity: 100 Ah", "capacity: 0 Ah", "soc.capacity")]
    #[case("[50, 3.3 V]", "[50, 3.6 V]", "must both rise")]
    #[case("[50, 3.3 V]", "[150, 3.3 V]", "soc.ocv point 2")]
    #[case(
        "ocv: [[0, 2.5 V], [50, 3.3 V], [100, 3.45 V]]",
        "ocv: [[0, 2.5 V]]",
        "2 to 24 points"
    )]
    #[case(
        "rest_after: 5 min",
        "rest_after: 5 min, rest_current: 1 V",
        "soc.rest_current"
    )]
    fn a_bad_soc_section_is_refused_with_the_reason(
        #[case] from: &str,
        #[case] to: &str,
        #[case] needle: &str,
    ) {
        let text = GOOD.replacen(from, to, 1);
        let s: ImageSoc = serde_saphyr::from_str(&text).unwrap();
        let e = s.config().unwrap_err();
        assert!(e.contains(needle), "{e}");
    }
}
