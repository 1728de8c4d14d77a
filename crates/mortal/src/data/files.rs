//! The official MNIST and Fashion-MNIST files: their manifest (names, published MD5s,
//! default mirrors), loading them from a data directory, downloading them and checking
//! them.
//!
//! Layout of a data directory: `DIR/mnist/` and `DIR/fashion-mnist/`, each holding the
//! four original gzip files under their original names.

use std::fmt;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use md5::{Digest, Md5};

use super::{Dataset, DatasetKind, PIXELS, idx};
use crate::error::{Error, Result};

/// Training images, 60,000 × 28 × 28.
pub const TRAIN_IMAGES: &str = "train-images-idx3-ubyte.gz";
/// Training labels, 60,000.
pub const TRAIN_LABELS: &str = "train-labels-idx1-ubyte.gz";
/// Test images, 10,000 × 28 × 28.
pub const TEST_IMAGES: &str = "t10k-images-idx3-ubyte.gz";
/// Test labels, 10,000.
pub const TEST_LABELS: &str = "t10k-labels-idx1-ubyte.gz";

/// The datasets that come as files.
pub const OFFICIAL_KINDS: [DatasetKind; 2] = [DatasetKind::Mnist, DatasetKind::FashionMnist];

/// One file of a manifest: its name and the hex MD5 of its (compressed) bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ManifestFile<'a> {
    /// File name, both on the mirror and on disk.
    pub name: &'a str,
    /// Expected MD5 of the file as published, lowercase hex.
    pub md5: &'a str,
}

/// The published files of one dataset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatasetFiles {
    pub kind: DatasetKind,
    /// Default download location; file names are appended to it.
    pub mirror: &'static str,
    /// Training images, training labels, test images, test labels, in that order.
    pub files: [ManifestFile<'static>; 4],
}

const fn file(name: &'static str, md5: &'static str) -> ManifestFile<'static> {
    ManifestFile { name, md5 }
}

static MNIST: DatasetFiles = DatasetFiles {
    kind: DatasetKind::Mnist,
    mirror: "https://ossci-datasets.s3.amazonaws.com/mnist/",
    files: [
        file(TRAIN_IMAGES, "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        file(TRAIN_LABELS, "d53e105ee54ea40749a09fcbcd1e9432"),
        file(TEST_IMAGES, "9fb629c4189551a2d022fa330f9573f3"),
        file(TEST_LABELS, "ec29112dd5afa0611ce80d1b7f02629c"),
    ],
};

static FASHION_MNIST: DatasetFiles = DatasetFiles {
    kind: DatasetKind::FashionMnist,
    mirror: "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    files: [
        file(TRAIN_IMAGES, "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        file(TRAIN_LABELS, "25c81989df183df01b3e8a0aad5dffbe"),
        file(TEST_IMAGES, "bef4ecab320f06d8554ea6380940ec79"),
        file(TEST_LABELS, "bb300cfdad3c16e7a12a480ee83cd310"),
    ],
};

/// The manifest of an official dataset (`Synthetic` has no files: parameter error).
pub fn manifest(kind: DatasetKind) -> Result<&'static DatasetFiles> {
    match kind {
        DatasetKind::Mnist => Ok(&MNIST),
        DatasetKind::FashionMnist => Ok(&FASHION_MNIST),
        DatasetKind::Synthetic | DatasetKind::SyntheticColor => Err(Error::param(
            "dataset",
            kind,
            "the synthetic set is generated in memory and has no files; expected mnist or fashion-mnist",
        )),
        DatasetKind::Cifar10 => Err(Error::param(
            "dataset",
            kind,
            "CIFAR-10 comes as one archive (see `mortal data fetch cifar10`), not IDX files",
        )),
    }
}

/// The folder holding the files of `kind` under data directory `dir`.
pub fn dataset_dir(kind: DatasetKind, dir: &Path) -> PathBuf {
    dir.join(kind.name())
}

