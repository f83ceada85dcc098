//! The bundled ES ticks, embedded in the library so that a `tickq` installed with `cargo install` or copied to
//! another machine finds them wherever it runs.
//!
//! The build script deflates `data/es-ticks-2013/ticks.csv` into the library (266 KB for 4.0 MB of text) with
//! the SHA-256 and length of the original bytes. The readers take paths, so [`default_data_path`] writes the
//! inflated bytes once to a cache file (atomically, checked against the embedded hash) and returns its path; a
//! cache file that is already there with the right hash is used as it is. Its hash is the file's, so checkpoints
//! and blobs made from the workspace's copy match it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use flate2::read::DeflateDecoder;

use super::{DataError, file_sha256};

/// The bundled file's name in the workspace, as reports show it.
pub const BUNDLED_DATA_NAME: &str = "data/es-ticks-2013/ticks.csv";

/// SHA-256 of the bundled file's bytes (the hash blobs and checkpoints made from it record).
pub const BUNDLED_DATA_SHA256: [u8; 32] =
    *include_bytes!(concat!(env!("OUT_DIR"), "/bundled-ticks.csv.sha256"));

/// Length in bytes of the bundled file.
pub const BUNDLED_DATA_LEN: u64 = u64::from_le_bytes(*include_bytes!(concat!(
    env!("OUT_DIR"),
    "/bundled-ticks.csv.len"
)));

/// The deflated bytes of the bundled file.
static DEFLATED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/bundled-ticks.csv.deflate"));

