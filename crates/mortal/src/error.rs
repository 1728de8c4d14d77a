//! Errors. Bad *parameters* (rejected before anything runs) are kept apart from failures
//! *during* a run (missing or corrupt data, divergence, I/O), so callers and the CLI can
//! tell "you asked for something invalid" from "something went wrong".

use std::path::PathBuf;

/// Result type of the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every error the library reports.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A parameter is out of range or inconsistent. `key` names it as the user wrote it
    /// (a CLI flag, or a dotted path into a scenario file).
    #[error("invalid value for `{key}` ({value}): {reason}")]
    Param {
        key: String,
        value: String,
        reason: String,
    },
    /// A data file is missing, truncated or not what it claims to be.
    #[error("{}: {what}", path.display())]
    Data { path: PathBuf, what: String },
    /// Training produced a non-finite value.
    #[error("training diverged: {0}")]
    Diverged(String),
    /// A checkpoint or result file cannot be used.
    #[error("{}: {what}", path.display())]
    Artifact { path: PathBuf, what: String },
    /// An operating-system error, with what we were doing. (The OS error is part of the
    /// message, not a separate cause, so a report prints it once.)
    #[error("{context}: {os}")]
    Io { context: String, os: std::io::Error },
    /// A network download failed.
    #[error("download of {url} failed: {what}")]
    Download { url: String, what: String },
    /// An error with what was being done when it happened (e.g. the scenario file); the
    /// exit code is the inner error's.
    #[error("{context}: {inner}")]
    Context { context: String, inner: Box<Error> },
}

impl Error {
    /// Shorthand for [`Error::Param`].
    pub fn param(
        key: impl Into<String>,
        value: impl std::fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        Error::Param {
            key: key.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::Data`].
    pub fn data(path: impl Into<PathBuf>, what: impl Into<String>) -> Self {
        Error::Data {
            path: path.into(),
            what: what.into(),
        }
    }

    /// Shorthand for [`Error::Artifact`].
    pub fn artifact(path: impl Into<PathBuf>, what: impl Into<String>) -> Self {
        Error::Artifact {
            path: path.into(),
            what: what.into(),
        }
    }

    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            os: source,
        }
    }

    /// Process exit code for this error: 2 bad parameters, 3 data, file and I/O problems,
    /// 4 divergence (1 is left for errors from outside the library).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Param { .. } => 2,
            Error::Data { .. }
            | Error::Artifact { .. }
            | Error::Download { .. }
            | Error::Io { .. } => 3,
            Error::Diverged(_) => 4,
            Error::Context { inner, .. } => inner.exit_code(),
        }
    }

    /// This error with what was being done when it happened in front of it.
    pub fn context(self, context: impl Into<String>) -> Self {
        Error::Context {
            context: context.into(),
            inner: Box::new(self),
        }
    }

    /// The error under any [`Error::Context`] layers.
    pub fn root(&self) -> &Error {
        match self {
            Error::Context { inner, .. } => inner.root(),
            e => e,
        }
    }
}

/// [`Error::context`] on results.
pub trait ResultExt<T> {
    /// The error, if any, with `f()` in front of it.
    fn with_context<C: Into<String>>(self, f: impl FnOnce() -> C) -> Result<T>;
}

impl<T> ResultExt<T> for Result<T> {
    fn with_context<C: Into<String>>(self, f: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|e| e.context(f()))
    }
}

/// Checks a condition on a parameter, returning [`Error::Param`] when it fails.
pub fn ensure(ok: bool, key: &str, value: impl std::fmt::Display, reason: &str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::param(key, value, reason))
    }
}