/// Loads the official training (60,000) and test (10,000) sets of `kind` from
/// `dir/<kind>/`.
pub fn load_official(kind: DatasetKind, dir: &Path) -> Result<(Dataset, Dataset)> {
    let m = manifest(kind)?;
    let folder = dataset_dir(kind, dir);
    for f in &m.files {
        let p = folder.join(f.name);
        // Something there that is not a readable file (a directory, a symlink loop, a
        // dangling link) is said as such, not reported as missing.
        match std::fs::metadata(&p) {
            Ok(md) if md.is_file() => continue,
            Ok(_) => {
                return Err(Error::data(
                    p,
                    "is not a regular file (a directory?); put the official .gz file here",
                ));
            }
            Err(e) if e.kind() != io::ErrorKind::NotFound || p.symlink_metadata().is_ok() => {
                return Err(Error::data(
                    p,
                    format!("cannot be opened ({e}); is it a broken link or a link loop?"),
                ));
            }
            Err(_) => {
                return Err(Error::data(
                    p,
                    format!(
                        "file missing; dataset not found in {folder}; download it with \
                     `mortal data fetch {name} --data-dir {dir}`, or point --data-dir / {env} at \
                     a directory containing mnist/ and fashion-mnist/",
                        folder = folder.display(),
                        name = kind.name(),
                        dir = dir.display(),
                        env = super::DATA_ENV,
                    ),
                ));
            }
        }
    }
    let path = |i: usize| folder.join(m.files[i].name);
    // The two image files dominate the time (decompression); read them in parallel.
    let (train, test) = std::thread::scope(|s| {
        let test = s.spawn(|| load_pair(&path(2), &path(3)));
        let train = load_pair(&path(0), &path(1));
        let test = test
            .join()
            .unwrap_or_else(|_| Err(Error::data(path(2), "reader thread panicked")));
        (train, test)
    });
    Ok((train?, test?))
}

/// Loads one images file and its labels file as a dataset.
fn load_pair(images: &Path, labels: &Path) -> Result<Dataset> {
    let (n, pixels) = idx::read_images(images)?;
    let labels_v = idx::read_labels(labels)?;
    if n != labels_v.len() {
        return Err(Error::data(
            images,
            format!(
                "{n} images but {} labels in {}; the files do not belong together",
                labels_v.len(),
                labels.display()
            ),
        ));
    }
    debug_assert_eq!(pixels.len(), n * PIXELS);
    Dataset::new(pixels, labels_v)
}

/// Downloads the four files of `kind` into `dir/<kind>/` from `mirror` (default: the
/// manifest's). Files already present with the right MD5 are kept. Returns the paths of
/// the files actually downloaded (empty when everything was already there).
pub fn fetch(kind: DatasetKind, dir: &Path, mirror: Option<&str>) -> Result<Vec<PathBuf>> {
    let m = manifest(kind)?;
    fetch_files(
        &m.files,
        &dataset_dir(kind, dir),
        mirror.unwrap_or(m.mirror),
    )
}

