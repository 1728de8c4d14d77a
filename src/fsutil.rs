//! File writing that never leaves a half-written result behind.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Creates `dir` and its parents.
pub fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("cannot create directory {}", dir.display()), e))
}

/// A temporary file in `dir` that, once renamed into place, has the permissions of an
/// ordinary new file (0666 less the umask; `tempfile` alone would leave it 0600, unreadable
/// to a group sharing result directories).
pub fn temp_file_in(dir: &Path, prefix: &str) -> std::io::Result<tempfile::NamedTempFile> {
    let mut b = tempfile::Builder::new();
    b.prefix(prefix);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        b.permissions(std::fs::Permissions::from_mode(0o666));
    }
    b.tempfile_in(dir)
}

/// A temporary directory in `dir` with the permissions of an ordinary new directory once
/// renamed into place (0777 less the umask, not `tempfile`'s 0700).
pub fn temp_dir_in(dir: &Path, prefix: &str) -> std::io::Result<tempfile::TempDir> {
    let mut b = tempfile::Builder::new();
    b.prefix(prefix);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        b.permissions(std::fs::Permissions::from_mode(0o777));
    }
    b.tempdir_in(dir)
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, flushed
/// and synced, then renamed over `path`. A crash leaves either the old file or the new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    create_dir(dir)?;
    let ctx = || format!("cannot write {}", path.display());
    let mut tmp = temp_file_in(dir, ".tmp-").map_err(|e| Error::io(ctx(), e))?;
    tmp.write_all(bytes).map_err(|e| Error::io(ctx(), e))?;
    tmp.as_file().sync_all().map_err(|e| Error::io(ctx(), e))?;
    tmp.persist(path).map_err(|e| Error::io(ctx(), e.error))?;
    failpoint(path);
    Ok(())
}

/// Test failpoint: when the environment variable `MORTAL_ABORT_AFTER` names this file
/// (its file name), the process aborts right after writing it, as `kill -9` would. Used
/// by the crash-consistency tests; unset, it does nothing.
pub fn failpoint(path: &Path) {
    if let Some(want) = std::env::var_os("MORTAL_ABORT_AFTER")
        && path.file_name() == Some(want.as_os_str())
    {
        std::process::abort();
    }
}

/// Serialises `value` as pretty JSON and writes it atomically.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut s = serde_json::to_string_pretty(value).map_err(|e| {
        Error::io(
            format!("cannot serialise {}", path.display()),
            std::io::Error::other(e),
        )
    })?;
    s.push('\n');
    write_atomic(path, s.as_bytes())
}

/// Reads and parses a JSON file, naming the file in errors.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    serde_json::from_str(&text)
        .map_err(|e| Error::artifact(path, format!("not a valid file of this kind: {e}")))
}

/// Serialises `rows` as CSV (header from the first row's field names) and writes it
/// atomically.
pub fn write_csv<T: serde::Serialize>(path: &Path, rows: &[T]) -> Result<()> {
    let ctx = || format!("cannot format {}", path.display());
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.serialize(r)
            .map_err(|e| Error::io(ctx(), std::io::Error::other(e)))?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| Error::io(ctx(), std::io::Error::other(e.to_string())))?;
    write_atomic(path, &bytes)
}

/// Reads a CSV file of `T` rows; `what` names the expected kind of file in errors.
pub fn read_csv<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> Result<Vec<T>> {
    let mut rd = csv::Reader::from_path(path)
        .map_err(|e| Error::artifact(path, format!("cannot read: {e}")))?;
    rd.deserialize()
        .collect::<std::result::Result<Vec<T>, _>>()
        .map_err(|e| Error::artifact(path, format!("not {what}: {e}")))
}

/// `s` with every character other than ASCII letters, digits, `.`, `_` and `-` replaced
/// by `_`, for use in a file name.
pub fn file_safe(s: &str) -> String {
    file_safe_with(s, '_')
}

/// [`file_safe`] with another replacement character.
pub fn file_safe_with(s: &str, replacement: char) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                replacement
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(unix)]
    fn atomic_writes_are_readable_like_ordinary_files() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (atomic, plain) = (dir.path().join("a"), dir.path().join("b"));
        write_atomic(&atomic, b"x").unwrap();
        std::fs::write(&plain, b"x").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&atomic), mode(&plain));
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/x.json");
        write_json(&p, &serde_json::json!({"a": 1})).unwrap();
        write_json(&p, &serde_json::json!({"a": 2})).unwrap();
        let v: serde_json::Value = read_json(&p).unwrap();
        assert_eq!(v["a"], 2);
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        let e = read_json::<serde_json::Value>(&dir.path().join("missing.json")).unwrap_err();
        assert!(e.to_string().contains("missing.json"));
    }
}
