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

/// Name of the lock file an output directory holds while a command writes it (a dot
/// file: not part of a sealed directory's manifest).
pub const OUTPUT_LOCK: &str = ".mortal.lock";

/// An exclusive, non-blocking lock on an output directory, held until dropped. The lock
/// is the operating system's (`flock`), so a process that dies releases it: a stale lock
/// file of a dead process never blocks anyone. The holder's pid is written into the file
/// for the message a second writer gets.
#[derive(Debug)]
pub struct OutputLock {
    file: std::fs::File,
}

impl OutputLock {
    /// Takes the lock of `dir` (created if needed). Another process holding it is an
    /// [`Error::Param`] naming the directory and that process's pid (exit code 2).
    pub fn take(dir: &Path) -> Result<Self> {
        Self::take_named(dir, OUTPUT_LOCK)
    }

    /// [`OutputLock::take`] with the lock file `name` (a dot file) in `dir`: one writer
    /// per part of a directory that several processes share (a shard of a scenario).
    pub fn take_named(dir: &Path, name: &str) -> Result<Self> {
        create_dir(dir)?;
        let path = dir.join(name);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
        match file.try_lock() {
            Ok(()) => {
                // The holder's pid, for a second writer's message.
                let _ = file.set_len(0);
                let _ = writeln!(file, "{}", std::process::id());
                let _ = file.flush();
                Ok(OutputLock { file })
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|s| s.trim().parse::<u32>().ok())
                    .map_or("another process".to_string(), |p| format!("process {p}"));
                Err(Error::param(
                    "out",
                    dir.display(),
                    format!(
                        "{holder} of mortal is writing this directory; wait for it to finish \
                         or choose another --out"
                    ),
                ))
            }
            Err(std::fs::TryLockError::Error(e)) => {
                Err(Error::io(format!("cannot lock {}", path.display()), e))
            }
        }
    }
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// `path` made absolute and free of `.`/`..` and symbolic links as far as it exists (the
/// part that does not exist yet is appended as written).
fn resolved(path: &Path) -> std::path::PathBuf {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    let parts: Vec<std::path::Component> = abs.components().collect();
    for k in (1..=parts.len()).rev() {
        let prefix: std::path::PathBuf = parts[..k].iter().collect();
        if let Ok(mut out) = prefix.canonicalize() {
            // The part that does not exist yet has no links: `..` and `.` resolve
            // lexically.
            for part in &parts[k..] {
                match part {
                    std::path::Component::ParentDir => {
                        out.pop();
                    }
                    std::path::Component::Normal(p) => out.push(p),
                    _ => {}
                }
            }
            return out;
        }
    }
    abs
}

/// Refuses an output directory `out` that is the directory `input` the command reads
/// (`what` names it: "teacher", "checkpoint") or, unless `subdirs_ok`, lies inside it, so
/// writing cannot destroy what is being read.
pub fn check_out_not_inside(out: &Path, input: &Path, what: &str, subdirs_ok: bool) -> Result<()> {
    let (o, i) = (resolved(out), resolved(input));
    if o == i || (!subdirs_ok && o.starts_with(&i)) {
        return Err(Error::param(
            "out",
            out.display(),
            format!(
                "is the {what} directory {} or inside it; writing there would overwrite what \
                 this command reads: choose another --out",
                input.display()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod lock_tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_with_the_holders_pid_and_a_released_lock_is_free() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        let held = OutputLock::take(&out).unwrap();
        let e = OutputLock::take(&out).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let msg = e.to_string();
        assert!(msg.contains(&std::process::id().to_string()), "{msg}");
        assert!(msg.contains("run"), "{msg}");
        drop(held);
        let again = OutputLock::take(&out).unwrap();
        drop(again);
        // A lock file left behind (e.g. by a killed process) does not block.
        std::fs::write(out.join(OUTPUT_LOCK), "999999\n").unwrap();
        OutputLock::take(&out).unwrap();
    }

    #[test]
    fn outputs_inside_inputs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("teacher");
        std::fs::create_dir_all(&t).unwrap();
        for bad in [
            t.clone(),
            t.join("student"),
            t.join("a/../b"),
            dir.path().join("x/../teacher"),
        ] {
            let e = check_out_not_inside(&bad, &t, "teacher", false).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{}", bad.display());
        }
        check_out_not_inside(&dir.path().join("teacher2"), &t, "teacher", false).unwrap();
        check_out_not_inside(&dir.path().join("other/teacher"), &t, "teacher", false).unwrap();
        // Evaluations write beside the checkpoint's files by default: a sub-directory is
        // allowed there, the checkpoint directory itself never.
        check_out_not_inside(&t.join("eval-c2"), &t, "checkpoint", true).unwrap();
        assert!(check_out_not_inside(&t.join("."), &t, "checkpoint", true).is_err());
    }
}
