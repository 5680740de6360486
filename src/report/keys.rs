//! The station key: an ed25519 key that signs every bundle a station writes.
//!
//! Where it lives: `$HILRIG_KEY` when set, otherwise `$XDG_CONFIG_HOME/hilrig/station.key`,
//! otherwise `~/.config/hilrig/station.key`. The file holds the 32-byte secret seed in hex
//! (one line, `#` comments allowed) and is created with mode 0600; the public key is written
//! beside it as `station.key.pub` (hex) for the people who verify bundles. The seed comes
//! from the operating system's random source (`/dev/urandom`).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use super::ReportError;

/// Environment variable naming the station key file.
pub const KEY_ENV: &str = "HILRIG_KEY";

/// A loaded station key.
#[derive(Debug)]
pub struct StationKey {
    /// Where it was read from or written to.
    pub path: PathBuf,
    signing: SigningKey,
}

impl StationKey {
    /// A key from a 32-byte seed (for tests and tools that hold the seed themselves).
    pub fn from_seed(seed: [u8; 32], path: PathBuf) -> Self {
        Self {
            path,
            signing: SigningKey::from_bytes(&seed),
        }
    }

    /// The public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// The public key in hex.
    pub fn public_hex(&self) -> String {
        hex::encode(self.verifying_key().as_bytes())
    }

    /// Sign `message`; the 64-byte signature in hex.
    pub fn sign_hex(&self, message: &[u8]) -> String {
        hex::encode(self.signing.sign(message).to_bytes())
    }
}

/// The default key location (see the module documentation), if a home can be found.
pub fn default_key_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(KEY_ENV).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(x).join("hilrig").join("station.key"));
    }
    std::env::var_os("HOME")
        .filter(|p| !p.is_empty())
        .map(|h| PathBuf::from(h).join(".config/hilrig/station.key"))
}

/// The public-key file written beside a key file.
pub fn public_key_path(key: &Path) -> PathBuf {
    let mut s = key.as_os_str().to_owned();
    s.push(".pub");
    PathBuf::from(s)
}

/// Make a new key at `path` (refusing to replace one unless `force`), and its `.pub` file.
pub fn generate(path: &Path, force: bool) -> Result<StationKey, ReportError> {
    if path.exists() && !force {
        return Err(ReportError::Key {
            path: path.to_path_buf(),
            message: "a key already exists here; bundles signed with it would no longer match a \
                      new one. Pass --force to replace it, or --out to write elsewhere"
                .into(),
        });
    }
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut seed))
        .map_err(|e| ReportError::Key {
            path: path.to_path_buf(),
            message: format!("cannot read the operating system's random source: {e}"),
        })?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| ReportError::io(dir, e))?;
    }
    let key = StationKey::from_seed(seed, path.to_path_buf());
    let text = format!(
        "# hilrig station key: ed25519 secret seed (hex). Keep it secret.\n# public key: {}\n{}\n",
        key.public_hex(),
        hex::encode(seed)
    );
    write_private(path, text.as_bytes()).map_err(|e| ReportError::io(path, e))?;
    let pub_path = public_key_path(path);
    std::fs::write(&pub_path, format!("{}\n", key.public_hex()))
        .map_err(|e| ReportError::io(&pub_path, e))?;
    Ok(key)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Read a key file.
pub fn load(path: &Path) -> Result<StationKey, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|e| ReportError::io(path, e))?;
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap_or("");
    let seed = from_hex(line)
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| ReportError::Key {
            path: path.to_path_buf(),
            message: "expected 64 hex digits (an ed25519 seed written by `hilrig keygen`)".into(),
        })?;
    Ok(StationKey::from_seed(seed, path.to_path_buf()))
}

/// Load the station key from the default location; Ok(None) when there is none.
pub fn load_default() -> Result<Option<StationKey>, ReportError> {
    match default_key_path() {
        Some(p) if p.exists() => load(&p).map(Some),
        _ => Ok(None),
    }
}

/// Parse a public key given as 64 hex digits, or as a file holding them (a `.pub` file).
pub fn parse_public(text_or_path: &str) -> Result<VerifyingKey, String> {
    let text = if Path::new(text_or_path).is_file() {
        std::fs::read_to_string(text_or_path)
            .map_err(|e| format!("{text_or_path}: {e}"))?
            .trim()
            .to_string()
    } else {
        text_or_path.trim().to_string()
    };
    let bytes = from_hex(&text)
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| {
            format!("`{text_or_path}` is neither 64 hex digits nor a file holding a public key")
        })?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| format!("not an ed25519 public key: {e}"))
}

/// Short fingerprint of a public key: the first 16 hex digits of its SHA-256.
pub fn fingerprint(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

/// Bytes of a hex string (either case), or None when it is not hex.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    hex::decode(s.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_rejects_junk() {
        assert_eq!(hex::encode([0, 1, 0xab, 0xff]), "0001abff");
        assert_eq!(from_hex("0001ABff"), Some(vec![0, 1, 0xab, 0xff]));
        assert_eq!(from_hex("0g"), None);
        assert_eq!(from_hex("abc"), None);
    }

    #[test]
    fn generated_key_loads_back_and_refuses_overwrite() {
        let dir = std::env::temp_dir().join(format!("hilrig-keys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("k/station.key");
        let k = generate(&path, false).unwrap();
        let back = load(&path).unwrap();
        assert_eq!(k.public_hex(), back.public_hex());
        assert!(generate(&path, false).is_err());
        let pk = parse_public(public_key_path(&path).to_str().unwrap()).unwrap();
        assert_eq!(pk, k.verifying_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "key readable by others: {mode:o}");
        }
        std::fs::remove_dir_all(dir).ok();
    }
}
