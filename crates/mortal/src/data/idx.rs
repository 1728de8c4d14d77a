//! Reader for gzip-compressed IDX files, the format of the official MNIST and
//! Fashion-MNIST distributions.
//!
//! After decompression an IDX file is a 4-byte magic number `00 00 TT NN` (`TT` the
//! element type, `NN` the number of dimensions), `NN` big-endian `u32` dimension sizes,
//! then the elements, last dimension varying fastest. Only type `0x08` (unsigned byte)
//! and 1 to 3 dimensions are accepted here. Every malformed input gives an
//! [`Error::Data`] naming the file and the problem; nothing here panics on bad input.

use std::io::{self, Read, Write};
use std::path::Path;

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;

use super::{CLASSES, SIDE};
use crate::error::{Error, Result};

/// IDX element type code for unsigned bytes, the only one supported.
pub const TYPE_U8: u8 = 0x08;
/// Largest number of dimensions accepted.
pub const MAX_DIMS: usize = 3;

/// The two bytes that start every gzip stream (RFC 1952).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// A decoded IDX array of unsigned bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    /// Size of each dimension, outermost first.
    pub dims: Vec<usize>,
    /// The elements, row-major (last dimension varying fastest); `dims` product long.
    pub data: Vec<u8>,
}

/// Reads and validates a gzip-compressed IDX file of unsigned bytes.
pub fn read(path: &Path) -> Result<IdxArray> {
    let raw = std::fs::read(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => Error::data(path, "file not found"),
        _ => Error::io(format!("reading {}", path.display()), e),
    })?;
    decode(path, &raw)
}

/// Decodes the bytes of a gzip-compressed IDX file; `path` is only used in errors.
pub fn decode(path: &Path, gz: &[u8]) -> Result<IdxArray> {
    if gz.len() < 2 || gz[..2] != GZIP_MAGIC {
        return Err(Error::data(
            path,
            "not a gzip file (expected a gzip-compressed IDX file such as the official \
             `*-ubyte.gz`; do not decompress the downloaded files)",
        ));
    }
    let mut dec = MultiGzDecoder::new(gz);

    let mut magic = [0u8; 4];
    read_header(path, &mut dec, &mut magic)?;
    if magic[0] != 0 || magic[1] != 0 {
        return Err(Error::data(
            path,
            format!(
                "not an IDX file: magic number {:02x}{:02x}{:02x}{:02x} does not start with 0000",
                magic[0], magic[1], magic[2], magic[3]
            ),
        ));
    }
    if magic[2] != TYPE_U8 {
        return Err(Error::data(
            path,
            format!(
                "unsupported IDX type code 0x{:02x}; only 0x08 (unsigned byte) is supported",
                magic[2]
            ),
        ));
    }
    let ndims = usize::from(magic[3]);
    if !(1..=MAX_DIMS).contains(&ndims) {
        return Err(Error::data(
            path,
            format!("IDX file has {ndims} dimensions; expected 1 to {MAX_DIMS}"),
        ));
    }

    let mut dims = Vec::with_capacity(ndims);
    for _ in 0..ndims {
        let mut b = [0u8; 4];
        read_header(path, &mut dec, &mut b)?;
        dims.push(u32::from_be_bytes(b) as usize);
    }
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n < usize::MAX)
        .ok_or_else(|| Error::data(path, format!("IDX dimensions {dims:?} are too large")))?;

    // Read at most one byte more than announced so trailing data is detected without
    // trusting the header for the allocation size (a corrupt header could claim
    // gigabytes); the capacity hint is capped accordingly.
    let mut data = Vec::with_capacity(expected.min(64 << 20) + 1);
    (&mut dec)
        .take(expected as u64 + 1)
        .read_to_end(&mut data)
        .map_err(|e| gzip_error(path, &e))?;
    if data.len() < expected {
        return Err(Error::data(
            path,
            format!(
                "truncated: dimensions {dims:?} need {expected} bytes of data, got {} bytes",
                data.len()
            ),
        ));
    }
    if data.len() > expected {
        return Err(Error::data(
            path,
            format!(
                "trailing bytes after the {expected} bytes of data announced by dimensions {dims:?}"
            ),
        ));
    }
    Ok(IdxArray { dims, data })
}

/// Fills `buf` from the decompressed stream, with a clear error when it ends early.
fn read_header(path: &Path, dec: &mut impl Read, buf: &mut [u8]) -> Result<()> {
    dec.read_exact(buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            Error::data(path, "truncated: file ends inside the IDX header")
        } else {
            gzip_error(path, &e)
        }
    })
}

