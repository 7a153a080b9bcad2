//! Errors of the engine.
//!
//! Rules, followed everywhere in `cairn-core`:
//! - Library code returns [`Error`]; it never panics and never calls `unwrap` on data it did not
//!   create (repository objects, files being backed up, user input).
//! - Every error names what it is about: the object (kind and id), the path, or the command.
//! - [`Error::kind`] sorts errors into the few classes a caller acts on differently; the CLI maps
//!   them to exit codes.

use std::path::PathBuf;

use crate::store::{ObjectKey, StoreError};

/// Result with the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The classes of error a caller acts on differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No key file opens with the given password.
    WrongPassword,
    /// An object failed authentication or could not be decoded.
    Corrupt,
    /// An object, snapshot or path does not exist.
    NotFound,
    /// Local file system trouble (including a full disk).
    Io,
    /// The storage backend failed.
    Storage,
    /// Bad arguments or an unusable configuration.
    Config,
    /// A source command (a dump) failed.
    Source,
}

/// Every error the engine returns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The password opened none of the repository's key files.
    #[error("wrong password or no matching key")]
    WrongPassword,
    /// An object failed authentication or decoding.
    #[error("{object} is corrupted: {reason}")]
    Corrupt {
        /// The damaged object (or blob), described for a person.
        object: String,
        /// What was wrong with it.
        reason: String,
    },
    /// The repository uses a format this build does not know.
    #[error("{object} has format version {found}, this build of cairn supports version {supported}")]
    UnsupportedVersion {
        /// Which object carried the version.
        object: String,
        /// The version found.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },
    /// The storage backend failed on an object.
    #[error("{key}: {source}")]
    Store {
        /// The object the operation was on.
        key: ObjectKey,
        /// What the store said.
        #[source]
        source: StoreError,
    },
    /// The storage backend failed on a listing or on opening.
    #[error("storage: {0}")]
    Storage(StoreError),
    /// A local file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A snapshot, blob or path that was asked for does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// Bad arguments or configuration.
    #[error("{0}")]
    Config(String),
    /// A source command (e.g. `pg_dump`) failed; no snapshot was written.
    #[error("source command `{command}` failed: {status}")]
    SourceCommand {
        /// The command line.
        command: String,
        /// How it ended.
        status: String,
    },
    /// A worker thread panicked (a bug in cairn).
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The class of this error.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::WrongPassword => ErrorKind::WrongPassword,
            Error::Corrupt { .. } | Error::UnsupportedVersion { .. } => ErrorKind::Corrupt,
            Error::Store { source, .. } | Error::Storage(source) => match source {
                StoreError::NotFound(_) => ErrorKind::NotFound,
                _ => ErrorKind::Storage,
            },
            Error::Io { .. } => ErrorKind::Io,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Config(_) => ErrorKind::Config,
            Error::SourceCommand { .. } => ErrorKind::Source,
            Error::Internal(_) => ErrorKind::Corrupt,
        }
    }

    /// A corruption error about `object`.
    pub(crate) fn corrupt(object: impl std::fmt::Display, reason: impl Into<String>) -> Self {
        Error::Corrupt { object: object.to_string(), reason: reason.into() }
    }

    /// An I/O error on `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}

/// Adds the path to an I/O result.
pub(crate) trait IoContext<T> {
    /// Names `path` in the error.
    fn at(self, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}
