//! The firmware manifest (`firmware-under-test/manifest.yaml`): every image that may be
//! flashed, with its id, version, target chip, format and SHA-256.
//!
//! ```yaml
//! images:
//!   - id: bms-2.4.0                # what plans (`firmware:`) and `hilrig flash --image` name
//!     version: 2.4.0               # major.minor.patch, as the BMS reports it on CAN
//!     chip: STM32G474RETx          # probe-rs chip name (real targets)
//!     format: elf                  # elf | hex | bin | sim-yaml
//!     file: bms-2.4.0.elf          # relative to the manifest
//!     sha256: 3f1c...              # sha256sum of the file
//!     base_address: 0x08000000     # bin only; default: the start of the chip's flash
//!   - id: sim-bms-1.0.0
//!     version: 1.0.0
//!     target: sim-bms              # the simulated BMS
//!     format: sim-yaml
//!     file: sim-bms-1.0.0.yaml
//!     sha256: a732...
//!     defect: {summary: ..., caught_by: ...}   # seeded-defect images only
//! ```
//!
//! An image is flashed only from a [`VerifiedImage`]: its bytes were read once, hashed, and
//! matched the manifest; the flasher writes exactly those bytes.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Deserializer};
use sha2::{Digest, Sha256};

use super::FlashError;
use crate::plan::InputError;
use crate::report::FirmwareInfo;

/// The target name of the simulated BMS.
pub const SIM_TARGET: &str = "sim-bms";

/// The manifest file.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Where it was read from.
    pub path: PathBuf,
    /// The images.
    pub images: Vec<ImageEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestFile {
    images: Vec<ImageEntry>,
}

/// Image file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ImageFormat {
    /// ELF executable (the linker's output).
    #[serde(rename = "elf")]
    Elf,
    /// Intel HEX.
    #[serde(rename = "hex", alias = "ihex")]
    Hex,
    /// Raw binary, written at `base_address`.
    #[serde(rename = "bin")]
    Bin,
    /// Configuration of the simulated BMS's firmware core.
    #[serde(rename = "sim-yaml")]
    SimYaml,
}

impl fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ImageFormat::Elf => "elf",
            ImageFormat::Hex => "hex",
            ImageFormat::Bin => "bin",
            ImageFormat::SimYaml => "sim-yaml",
        })
    }
}

/// One image in the manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageEntry {
    /// Image id.
    pub id: String,
    /// Version, `major.minor.patch`.
    pub version: String,
    /// probe-rs chip name the image is built for (real targets).
    #[serde(default)]
    pub chip: Option<String>,
    /// Non-chip target (`sim-bms` for the simulated BMS).
    #[serde(default)]
    pub target: Option<String>,
    /// File format.
    pub format: ImageFormat,
    /// File, relative to the manifest.
    pub file: PathBuf,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// Where a `bin` image starts in the chip's memory.
    #[serde(default, deserialize_with = "address")]
    pub base_address: Option<u64>,
    /// For a seeded-defect image: what is wrong and which test should catch it.
    #[serde(default)]
    pub defect: Option<Defect>,
}

/// A deliberately planted defect and the test meant to find it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defect {
    /// What the image does wrong.
    pub summary: String,
    /// The check that should fail on this image.
    pub caught_by: String,
}