/// Downloads `files` from `base_url` (a prefix to which each file name is appended) into
/// `dir`, verifying each against its MD5. A file is written under a temporary name in
/// `dir` and renamed only once its MD5 matches, so a corrupt or interrupted download
/// never leaves a file with the final name. Files already present with the right MD5 are
/// skipped; present ones with a wrong MD5 are replaced. Returns the downloaded paths.
pub fn fetch_files(files: &[ManifestFile<'_>], dir: &Path, base_url: &str) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating directory {}", dir.display()), e))?;
    let agent = agent(base_url);
    let mut done = Vec::new();
    for f in files {
        let dest = dir.join(f.name);
        if dest.is_file() && md5_file(&dest).is_ok_and(|h| h.eq_ignore_ascii_case(f.md5)) {
            continue;
        }
        let url = join_url(base_url, f.name);
        download(&agent, &url, f.md5, dir, &dest)?;
        done.push(dest);
    }
    Ok(done)
}

/// `base` + `name`, with exactly one slash between them.
fn join_url(base: &str, name: &str) -> String {
    if base.ends_with('/') {
        format!("{base}{name}")
    } else {
        format!("{base}/{name}")
    }
}

fn agent(base_url: &str) -> ureq::Agent {
    let mut cfg = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_per_read(Some(Duration::from_secs(60)));
    // A loopback mirror (tests, local caches) is never reached through a proxy.
    let host = base_url
        .split_once("://")
        .map_or(base_url, |(_, rest)| rest);
    if ["127.0.0.1", "localhost", "[::1]"]
        .iter()
        .any(|h| host.starts_with(h))
    {
        cfg = cfg.proxy(None);
    }
    cfg.build().into()
}

fn download(agent: &ureq::Agent, url: &str, md5: &str, dir: &Path, dest: &Path) -> Result<()> {
    let fail = |what: String| Error::Download {
        url: url.to_string(),
        what,
    };
    let resp = agent
        .get(url)
        // The files are gzip already; a transparently decoded body would fail the MD5.
        .header("Accept-Encoding", "identity")
        .call()
        .map_err(|e| fail(e.to_string()))?;
    let status = resp.status();
    if !status.is_success() {
        let hint = if status.as_u16() == 404 {
            " (file not on this mirror; check the mirror URL)"
        } else {
            ""
        };
        return Err(fail(format!("server answered HTTP {status}{hint}")));
    }

    let mut tmp = crate::fsutil::temp_file_in(dir, ".download-")
        .map_err(|e| Error::io(format!("creating a temporary file in {}", dir.display()), e))?;
    let mut body = resp.into_body().into_reader();
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 1 << 16];
    let write_ctx = || format!("writing {}", tmp_name(dest));
    {
        let mut out = io::BufWriter::new(tmp.as_file_mut());
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(fail(format!("interrupted: {e}; nothing was saved"))),
            };
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])
                .map_err(|e| Error::io(write_ctx(), e))?;
        }
        out.flush().map_err(|e| Error::io(write_ctx(), e))?;
    }
    let got = hex(&hasher.finalize());
    if !got.eq_ignore_ascii_case(md5) {
        return Err(fail(format!(
            "MD5 mismatch: expected {}, got {got}; the file was not saved",
            md5.to_ascii_lowercase()
        )));
    }
    tmp.as_file()
        .sync_all()
        .map_err(|e| Error::io(write_ctx(), e))?;
    tmp.persist(dest).map_err(|e| {
        Error::io(
            format!("moving the download to {}", dest.display()),
            e.error,
        )
    })?;
    Ok(())
}

fn tmp_name(dest: &Path) -> String {
    format!("a temporary file for {}", dest.display())
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(2 * bytes.len()), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Lowercase hex MD5 of a file's bytes.
pub fn md5_file(path: &Path) -> io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(hex(&hasher.finalize()))
}

/// State of one official file on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileState {
    /// Present, MD5 as published.
    Ok,
    /// Not there.
    Missing,
    /// Present but with another MD5.
    Mismatch { got: String },
    /// Present but could not be read.
    Unreadable(String),
}

/// Result of checking one official file (see [`check`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileStatus {
    pub kind: DatasetKind,
    pub name: &'static str,
    pub path: PathBuf,
    /// Published MD5.
    pub expected_md5: &'static str,
    pub state: FileState,
}

impl FileStatus {
    /// True when the file is present with the published MD5.
    pub fn is_ok(&self) -> bool {
        self.state == FileState::Ok
    }
}

impl fmt::Display for FileStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = format!("{}/{}", self.kind, self.name);
        match &self.state {
            FileState::Ok => write!(f, "ok        {what}: MD5 {} matches", self.expected_md5),
            FileState::Missing => write!(f, "MISSING   {what}: no file at {}", self.path.display()),
            FileState::Mismatch { got } => write!(
                f,
                "MISMATCH  {what}: MD5 {got}, expected {} ({}; fetch again to replace it)",
                self.expected_md5,
                self.path.display()
            ),
            FileState::Unreadable(e) => {
                write!(
                    f,
                    "ERROR     {what}: cannot read {}: {e}",
                    self.path.display()
                )
            }
        }
    }
}

/// Checks every official file under data directory `dir`: present or missing, MD5 as
/// published or not. One entry per dataset and file, in manifest order.
pub fn check(dir: &Path) -> Vec<FileStatus> {
    OFFICIAL_KINDS
        .iter()
        .flat_map(|&kind| check_kind(kind, dir))
        .collect()
}

