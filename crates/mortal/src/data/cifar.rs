//! CIFAR-10, binary version (Krizhevsky 2009, <https://www.cs.toronto.edu/~kriz/cifar.html>).
//!
//! The official archive `cifar-10-binary.tar.gz` holds `cifar-10-batches-bin/` with five
//! training files `data_batch_1.bin` … `data_batch_5.bin` and `test_batch.bin`, each
//! 10,000 records of 3,073 bytes (30,730,000 bytes): one label byte (0–9), then the
//! 32 × 32 red plane, the green plane and the blue plane, each row-major. Records are
//! stored here location by location (`(y·32 + x)·3 + channel`), the layout of
//! [`crate::substrate::Geometry`] maps.
//!
//! Files live in `<data dir>/cifar10/cifar-10-batches-bin/`, where `mortal data fetch
//! cifar10` extracts them.

use std::io;
use std::path::{Path, PathBuf};

use super::Dataset;
use crate::error::{Error, Result};
use crate::substrate::Geometry;

/// Image side, pixels.
pub const SIDE: usize = 32;
/// Colour channels.
pub const CHANNELS: usize = 3;
/// Bytes of one record: the label and 32 × 32 × 3 values.
pub const RECORD: usize = 1 + SIDE * SIDE * CHANNELS;
/// Records per official file.
pub const PER_FILE: usize = 10_000;
/// The training files, then the test file.
pub const FILES: [&str; 6] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
    "test_batch.bin",
];
/// Folder of the extracted files inside the dataset's directory.
pub const FOLDER: &str = "cifar-10-batches-bin";
/// The official archive and its published MD5 (from the dataset's page).
pub const ARCHIVE: &str = "cifar-10-binary.tar.gz";
pub const ARCHIVE_MD5: &str = "c32a1d4ab5d03f1284b67883e8d87530";
/// Where the dataset's authors publish the archive.
pub const MIRROR: &str = "https://www.cs.toronto.edu/~kriz/";
/// Validation images taken from the end of the training files (the official 50,000
/// training images: the first 45,000 train, the last 5,000 validate).
pub const VALID: usize = 5_000;

/// The shape of a CIFAR-10 image.
pub fn geometry() -> Geometry {
    Geometry {
        h: SIDE,
        w: SIDE,
        c: CHANNELS,
    }
}

/// The folder the files are read from, under data directory `dir`.
pub fn folder(dir: &Path) -> PathBuf {
    dir.join("cifar10").join(FOLDER)
}

fn missing(p: &Path, dir: &Path) -> Error {
    Error::data(
        p,
        format!(
            "file missing; CIFAR-10 (binary version) not found in {}; on a networked machine \
             run `mortal data fetch cifar10 --data-dir {}` (downloads {MIRROR}{ARCHIVE}, \
             162 MB, and checks its MD5), or extract the official archive there yourself",
            folder(dir).display(),
            dir.display()
        ),
    )
}

/// Reads one file of records into `pixels` and `labels`; errors name the file.
fn read_file(p: &Path, dir: &Path, pixels: &mut Vec<u8>, labels: &mut Vec<u8>) -> Result<()> {
    let bytes = match std::fs::read(p) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(missing(p, dir)),
        Err(e) if e.kind() == io::ErrorKind::IsADirectory => {
            return Err(Error::data(p, "is a directory, not a CIFAR-10 batch file"));
        }
        Err(e) => return Err(Error::data(p, format!("cannot be read ({e})"))),
    };
    if bytes.is_empty() || !bytes.len().is_multiple_of(RECORD) {
        return Err(Error::data(
            p,
            format!(
                "{} bytes is not a whole number of {RECORD}-byte records (an official file has \
                 {} bytes); the file is truncated or not CIFAR-10's binary version",
                bytes.len(),
                PER_FILE * RECORD
            ),
        ));
    }
    let plane = SIDE * SIDE;
    for (k, rec) in bytes.chunks_exact(RECORD).enumerate() {
        if rec[0] >= 10 {
            return Err(Error::data(
                p,
                format!("record {k} has label {}; labels must be 0..=9", rec[0]),
            ));
        }
        labels.push(rec[0]);
        let planes = &rec[1..];
        for i in 0..plane {
            for c in 0..CHANNELS {
                pixels.push(planes[c * plane + i]);
            }
        }
    }
    Ok(())
}