fn gzip_error(path: &Path, e: &io::Error) -> Error {
    Error::data(
        path,
        format!("corrupt or truncated gzip stream ({e}); download the file again"),
    )
}

/// Reads an IDX image file: returns the number of images and their pixels
/// (28 × 28 = 784 bytes per image, row-major).
pub fn read_images(path: &Path) -> Result<(usize, Vec<u8>)> {
    let a = read(path)?;
    match a.dims[..] {
        [n, SIDE, SIDE] => Ok((n, a.data)),
        _ => Err(Error::data(
            path,
            format!(
                "expected an image file with dimensions [count, {SIDE}, {SIDE}], found {:?}",
                a.dims
            ),
        )),
    }
}

/// Reads an IDX label file: one byte per item, each 0..=9.
pub fn read_labels(path: &Path) -> Result<Vec<u8>> {
    let a = read(path)?;
    if a.dims.len() != 1 {
        return Err(Error::data(
            path,
            format!(
                "expected a label file with 1 dimension, found dimensions {:?}",
                a.dims
            ),
        ));
    }
    if let Some((i, &l)) = a
        .data
        .iter()
        .enumerate()
        .find(|&(_, &l)| usize::from(l) >= CLASSES)
    {
        return Err(Error::data(
            path,
            format!("label {l} at index {i} is out of range 0..={}", CLASSES - 1),
        ));
    }
    Ok(a.data)
}