/// Checks the files of one dataset (none for `Synthetic`).
pub fn check_kind(kind: DatasetKind, dir: &Path) -> Vec<FileStatus> {
    let Ok(m) = manifest(kind) else {
        return Vec::new();
    };
    let folder = dataset_dir(kind, dir);
    m.files
        .iter()
        .map(|f| {
            let path = folder.join(f.name);
            let state = match md5_file(&path) {
                Ok(h) if h.eq_ignore_ascii_case(f.md5) => FileState::Ok,
                Ok(got) => FileState::Mismatch { got },
                Err(e) if e.kind() == io::ErrorKind::NotFound => FileState::Missing,
                Err(e) => FileState::Unreadable(e.to_string()),
            };
            FileStatus {
                kind,
                name: f.name,
                path,
                expected_md5: f.md5,
                state,
            }
        })
        .collect()
}

/// True when `statuses` contain all four files of `kind` and each is present and valid.
pub fn is_complete(statuses: &[FileStatus], kind: DatasetKind) -> bool {
    let Ok(m) = manifest(kind) else {
        return false;
    };
    m.files.iter().all(|f| {
        statuses
            .iter()
            .any(|s| s.kind == kind && s.name == f.name && s.is_ok())
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use super::*;

    /// What the test server answers for a path.
    #[derive(Clone)]
    enum Body {
        Bytes(Vec<u8>),
        File(PathBuf),
    }

    /// A loopback HTTP server in a thread, stopped on drop.
    struct TestServer {
        server: Arc<tiny_http::Server>,
        thread: Option<std::thread::JoinHandle<()>>,
        hits: Arc<Mutex<HashMap<String, usize>>>,
        requests: Arc<AtomicUsize>,
        url: String,
    }

    impl TestServer {
        fn start(routes: HashMap<String, Body>) -> Self {
            let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
            let port = server.server_addr().to_ip().unwrap().port();
            let hits = Arc::new(Mutex::new(HashMap::new()));
            let requests = Arc::new(AtomicUsize::new(0));
            let (s, h, r) = (server.clone(), hits.clone(), requests.clone());
            let thread = std::thread::spawn(move || {
                for req in s.incoming_requests() {
                    r.fetch_add(1, Ordering::SeqCst);
                    let name = req.url().trim_start_matches('/').to_string();
                    *h.lock().unwrap().entry(name.clone()).or_insert(0) += 1;
                    let _ = match routes.get(&name) {
                        Some(Body::Bytes(b)) => {
                            req.respond(tiny_http::Response::from_data(b.clone()))
                        }
                        Some(Body::File(p)) => req.respond(tiny_http::Response::from_file(
                            std::fs::File::open(p).unwrap(),
                        )),
                        None => req.respond(tiny_http::Response::empty(404)),
                    };
                }
            });
            TestServer {
                server,
                thread: Some(thread),
                hits,
                requests,
                url: format!("http://127.0.0.1:{port}"),
            }
        }

        fn hits(&self, name: &str) -> usize {
            self.hits.lock().unwrap().get(name).copied().unwrap_or(0)
        }
    }

    impl Drop for TestServer {
        fn drop(&mut self) {
            self.server.unblock();
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    fn md5_of(bytes: &[u8]) -> String {
        hex(&Md5::digest(bytes))
    }

    /// Small valid fixture files: (name, gz bytes).
    fn fixtures(n: usize) -> Vec<(String, Vec<u8>)> {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("i.gz");
        let lab = dir.path().join("l.gz");
        let px: Vec<u8> = (0..n * PIXELS).map(|i| (i * 7 % 256) as u8).collect();
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        idx::write_gz(&img, &[n, 28, 28], &px).unwrap();
        idx::write_gz(&lab, &[n], &labels).unwrap();
        vec![
            ("a-images.gz".into(), std::fs::read(img).unwrap()),
            ("a-labels.gz".into(), std::fs::read(lab).unwrap()),
        ]
    }

    fn dir_names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn manifests_cover_four_files_each() {
        for k in OFFICIAL_KINDS {
            let m = manifest(k).unwrap();
            assert_eq!(m.kind, k);
            let names: Vec<_> = m.files.iter().map(|f| f.name).collect();
            assert_eq!(
                names,
                [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS]
            );
            assert!(m.files.iter().all(|f| f.md5.len() == 32));
            assert!(m.mirror.ends_with('/'));
        }
        assert!(manifest(DatasetKind::Synthetic).is_err());
        assert_eq!(join_url("http://x/a", "f"), "http://x/a/f");
        assert_eq!(join_url("http://x/a/", "f"), "http://x/a/f");
        assert_eq!(md5_of(b""), "d41d8cd98f00b204e9800998ecf8427e");
    }

    #[test]
    fn fetch_good_files_land_atomically() {
        let fx = fixtures(3);
        let server = TestServer::start(
            fx.iter()
                .map(|(n, b)| (n.clone(), Body::Bytes(b.clone())))
                .collect(),
        );
        let md5s: Vec<String> = fx.iter().map(|(_, b)| md5_of(b)).collect();
        let files: Vec<ManifestFile> = fx
            .iter()
            .zip(&md5s)
            .map(|((n, _), m)| ManifestFile { name: n, md5: m })
            .collect();
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("sub/dir");
        // No trailing slash on the base URL.
        let got = fetch_files(&files, &dest, &server.url).unwrap();
        assert_eq!(
            got,
            vec![dest.join("a-images.gz"), dest.join("a-labels.gz")]
        );
        assert_eq!(dir_names(&dest), ["a-images.gz", "a-labels.gz"]);
        for (n, b) in &fx {
            assert_eq!(&std::fs::read(dest.join(n)).unwrap(), b);
        }
        let (count, _) = idx::read_images(&dest.join("a-images.gz")).unwrap();
        assert_eq!(count, 3);
    }

    #[test]
    fn fetch_refuses_wrong_md5_and_leaves_no_file() {
        let fx = fixtures(2);
        let server = TestServer::start(
            fx.iter()
                .map(|(n, b)| (n.clone(), Body::Bytes(b.clone())))
                .collect(),
        );
        let wrong = "0123456789abcdef0123456789abcdef";
        let files = [ManifestFile {
            name: &fx[0].0,
            md5: wrong,
        }];
        let tmp = tempfile::tempdir().unwrap();
        let base = format!("{}/", server.url);
        let e = fetch_files(&files, tmp.path(), &base).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, Error::Download { .. }), "{msg}");
        assert!(msg.contains(&format!("{base}a-images.gz")), "{msg}");
        assert!(
            msg.contains(wrong) && msg.contains(&md5_of(&fx[0].1)),
            "{msg}"
        );
        assert!(
            dir_names(tmp.path()).is_empty(),
            "{:?}",
            dir_names(tmp.path())
        );

        // A present file with a wrong MD5 is not kept either: it is replaced by a good
        // download, and left untouched by a bad one.
        let good_md5 = md5_of(&fx[0].1);
        std::fs::write(tmp.path().join("a-images.gz"), b"junk").unwrap();
        assert!(fetch_files(&files, tmp.path(), &base).is_err());
        assert_eq!(
            std::fs::read(tmp.path().join("a-images.gz")).unwrap(),
            b"junk"
        );
        let files = [ManifestFile {
            name: &fx[0].0,
            md5: &good_md5,
        }];
        fetch_files(&files, tmp.path(), &base).unwrap();
        assert_eq!(
            std::fs::read(tmp.path().join("a-images.gz")).unwrap(),
            fx[0].1
        );
    }

    #[test]
    fn fetch_interrupted_download_leaves_no_file() {
        use std::io::BufRead;
        let fx = fixtures(2);
        let (name, bytes) = &fx[0];
        // A raw server announcing the whole file but closing the connection halfway.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (len, half) = (bytes.len(), bytes[..bytes.len() / 2].to_vec());
        let server = std::thread::spawn(move || {
            let (mut sock, _) = listener.accept().unwrap();
            let mut reader = io::BufReader::new(sock.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 0 && line != "\r\n" {
                line.clear();
            }
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n");
            sock.write_all(head.as_bytes()).unwrap();
            sock.write_all(&half).unwrap();
            // Dropping the socket closes the connection mid-body.
        });
        let md5 = md5_of(bytes);
        let files = [ManifestFile { name, md5: &md5 }];
        let tmp = tempfile::tempdir().unwrap();
        let e = fetch_files(&files, tmp.path(), &url).unwrap_err();
        server.join().unwrap();
        let msg = e.to_string();
        assert!(matches!(e, Error::Download { .. }), "{msg}");
        assert!(msg.contains("interrupted"), "{msg}");
        assert!(
            dir_names(tmp.path()).is_empty(),
            "{:?}",
            dir_names(tmp.path())
        );
    }

    #[test]
    fn fetch_404_is_a_clear_error() {
        let server = TestServer::start(HashMap::new());
        let files = [ManifestFile {
            name: "nothing-here.gz",
            md5: "0123456789abcdef0123456789abcdef",
        }];
        let tmp = tempfile::tempdir().unwrap();
        let msg = fetch_files(&files, tmp.path(), &server.url)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("nothing-here.gz") && msg.contains("404") && msg.contains(&server.url),
            "{msg}"
        );
        assert!(dir_names(tmp.path()).is_empty());
    }

    #[test]
    fn fetch_skips_files_already_present_and_valid() {
        let fx = fixtures(2);
        let server = TestServer::start(
            fx.iter()
                .map(|(n, b)| (n.clone(), Body::Bytes(b.clone())))
                .collect(),
        );
        let md5s: Vec<String> = fx.iter().map(|(_, b)| md5_of(b)).collect();
        let files: Vec<ManifestFile> = fx
            .iter()
            .zip(&md5s)
            .map(|((n, _), m)| ManifestFile { name: n, md5: m })
            .collect();
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join(&fx[0].0), &fx[0].1).unwrap();
        let got = fetch_files(&files, tmp.path(), &server.url).unwrap();
        assert_eq!(got, vec![tmp.path().join(&fx[1].0)]);
        assert_eq!(server.hits(&fx[0].0), 0);
        assert_eq!(server.hits(&fx[1].0), 1);
        assert!(
            fetch_files(&files, tmp.path(), &server.url)
                .unwrap()
                .is_empty()
        );
        assert_eq!(server.requests.load(Ordering::SeqCst), 1);
    }

    /// Writes a small fake dataset with the official names under `dir/mnist/`.
    fn write_fake(dir: &Path, n_train: usize, n_train_labels: usize, n_test: usize) {
        let d = dir.join("mnist");
        std::fs::create_dir_all(&d).unwrap();
        let px = |n: usize| vec![1u8; n * PIXELS];
        let labels = |n: usize| (0..n).map(|i| (i % 10) as u8).collect::<Vec<_>>();
        idx::write_gz(&d.join(TRAIN_IMAGES), &[n_train, 28, 28], &px(n_train)).unwrap();
        idx::write_gz(
            &d.join(TRAIN_LABELS),
            &[n_train_labels],
            &labels(n_train_labels),
        )
        .unwrap();
        idx::write_gz(&d.join(TEST_IMAGES), &[n_test, 28, 28], &px(n_test)).unwrap();
        idx::write_gz(&d.join(TEST_LABELS), &[n_test], &labels(n_test)).unwrap();
    }

    #[test]
    fn load_official_reads_fixture_files() {
        let tmp = tempfile::tempdir().unwrap();
        write_fake(tmp.path(), 12, 12, 5);
        let (train, test) = load_official(DatasetKind::Mnist, tmp.path()).unwrap();
        assert_eq!((train.len(), test.len()), (12, 5));
        assert_eq!(train.labels()[..3], [0, 1, 2]);
        assert!(load_official(DatasetKind::Synthetic, tmp.path()).is_err());
    }

    #[test]
    fn load_official_count_mismatch_names_both_files() {
        let tmp = tempfile::tempdir().unwrap();
        write_fake(tmp.path(), 12, 11, 5);
        let msg = load_official(DatasetKind::Mnist, tmp.path())
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains(TRAIN_IMAGES) && msg.contains(TRAIN_LABELS),
            "{msg}"
        );
        assert!(
            msg.contains("12 images") && msg.contains("11 labels"),
            "{msg}"
        );
    }

    #[test]
    fn load_official_missing_file_says_where_and_how() {
        let tmp = tempfile::tempdir().unwrap();
        let e = load_official(DatasetKind::FashionMnist, tmp.path()).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, Error::Data { .. }));
        let folder = tmp.path().join("fashion-mnist");
        assert!(msg.contains(&folder.display().to_string()), "{msg}");
        assert!(msg.contains(TRAIN_IMAGES), "{msg}");
        assert!(
            msg.contains("mortal data fetch fashion-mnist --data-dir"),
            "{msg}"
        );
        assert!(msg.contains("MORTAL_DATA"), "{msg}");

        write_fake(tmp.path(), 2, 2, 2);
        std::fs::remove_file(tmp.path().join("mnist").join(TEST_LABELS)).unwrap();
        let msg = load_official(DatasetKind::Mnist, tmp.path())
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains(TEST_LABELS) && msg.contains("file missing"),
            "{msg}"
        );
    }

    #[test]
    fn check_reports_missing_mismatch_and_ok() {
        let tmp = tempfile::tempdir().unwrap();
        let st = check(tmp.path());
        assert_eq!(st.len(), 8);
        assert!(st.iter().all(|s| s.state == FileState::Missing));
        assert!(!is_complete(&st, DatasetKind::Mnist));
        assert!(st[0].to_string().contains("MISSING") && st[0].to_string().contains(TRAIN_IMAGES));

        write_fake(tmp.path(), 2, 2, 2);
        let st = check_kind(DatasetKind::Mnist, tmp.path());
        assert!(
            st.iter()
                .all(|s| matches!(s.state, FileState::Mismatch { .. }))
        );
        let line = st[1].to_string();
        assert!(
            line.contains("MISMATCH") && line.contains(st[1].expected_md5),
            "{line}"
        );
        assert!(!line.contains('\n'));
        assert!(check_kind(DatasetKind::Synthetic, tmp.path()).is_empty());
    }

    /// `MORTAL_DATA`, or None (with a note) when unset.
    fn real_data() -> Option<PathBuf> {
        match std::env::var_os(super::super::DATA_ENV) {
            Some(v) if !v.is_empty() => Some(PathBuf::from(v)),
            _ => {
                eprintln!("note: MORTAL_DATA is unset; skipping the test on the real files");
                None
            }
        }
    }

    #[test]
    fn real_mnist_fetch_through_loopback_mirror() {
        let Some(data) = real_data() else { return };
        let src = data.join("mnist");
        let m = manifest(DatasetKind::Mnist).unwrap();
        let server = TestServer::start(
            m.files
                .iter()
                .map(|f| (f.name.to_string(), Body::File(src.join(f.name))))
                .collect(),
        );
        let tmp = tempfile::tempdir().unwrap();
        let mirror = format!("{}/", server.url);
        let got = fetch(DatasetKind::Mnist, tmp.path(), Some(&mirror)).unwrap();
        assert_eq!(got.len(), 4);
        let st = check_kind(DatasetKind::Mnist, tmp.path());
        assert!(st.iter().all(FileStatus::is_ok), "{st:?}");
        assert!(is_complete(&st, DatasetKind::Mnist));
        assert!(
            fetch(DatasetKind::Mnist, tmp.path(), Some(&mirror))
                .unwrap()
                .is_empty()
        );
        assert_eq!(server.requests.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn real_files_check_and_load_sanity_values() {
        let Some(data) = real_data() else { return };
        let st = check(&data);
        assert!(is_complete(&st, DatasetKind::Mnist), "{st:?}");
        assert!(is_complete(&st, DatasetKind::FashionMnist), "{st:?}");

        let (train, test) = load_official(DatasetKind::Mnist, &data).unwrap();
        assert_eq!((train.len(), test.len()), (60_000, 10_000));
        assert_eq!(train.labels()[..10], [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
        assert_eq!(test.labels()[..10], [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
        let sum = |d: &Dataset| d.image(0).iter().map(|&p| u32::from(p)).sum::<u32>();
        assert_eq!(sum(&train), 27_525);
        assert_eq!(sum(&test), 18_454);
        assert_eq!(
            train.slice(0..50_000).class_counts(),
            [4932, 5678, 4968, 5101, 4859, 4506, 4951, 5175, 4842, 4988]
        );
        assert_eq!(
            train.slice(50_000..60_000).class_counts(),
            [991, 1064, 990, 1030, 983, 915, 967, 1090, 1009, 961]
        );
        assert_eq!(
            test.class_counts(),
            [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
        );

        let (train, test) = load_official(DatasetKind::FashionMnist, &data).unwrap();
        assert_eq!((train.len(), test.len()), (60_000, 10_000));
        assert_eq!(train.labels()[..10], [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]);
        assert_eq!(test.labels()[..10], [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]);
        assert_eq!(test.class_counts(), [1000; 10]);
    }
}