/// Loads the training images (all five files, in order) and the test images.
pub fn load(dir: &Path) -> Result<(Dataset, Dataset)> {
    let f = folder(dir);
    let mut sets = Vec::with_capacity(2);
    for files in [&FILES[..5], &FILES[5..]] {
        let (mut pixels, mut labels) = (Vec::new(), Vec::new());
        for name in files {
            read_file(&f.join(name), dir, &mut pixels, &mut labels)?;
        }
        sets.push(Dataset::with_geometry(pixels, labels, geometry())?);
    }
    let test = sets.pop().expect("two sets");
    let train = sets.pop().expect("two sets");
    Ok((train, test))
}

/// How many of `n` training images validate: the last 5,000 of the official 50,000, or a
/// tenth of a smaller set.
pub fn valid_count(n: usize) -> usize {
    VALID.min(n / 10)
}

/// One line per file: present with its record count, or missing.
pub fn check(dir: &Path) -> Vec<(PathBuf, std::result::Result<usize, String>)> {
    let f = folder(dir);
    FILES
        .iter()
        .map(|name| {
            let p = f.join(name);
            let state = match std::fs::metadata(&p) {
                Ok(m) if m.is_file() && m.len() as usize == PER_FILE * RECORD => Ok(PER_FILE),
                Ok(m) if m.is_file() => Err(format!(
                    "{} bytes, expected {} (truncated or not the binary version)",
                    m.len(),
                    PER_FILE * RECORD
                )),
                Ok(_) => Err("not a regular file".into()),
                Err(_) => Err("missing".into()),
            };
            (p, state)
        })
        .collect()
}

/// Downloads the official archive into `<dir>/cifar10/` (MD5 checked, atomically), then
/// extracts the six batch files into `<dir>/cifar10/cifar-10-batches-bin/` (only those
/// regular files; nothing else in the archive is written). Returns the extracted paths.
pub fn fetch(dir: &Path, mirror: Option<&str>) -> Result<Vec<PathBuf>> {
    let base = dir.join("cifar10");
    let archive = super::files::ManifestFile {
        name: ARCHIVE,
        md5: ARCHIVE_MD5,
    };
    super::files::fetch_files(&[archive], &base, mirror.unwrap_or(MIRROR))?;
    extract(&base.join(ARCHIVE), &folder(dir))
}