/// The cache file's directory below a cache root: named by the data's hash, so a changed bundled file never
/// reads an older one.
fn cache_subdir() -> String {
    let short: String = BUNDLED_DATA_SHA256[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("tickq/es-ticks-2013-{short}")
}

/// The file name of the cache file (the bundled file's own, so readers see a `.csv`).
const CACHE_FILE: &str = "ticks.csv";

/// The bytes of the bundled file, inflated in memory and checked against [`BUNDLED_DATA_SHA256`].
///
/// # Errors
///
/// [`DataError::Bundled`] when the embedded bytes do not inflate to the recorded length and hash (a damaged
/// binary).
pub fn bundled_data() -> Result<Vec<u8>, DataError> {
    use sha2::{Digest, Sha256};

    let damaged = |reason: String| DataError::Bundled { reason };
    let len = usize::try_from(BUNDLED_DATA_LEN)
        .map_err(|_| damaged(format!("{BUNDLED_DATA_LEN} bytes do not fit in memory")))?;
    let mut bytes = Vec::with_capacity(len);
    // One byte past the recorded length tells a longer stream from an exact one without reading it all.
    DeflateDecoder::new(DEFLATED)
        .take(BUNDLED_DATA_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| damaged(format!("the embedded bytes do not inflate: {e}")))?;
    if bytes.len() != len {
        return Err(damaged(format!(
            "the embedded bytes inflate to {} bytes, not the {len} recorded",
            bytes.len()
        )));
    }
    let hash: [u8; 32] = Sha256::digest(&bytes).into();
    if hash != BUNDLED_DATA_SHA256 {
        return Err(damaged(
            "the embedded bytes do not have the recorded SHA-256".into(),
        ));
    }
    Ok(bytes)
}

/// Where the cache file may go, in order: `$XDG_CACHE_HOME` (when absolute), else `$HOME/.cache`; on Windows
/// `%LOCALAPPDATA%`; then the system's temporary directory.
fn cache_roots() -> Vec<PathBuf> {
    let var = |name: &str| {
        std::env::var_os(name)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    let mut roots = Vec::new();
    if let Some(xdg) = var("XDG_CACHE_HOME") {
        roots.push(xdg);
    } else if let Some(home) = var("HOME") {
        roots.push(home.join(".cache"));
    }
    if cfg!(windows)
        && let Some(local) = var("LOCALAPPDATA")
    {
        roots.push(local);
    }
    roots.push(std::env::temp_dir());
    roots
}

/// The cache file under the first root where it is, or can be written, with the bundled bytes.
fn materialize(roots: &[PathBuf]) -> Result<PathBuf, DataError> {
    let mut bytes: Option<Vec<u8>> = None;
    let mut failures = Vec::new();
    for root in roots {
        let path = root.join(cache_subdir()).join(CACHE_FILE);
        if is_bundled_copy(&path) {
            return Ok(path);
        }
        let contents = match &bytes {
            Some(b) => b,
            None => bytes.insert(bundled_data()?),
        };
        match crate::fsutil::write_atomic(&path, contents) {
            Ok(()) => return Ok(path),
            Err(e) => failures.push(e.to_string()),
        }
    }
    Err(DataError::BundledCache {
        tried: failures.join("; "),
    })
}

/// Whether the file at `path` holds exactly the bundled bytes.
fn is_bundled_copy(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == BUNDLED_DATA_LEN)
        && file_sha256(path).is_ok_and(|hash| hash == BUNDLED_DATA_SHA256)
}

/// The cache file this process handed out last.
static CACHED: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Path of a file holding the bundled default data set (the workspace's `data/es-ticks-2013/ticks.csv`).
///
/// The data is embedded in the library, so this works for a binary installed with `cargo install` or copied
/// anywhere: the first call in a process writes the file, if it is not already there with the right hash, to
/// `tickq/es-ticks-2013-HASH/ticks.csv` under the user's cache directory (`$XDG_CACHE_HOME`, else
/// `$HOME/.cache`; `%LOCALAPPDATA%` on Windows), or under the temporary directory when that cannot be written.
/// Later calls return the same path while the file is there.
///
/// # Errors
///
/// [`DataError::BundledCache`] when no cache directory can be written, naming each one tried;
/// [`DataError::Bundled`] for a damaged binary.
pub fn default_data_path() -> Result<PathBuf, DataError> {
    let mut cached = CACHED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(path) = cached.as_ref()
        && std::fs::metadata(path).is_ok_and(|m| m.len() == BUNDLED_DATA_LEN)
    {
        return Ok(path.clone());
    }
    let path = materialize(&cache_roots())?;
    *cached = Some(path.clone());
    Ok(path)
}

/// Whether `path` is the file [`default_data_path`] handed out in this process.
pub fn is_default_data_path(path: &Path) -> bool {
    CACHED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_deref()
        .is_some_and(|cached| cached == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The workspace's copy, which only the tests may read: the library must not depend on it.
    fn workspace_file() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/es-ticks-2013/ticks.csv")
    }

    #[test]
    fn embedded_bytes_are_the_workspace_file() {
        let embedded = bundled_data().expect("embedded data inflates");
        let file = std::fs::read(workspace_file()).expect("workspace data file");
        assert_eq!(embedded.len() as u64, BUNDLED_DATA_LEN);
        assert!(
            embedded == file,
            "the embedded data differs from {BUNDLED_DATA_NAME}"
        );
        assert_eq!(
            file_sha256(&workspace_file()).expect("hash"),
            BUNDLED_DATA_SHA256
        );
        // Compressed, not stored: the library carries about a fifteenth of the file.
        assert!(DEFLATED.len() * 10 < file.len(), "{} bytes", DEFLATED.len());
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tickq-bundled-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn cache_file_is_written_then_reused_and_repaired() {
        let root = scratch("cache");
        let path = materialize(std::slice::from_ref(&root)).expect("cache written");
        assert!(path.starts_with(&root));
        assert_eq!(file_sha256(&path).expect("hash"), BUNDLED_DATA_SHA256);
        let written = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .expect("mtime");
        // A good copy is used as it is.
        assert_eq!(
            materialize(std::slice::from_ref(&root)).expect("reused"),
            path
        );
        assert_eq!(
            std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .expect("mtime"),
            written
        );
        // A damaged copy of the same length is replaced.
        let mut bytes = std::fs::read(&path).expect("read");
        bytes[100] ^= 1;
        std::fs::write(&path, &bytes).expect("damage");
        assert_eq!(
            materialize(std::slice::from_ref(&root)).expect("repaired"),
            path
        );
        assert_eq!(file_sha256(&path).expect("hash"), BUNDLED_DATA_SHA256);
        std::fs::remove_dir_all(&root).ok();
    }

    #[test]
    fn an_unwritable_root_falls_back_to_the_next() {
        let root = scratch("fallback");
        std::fs::create_dir_all(&root).expect("dir");
        // A file where the first root should be: nothing can be created below it.
        let blocked = root.join("not-a-dir");
        std::fs::write(&blocked, b"x").expect("file");
        let good = root.join("good");
        let path = materialize(&[blocked.clone(), good.clone()]).expect("second root");
        assert!(path.starts_with(&good));

        let err = materialize(std::slice::from_ref(&blocked)).expect_err("no root writable");
        let text = err.to_string();
        assert!(text.contains("not-a-dir"), "{text}");
        assert!(text.contains("--data"), "{text}");
        std::fs::remove_dir_all(&root).ok();
    }
}
