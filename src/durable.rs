//! Durable, atomic file writing: a file is either its old content or its complete new
//! content, never a torn half, even when the process dies or the disk fills mid-write.
//!
//! The text goes to a temporary file beside the target (same directory, so same file
//! system), is flushed to the device (`fsync`), and then renamed over the target; the
//! directory is synced too so that the rename itself survives a power cut.

use std::io::Write;
use std::path::{Path, PathBuf};

/// A write that failed: which file, and the OS error.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}: {source}", path.display())]
pub struct WriteError {
    /// The file that was being written.
    pub path: PathBuf,
    /// The OS error (ENOSPC, EFBIG, EACCES, ...).
    #[source]
    pub source: std::io::Error,
}

impl From<WriteError> for std::io::Error {
    fn from(e: WriteError) -> Self {
        std::io::Error::new(e.source.kind(), e.to_string())
    }
}

/// Write `bytes` to `path` atomically and durably (temporary file, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let err = |source| WriteError {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(e));
    }
    // The rename is durable once the directory is synced; a file system that cannot sync
    // a directory (some network mounts) still has the complete file.
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// [`write_atomic`] with the signature of `std::fs::write`: a drop-in for the report writers.
pub fn write(path: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> std::io::Result<()> {
    write_atomic(path.as_ref(), contents.as_ref()).map_err(|e| e.source)
}

/// Space held back in a run directory, so that the results can still be written when the
/// disk fills during the run: released (deleted) just before the results are written.
#[derive(Debug)]
pub struct Reserve {
    path: PathBuf,
}

/// How much a run directory holds back for its results (results.json, junit.xml).
pub const RESERVE_BYTES: usize = 256 * 1024;

impl Reserve {
    /// Hold `bytes` in `dir` (a hidden file of zeros, flushed to the device).
    pub fn create(dir: &Path, bytes: usize) -> std::io::Result<Reserve> {
        let path = dir.join(".hilrig-reserve");
        let made = (|| {
            let mut f = std::fs::File::create(&path)?;
            let chunk = vec![0u8; 64 * 1024];
            let mut left = bytes;
            while left > 0 {
                let n = left.min(chunk.len());
                f.write_all(&chunk[..n])?;
                left -= n;
            }
            f.sync_all()
        })();
        match made {
            Ok(()) => Ok(Reserve { path }),
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                Err(e)
            }
        }
    }

    /// Give the space back.
    pub fn release(self) {
        drop(self);
    }
}

impl Drop for Reserve {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_whole_file_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("hilrig-durable-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("results.json");
        std::fs::write(&path, "old content that is longer").unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 1, "{left:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_write_names_the_file_and_keeps_the_old_content() {
        let path = Path::new("/nonexistent-dir-hilrig/results.json");
        let e = write_atomic(path, b"x").unwrap_err();
        assert!(e.to_string().contains("results.json"), "{e}");
    }
}