/// Extracts the batch files of a `cifar-10-binary.tar.gz` into `dest`.
pub fn extract(archive: &Path, dest: &Path) -> Result<Vec<PathBuf>> {
    let file = std::fs::File::open(archive)
        .map_err(|e| Error::io(format!("cannot open {}", archive.display()), e))?;
    std::fs::create_dir_all(dest)
        .map_err(|e| Error::io(format!("creating directory {}", dest.display()), e))?;
    let corrupt = |e: io::Error| Error::data(archive, format!("not a readable tar.gz ({e})"));
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut out = Vec::new();
    for entry in tar.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().map_err(corrupt)?.into_owned();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !FILES.contains(&name) {
            continue;
        }
        let target = dest.join(name);
        let tmp = dest.join(format!(".{name}.part"));
        let mut w = std::fs::File::create(&tmp)
            .map_err(|e| Error::io(format!("cannot write {}", tmp.display()), e))?;
        io::copy(&mut entry, &mut w).map_err(corrupt)?;
        std::fs::rename(&tmp, &target)
            .map_err(|e| Error::io(format!("cannot write {}", target.display()), e))?;
        out.push(target);
    }
    if out.len() != FILES.len() {
        return Err(Error::data(
            archive,
            format!(
                "holds {} of the {} batch files; not the binary version of CIFAR-10",
                out.len(),
                FILES.len()
            ),
        ));
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes CIFAR-format files with `per_file` records each into `dir`'s folder:
    /// record k of file f has label (f + k) % 10 and value (k + c) % 256 in channel c's
    /// plane at pixel 0, and 7·c elsewhere.
    pub(crate) fn write_fixture(dir: &Path, per_file: usize) {
        let f = folder(dir);
        std::fs::create_dir_all(&f).unwrap();
        for (fi, name) in FILES.iter().enumerate() {
            let mut bytes = Vec::with_capacity(per_file * RECORD);
            for k in 0..per_file {
                bytes.push(((fi + k) % 10) as u8);
                for c in 0..CHANNELS {
                    for i in 0..SIDE * SIDE {
                        bytes.push(if i == 0 {
                            ((k + c) % 256) as u8
                        } else {
                            (7 * c) as u8
                        });
                    }
                }
            }
            std::fs::write(f.join(name), bytes).unwrap();
        }
    }

    #[test]
    fn reads_records_as_interleaved_colour_maps() {
        let dir = tempfile::tempdir().unwrap();
        write_fixture(dir.path(), 4);
        let (train, test) = load(dir.path()).unwrap();
        assert_eq!((train.len(), test.len()), (20, 4));
        assert_eq!(train.pixels(), 3072);
        assert_eq!(train.geometry(), geometry());
        // File 1 (index 1), record 2: label 3; pixel 0 holds (2, 3, 4); pixel 1 (0, 7, 14).
        let img = train.image(4 + 2);
        assert_eq!(train.label(6), 3);
        assert_eq!(&img[..6], &[2, 3, 4, 0, 7, 14]);
        assert_eq!(test.label(1), 6);
    }

    #[test]
    fn bad_files_are_named_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("data_batch_1.bin") && e.contains("mortal data fetch cifar10"),
            "{e}"
        );
        write_fixture(dir.path(), 2);
        let f = folder(dir.path());
        // Truncated.
        let p = f.join("data_batch_3.bin");
        let mut b = std::fs::read(&p).unwrap();
        b.truncate(RECORD + 100);
        std::fs::write(&p, &b).unwrap();
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("data_batch_3.bin") && e.contains("not a whole number"),
            "{e}"
        );
        // A label out of range.
        b.truncate(RECORD);
        b[0] = 10;
        std::fs::write(&p, &b).unwrap();
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("record 0 has label 10"), "{e}");
        // A directory where the test file should be.
        std::fs::remove_file(f.join("test_batch.bin")).unwrap();
        std::fs::create_dir(f.join("test_batch.bin")).unwrap();
        b[0] = 1;
        std::fs::write(&p, &b).unwrap();
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("test_batch.bin"), "{e}");
        assert_eq!(check(dir.path()).iter().filter(|c| c.1.is_ok()).count(), 0);
    }

    #[test]
    fn extracts_only_the_batch_files_of_an_archive() {
        let dir = tempfile::tempdir().unwrap();
        write_fixture(dir.path(), 1);
        let src = folder(dir.path());
        let archive = dir.path().join(ARCHIVE);
        {
            let gz = flate2::write::GzEncoder::new(
                std::fs::File::create(&archive).unwrap(),
                flate2::Compression::fast(),
            );
            let mut t = tar::Builder::new(gz);
            for name in FILES {
                t.append_path_with_name(src.join(name), format!("{FOLDER}/{name}"))
                    .unwrap();
            }
            t.append_path_with_name(src.join(FILES[0]), format!("{FOLDER}/readme.html"))
                .unwrap();
            t.into_inner().unwrap().finish().unwrap();
        }
        let dest = dir.path().join("out");
        let got = extract(&archive, &dest).unwrap();
        assert_eq!(got.len(), 6);
        assert!(!dest.join("readme.html").exists());
        assert_eq!(
            std::fs::read(dest.join(FILES[2])).unwrap(),
            std::fs::read(src.join(FILES[2])).unwrap()
        );
        // Not a tar.gz.
        std::fs::write(&archive, b"not an archive").unwrap();
        assert!(extract(&archive, &dest).is_err());
    }
}