fn address<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(u64),
        Text(String),
    }
    match Option::<Raw>::deserialize(d)? {
        None => Ok(None),
        Some(Raw::Int(v)) => Ok(Some(v)),
        Some(Raw::Text(s)) => parse_address(&s).map(Some).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{s}` is not an address (write 0x08000000 or a decimal number)"
            ))
        }),
    }
}

/// An address written `0x0800_0000` or in decimal.
pub fn parse_address(s: &str) -> Option<u64> {
    let t = s.trim().replace('_', "");
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => t.parse().ok(),
    }
}

impl ImageEntry {
    /// Whether the image runs on the simulated BMS.
    pub fn is_simulated(&self) -> bool {
        self.format == ImageFormat::SimYaml
    }

    /// The version as numbers, as the BMS reports it.
    pub fn version_numbers(&self) -> Option<(u8, u8, u8)> {
        parse_version(&self.version)
    }
}

/// `major.minor.patch` with each part 0..=255.
pub fn parse_version(v: &str) -> Option<(u8, u8, u8)> {
    let mut it = v.trim().split('.').map(|p| p.parse::<u8>().ok());
    let r = (it.next()??, it.next()??, it.next()??);
    it.next().is_none().then_some(r)
}

/// An image whose bytes matched the manifest's SHA-256.
#[derive(Debug, Clone)]
pub struct VerifiedImage {
    /// The manifest entry.
    pub entry: ImageEntry,
    /// The file the bytes came from.
    pub path: PathBuf,
    /// The file's contents, as hashed.
    pub bytes: Arc<[u8]>,
    /// SHA-256 of `bytes`, lower-case hex.
    pub sha256: String,
}

impl VerifiedImage {
    /// Id, version and SHA-256, as results.json records them.
    pub fn info(&self) -> FirmwareInfo {
        FirmwareInfo {
            id: self.entry.id.clone(),
            version: self.entry.version.clone(),
            sha256: self.sha256.clone(),
        }
    }
}

/// Lower-case hex SHA-256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The first four bytes of a hex SHA-256, as the BMS reports them (`ImageHash`, little-endian,
/// so the frame carries them in hash order). None when `sha256` is not hex.
pub fn hash_prefix(sha256: &str) -> Option<u32> {
    let mut b = [0u8; 4];
    hex::decode_to_slice(sha256.get(..8)?, &mut b).ok()?;
    Some(u32::from_le_bytes(b))
}

/// A hash prefix as the hex of its bytes in hash order (`a732f928`).
pub fn prefix_hex(prefix: u32) -> String {
    hex::encode(prefix.to_le_bytes())
}

impl Manifest {
    /// Read and check a manifest.
    pub fn load(path: &Path) -> Result<Self, FlashError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            InputError::file(
                path,
                format!("cannot read the firmware manifest: {e} (give another with --manifest)"),
            )
        })?;
        let file: ManifestFile =
            serde_saphyr::from_str(&text).map_err(|e| InputError::from_yaml(path, &text, &e))?;
        let manifest = Manifest {
            path: path.to_path_buf(),
            images: file.images,
        };
        manifest.check(&text)?;
        Ok(manifest)
    }

    fn check(&self, text: &str) -> Result<(), InputError> {
        let err = |id: &str, m: String| {
            let line = text
                .lines()
                .position(|l| {
                    l.trim_start()
                        .trim_start_matches("- ")
                        .trim()
                        .strip_prefix("id:")
                        .is_some_and(|v| v.trim().trim_matches(['"', '\'']) == id)
                })
                .map_or(0, |i| i + 1);
            InputError::at(&self.path, text, line, 1, format!("image `{id}`: {m}"))
        };
        for (i, e) in self.images.iter().enumerate() {
            if self.images[..i].iter().any(|o| o.id == e.id) {
                return Err(err(&e.id, "the id is listed twice".into()));
            }
            if e.sha256.len() != 64 || !e.sha256.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(err(
                    &e.id,
                    format!(
                        "sha256 `{}` is not 64 hex digits (sha256sum FILE prints it)",
                        e.sha256
                    ),
                ));
            }
            if e.version_numbers().is_none() {
                return Err(err(
                    &e.id,
                    format!(
                        "version `{}` is not major.minor.patch (0..255 each), as the BMS reports it",
                        e.version
                    ),
                ));
            }
            match (e.format, e.target.as_deref(), e.chip.as_deref()) {
                (ImageFormat::SimYaml, Some(SIM_TARGET), None) => {}
                (ImageFormat::SimYaml, _, _) => {
                    return Err(err(
                        &e.id,
                        format!("a sim-yaml image needs `target: {SIM_TARGET}` and no `chip`"),
                    ))
                }
                (_, Some(t), _) => {
                    return Err(err(
                        &e.id,
                        format!(
                            "`target: {t}` is for simulated images; a {} image names its `chip` \
                             (probe-rs name)",
                            e.format
                        ),
                    ))
                }
                _ => {}
            }
            if e.base_address.is_some() && e.format != ImageFormat::Bin {
                return Err(err(
                    &e.id,
                    format!(
                        "`base_address` is only for bin images; a {} file carries its addresses",
                        e.format
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The entry with an id.
    pub fn image(&self, id: &str) -> Option<&ImageEntry> {
        self.images.iter().find(|e| e.id == id)
    }

    /// The file of an entry.
    pub fn file_of(&self, entry: &ImageEntry) -> PathBuf {
        self.path
            .parent()
            .unwrap_or(Path::new("."))
            .join(&entry.file)
    }

    /// Read an entry's file and check its SHA-256; a file that does not match is refused.
    pub fn open(&self, entry: &ImageEntry) -> Result<VerifiedImage, FlashError> {
        self.open_file(entry, &self.file_of(entry))
    }

    fn open_file(&self, entry: &ImageEntry, file: &Path) -> Result<VerifiedImage, FlashError> {
        let bytes = std::fs::read(file).map_err(|e| {
            InputError::file(
                file,
                format!(
                    "cannot read image `{}` listed in {}: {e}",
                    entry.id,
                    self.path.display()
                ),
            )
        })?;
        let actual = sha256_hex(&bytes);
        if !actual.eq_ignore_ascii_case(&entry.sha256) {
            return Err(FlashError::HashMismatch {
                id: entry.id.clone(),
                file: file.display().to_string(),
                manifest: self.path.display().to_string(),
                expected: entry.sha256.to_ascii_lowercase(),
                actual,
            });
        }
        Ok(VerifiedImage {
            entry: entry.clone(),
            path: file.to_path_buf(),
            bytes: bytes.into(),
            sha256: actual,
        })
    }

    /// The image named by an id, or by the path of a file the manifest lists (or an exact
    /// copy of one); verified against its SHA-256.
    pub fn resolve(&self, id_or_path: &str) -> Result<VerifiedImage, FlashError> {
        if let Some(e) = self.image(id_or_path) {
            return self.open(e);
        }
        let path = Path::new(id_or_path);
        if !path.is_file() {
            return Err(FlashError::UnknownImage {
                wanted: id_or_path.to_string(),
                manifest: self.path.display().to_string(),
                known: self.images.iter().map(|e| e.id.clone()).collect(),
            });
        }
        let canonical = std::fs::canonicalize(path).ok();
        if let Some(e) = self.images.iter().find(|e| {
            canonical.is_some() && std::fs::canonicalize(self.file_of(e)).ok() == canonical
        }) {
            return self.open_file(e, path);
        }
        let bytes = std::fs::read(path)
            .map_err(|e| InputError::file(path, format!("cannot read the image: {e}")))?;
        let sha = sha256_hex(&bytes);
        match self
            .images
            .iter()
            .find(|e| e.sha256.eq_ignore_ascii_case(&sha))
        {
            Some(e) => self.open_file(e, path),
            None => Err(FlashError::NotInManifest {
                path: path.display().to_string(),
                manifest: self.path.display().to_string(),
                sha256: sha,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_addresses_and_hash_prefixes() {
        assert_eq!(parse_version("1.2.3"), Some((1, 2, 3)));
        assert_eq!(parse_version("1.2"), None);
        assert_eq!(parse_version("1.2.300"), None);
        assert_eq!(parse_address("0x0800_0000"), Some(0x0800_0000));
        assert_eq!(parse_address("4096"), Some(4096));
        assert_eq!(parse_address("zz"), None);
        let p = hash_prefix("a732f928b8785ba1").unwrap();
        assert_eq!(p.to_le_bytes(), [0xa7, 0x32, 0xf9, 0x28]);
        assert_eq!(prefix_hex(p), "a732f928");
        assert_eq!(hash_prefix("zz"), None);
    }
}
