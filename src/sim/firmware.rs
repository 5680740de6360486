//! Firmware images for the simulated target: YAML files that configure the reference
//! firmware core (`sim-bms`), identified by their SHA-256.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::plan::fixture::QuantityValue;
use crate::plan::InputError;
use crate::units::{Dimension, Seconds};

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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageProtection {
    trip: QuantityValue,
    release: QuantityValue,
    delay: Seconds,
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
            defects: sim_bms::Defects {
                no_hysteresis: f.defects.no_hysteresis,
                wrong_cell_index: f.defects.wrong_cell_index,
                ignore_ot_in_charge: f.defects.ignore_ot_in_charge,
                uv_latch_never_releases: f.defects.uv_latch_never_releases,
                no_warning_output: f.defects.no_warning_output,
            },
        };
        if config.cells == 0 || config.cells as usize > sim_bms::MAX_CELLS {
            return Err(err(format!("cells must be 1..{}", sim_bms::MAX_CELLS)));
        }
        Ok(Self {
            id: f.image,
            version: f.version,
            sha256: hex(&Sha256::digest(&bytes)),
            config,
        })
    }

    /// The first four bytes of the SHA-256, as the BMS reports them on CAN.
    pub fn hash_prefix(&self) -> u32 {
        u32::from_str_radix(&self.sha256[..8], 16).unwrap_or(0)
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
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