/// Writes `data` as a gzip-compressed IDX file of unsigned bytes with dimensions `dims`
/// (used to generate test fixtures).
pub fn write_gz(path: &Path, dims: &[usize], data: &[u8]) -> Result<()> {
    let bad = |reason: &str| Error::param("idx dims", format!("{dims:?}"), reason);
    if !(1..=MAX_DIMS).contains(&dims.len()) {
        return Err(bad("expected 1 to 3 dimensions"));
    }
    let mut header = vec![0, 0, TYPE_U8, dims.len() as u8];
    for &d in dims {
        let d = u32::try_from(d).map_err(|_| bad("each dimension must fit in 32 bits"))?;
        header.extend_from_slice(&d.to_be_bytes());
    }
    if dims.iter().product::<usize>() != data.len() {
        return Err(bad(&format!(
            "dimensions do not match the {} data bytes",
            data.len()
        )));
    }
    let ctx = || format!("writing {}", path.display());
    let file = std::fs::File::create(path).map_err(|e| Error::io(ctx(), e))?;
    let mut enc = GzEncoder::new(io::BufWriter::new(file), Compression::fast());
    enc.write_all(&header).map_err(|e| Error::io(ctx(), e))?;
    enc.write_all(data).map_err(|e| Error::io(ctx(), e))?;
    enc.finish()
        .and_then(|mut w| w.flush())
        .map_err(|e| Error::io(ctx(), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::PIXELS;

    /// Gzips arbitrary bytes (to build malformed fixtures `write_gz` refuses to write).
    fn raw_gz(path: &Path, bytes: &[u8]) {
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(bytes).unwrap();
        std::fs::write(path, enc.finish().unwrap()).unwrap();
    }

    fn header(type_code: u8, dims: &[u32]) -> Vec<u8> {
        let mut h = vec![0, 0, type_code, dims.len() as u8];
        for d in dims {
            h.extend_from_slice(&d.to_be_bytes());
        }
        h
    }

    fn err(r: Result<impl std::fmt::Debug>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn reads_good_images_and_labels() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("img.gz");
        let lab = dir.path().join("lab.gz");
        let pixels: Vec<u8> = (0..3 * PIXELS).map(|i| (i % 251) as u8).collect();
        write_gz(&img, &[3, 28, 28], &pixels).unwrap();
        write_gz(&lab, &[3], &[7, 0, 9]).unwrap();

        let (n, px) = read_images(&img).unwrap();
        assert_eq!(n, 3);
        assert_eq!(px, pixels);
        assert_eq!(read_labels(&lab).unwrap(), vec![7, 0, 9]);
        let a = read(&lab).unwrap();
        assert_eq!(a.dims, vec![3]);

        // Zero items is a valid (empty) array.
        write_gz(&lab, &[0], &[]).unwrap();
        assert!(read_labels(&lab).unwrap().is_empty());
    }

    #[test]
    fn rejects_truncated_payload_with_expected_and_got() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.gz");
        let mut bytes = header(0x08, &[2, 28, 28]);
        bytes.extend(vec![1u8; PIXELS + 10]);
        raw_gz(&p, &bytes);
        let e = err(read_images(&p));
        assert!(e.contains("t.gz") && e.contains("truncated"), "{e}");
        assert!(e.contains(&(2 * PIXELS).to_string()), "{e}");
        assert!(e.contains(&(PIXELS + 10).to_string()), "{e}");

        // Truncated inside the header.
        raw_gz(&p, &[0, 0, 8, 3, 0, 0]);
        let e = err(read(&p));
        assert!(e.contains("header"), "{e}");

        // Gzip stream itself cut short.
        write_gz(&p, &[4], &[1, 2, 3, 4]).unwrap();
        let full = std::fs::read(&p).unwrap();
        std::fs::write(&p, &full[..full.len() - 6]).unwrap();
        let e = err(read(&p));
        assert!(e.contains("t.gz") && e.contains("gzip"), "{e}");
    }

    #[test]
    fn rejects_trailing_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.gz");
        let mut bytes = header(0x08, &[3]);
        bytes.extend([1, 2, 3, 4]);
        raw_gz(&p, &bytes);
        let e = err(read(&p));
        assert!(e.contains("x.gz") && e.contains("trailing"), "{e}");
    }

    #[test]
    fn rejects_wrong_magic() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.gz");
        let mut bytes = header(0x08, &[1]);
        bytes[0] = 0x12;
        bytes.push(0);
        raw_gz(&p, &bytes);
        let e = err(read(&p));
        assert!(e.contains("m.gz") && e.contains("not an IDX file"), "{e}");
    }

    #[test]
    fn rejects_wrong_type_code_and_dimension_count() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.gz");
        let mut bytes = header(0x0D, &[1]);
        bytes.extend([0, 0, 0, 0]);
        raw_gz(&p, &bytes);
        let e = err(read(&p));
        assert!(e.contains("t.gz") && e.contains("type code 0x0d"), "{e}");

        raw_gz(&p, &header(0x08, &[]));
        assert!(err(read(&p)).contains("0 dimensions"));
        raw_gz(&p, &header(0x08, &[1, 1, 1, 1]));
        assert!(err(read(&p)).contains("4 dimensions"));
    }

    #[test]
    fn rejects_non_gzip_and_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("plain-idx");
        let mut bytes = header(0x08, &[1]);
        bytes.push(3);
        std::fs::write(&p, &bytes).unwrap();
        let e = err(read(&p));
        assert!(
            e.contains("plain-idx") && e.contains("not a gzip file"),
            "{e}"
        );
        std::fs::write(&p, []).unwrap();
        assert!(err(read(&p)).contains("not a gzip file"));

        let e = err(read(&dir.path().join("absent.gz")));
        assert!(e.contains("absent.gz") && e.contains("not found"), "{e}");
    }

    #[test]
    fn rejects_label_out_of_range_naming_index() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l.gz");
        write_gz(&p, &[5], &[1, 2, 9, 10, 200]).unwrap();
        let e = err(read_labels(&p));
        assert!(
            e.contains("l.gz") && e.contains("label 10 at index 3"),
            "{e}"
        );

        write_gz(&p, &[2, 1], &[1, 2]).unwrap();
        assert!(err(read_labels(&p)).contains("1 dimension"));
    }

    #[test]
    fn rejects_images_not_28_by_28() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("i.gz");
        write_gz(&p, &[2, 32, 32], &vec![0; 2 * 32 * 32]).unwrap();
        let e = err(read_images(&p));
        assert!(e.contains("i.gz") && e.contains("[2, 32, 32]"), "{e}");
        write_gz(&p, &[PIXELS], &vec![0; PIXELS]).unwrap();
        assert!(err(read_images(&p)).contains("[784]"));
    }

    #[test]
    fn never_panics_on_garbage() {
        // Every prefix of a valid file and a few bit flips: errors, never panics.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("g.gz");
        write_gz(&p, &[2, 28, 28], &vec![7; 2 * PIXELS]).unwrap();
        let full = std::fs::read(&p).unwrap();
        for cut in 0..full.len() {
            assert!(decode(&p, &full[..cut]).is_err(), "prefix {cut} accepted");
        }
        for i in 0..full.len() {
            let mut b = full.clone();
            b[i] ^= 0x55;
            let _ = decode(&p, &b);
        }
        // A header announcing 4G × 4G × 4G bytes must not overflow or allocate.
        let mut h = vec![0, 0, 8, 3];
        h.extend([0xff; 12]);
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(&h).unwrap();
        assert!(decode(&p, &enc.finish().unwrap()).is_err());
    }

    #[test]
    fn write_gz_refuses_inconsistent_input() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.gz");
        assert!(write_gz(&p, &[3], &[1, 2]).is_err());
        assert!(write_gz(&p, &[], &[]).is_err());
        assert!(write_gz(&p, &[1, 1, 1, 1], &[1]).is_err());
    }
}
