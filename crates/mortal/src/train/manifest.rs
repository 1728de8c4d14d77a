//! Run directories are either one complete version or refused.
//!
//! Every file of a run is written atomically, but a directory is several files: a run
//! re-written into an existing directory and killed half-way would leave new files beside
//! old ones. So a run first removes the directory's `manifest.json` ([`unseal`]), writes
//! its files, and writes a new manifest last ([`seal`]) listing the MD5 of every file it
//! holds. A checkpoint written with a manifest is loaded only when the manifest is there
//! and every file it lists matches ([`verify`]).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The manifest's file name.
pub const MANIFEST: &str = "manifest.json";

/// What a manifest holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunManifest {
    /// MD5 (hex) of each file of the run, by name.
    pub files: BTreeMap<String, String>,
}

/// Removes the manifest (before a run writes anything into `dir`).
pub fn unseal(dir: &Path) -> Result<()> {
    match std::fs::remove_file(dir.join(MANIFEST)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(
            format!("cannot remove {}", dir.join(MANIFEST).display()),
            e,
        )),
    }
}

/// The regular files of `dir` a manifest covers (not hidden, not the manifest).
fn files(dir: &Path) -> Result<Vec<String>> {
    let rd = std::fs::read_dir(dir)
        .map_err(|e| Error::io(format!("cannot list {}", dir.display()), e))?;
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| Error::io(format!("cannot list {}", dir.display()), e))?;
        let name = entry.file_name().to_string_lossy().to_string();
        if name == MANIFEST || name.starts_with('.') || !entry.path().is_file() {
            continue;
        }
        out.push(name);
    }
    out.sort();
    Ok(out)
}

/// Writes the manifest of every file now in `dir` (the last write of a run).
pub fn seal(dir: &Path) -> Result<()> {
    let mut m = RunManifest {
        files: BTreeMap::new(),
    };
    for name in files(dir)? {
        let p = dir.join(&name);
        let md5 = crate::data::files::md5_file(&p)
            .map_err(|e| Error::io(format!("cannot read {}", p.display()), e))?;
        m.files.insert(name, md5);
    }
    crate::fsutil::write_json(&dir.join(MANIFEST), &m)
}

/// Checks that `dir` holds one complete run: its manifest exists and every file it lists
/// has the recorded MD5.
pub fn verify(dir: &Path) -> Result<()> {
    let path = dir.join(MANIFEST);
    if !path.is_file() {
        return Err(Error::artifact(
            dir,
            format!(
                "no {MANIFEST}: the run writing this directory did not finish, so its files may \
                 mix two runs; run it again"
            ),
        ));
    }
    let m: RunManifest = crate::fsutil::read_json(&path)?;
    for (name, want) in &m.files {
        let p = dir.join(name);
        let got = crate::data::files::md5_file(&p).ok();
        if got.as_deref() != Some(want.as_str()) {
            return Err(Error::artifact(
                &p,
                format!(
                    "does not match {MANIFEST} (missing, changed, or written by another run); \
                     refusing a directory that mixes runs"
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_directories_verify_and_changes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("a.json"), "1").unwrap();
        std::fs::write(d.join(".hidden"), "x").unwrap();
        assert!(
            verify(d)
                .unwrap_err()
                .to_string()
                .contains("did not finish")
        );
        seal(d).unwrap();
        verify(d).unwrap();
        std::fs::write(d.join("b.png"), "new file").unwrap();
        verify(d).unwrap();
        std::fs::write(d.join("a.json"), "2").unwrap();
        let e = verify(d).unwrap_err().to_string();
        assert!(e.contains("a.json") && e.contains("does not match"), "{e}");
        unseal(d).unwrap();
        unseal(d).unwrap();
        assert!(verify(d).is_err());
    }
}
