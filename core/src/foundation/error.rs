//! Errors of the engine.
//!
//! Rules, followed everywhere in `cairn-core`:
//! - Library code returns [`Error`]; it never panics and never calls `unwrap` on data it did not
//!   create (repository objects, files being backed up, user input).
//! - Every error names what it is about: the object (kind and id), the path, or the command.
//! - [`Error::kind`] sorts errors into the few classes a caller acts on differently
//!   ([`ErrorKind`]); the CLI maps them to its exit codes.
//! - An error either shows its cause in its message or hands it out as [`std::error::Error::source`],
//!   never both, so a front end that prints the chain prints each message once. Here every
//!   variant shows its cause in its message; the typed cause is a public field.
//!
//! [`StoreError`] is the storage seam's own error, defined here (in the foundation, below every layer that uses it)
//! and re-exported by the store module.

use std::path::PathBuf;

use crate::foundation::id::ObjectKey;

/// Result with the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The classes of error a caller acts on differently. The CLI's exit codes follow them (the
/// table is in the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No key file opens with the given password.
    WrongPassword,
    /// There is no repository where one was expected (no config object).
    RepositoryNotFound,
    /// An object of the repository failed authentication or could not be decoded: the
    /// repository is damaged there (the error names the object).
    Damaged,
    /// An object the repository needs is missing from storage.
    ObjectMissing,
    /// Something asked for (a snapshot, a path in one, a key) does not exist.
    NotFound,
    /// The repository was written by a format version this build does not know.
    UnsupportedVersion,
    /// Data to back up could not be read: a source command failed, or a stream broke.
    SourceUnreadable,
    /// Storage could not be reached or kept failing after retries (network, throttling, 5xx):
    /// worth trying again later.
    StorageUnavailable,
    /// Storage refused the request (credentials, permissions, policy).
    PermissionDenied,
    /// Storage failed in a way retrying will not mend (a full disk, a bad request).
    Storage,
    /// Bad arguments, options or patterns.
    InvalidArgument,
    /// A concurrent operation (a prune) removed something this one depended on; nothing was
    /// committed: run it again.
    Conflict,
    /// A local file or directory could not be read or written (a restore target, a full disk).
    Io,
    /// A bug in cairn (a worker thread panicked).
    Internal,
    /// The repository was opened with a write-only key, which backs up but cannot read,
    /// forget, prune or change what is stored.
    WriteOnlyKey,
    /// Data is in an archive storage class and not warm yet: a restore asked for the warm-up
    /// (and was told not to wait), or another command met an archived object.
    Archived,
}

/// What a store operation can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The object does not exist.
    #[error("object not found ({0})")]
    NotFound(String),
    /// A create-only put found the name taken.
    #[error("object already exists")]
    AlreadyExists,
    /// Worth retrying (network trouble, throttling, a 5xx, a response cut short).
    #[error("transient storage error: {0}")]
    Transient(String),
    /// The service refused the request: credentials, permissions or a policy. Not retried.
    #[error("permission denied by storage: {0}")]
    PermissionDenied(String),
    /// Not worth retrying (a bad request, a full disk).
    #[error("storage error: {0}")]
    Permanent(String),
    /// A ranged read went past the end of the object: it is shorter than its index entry or
    /// pack header says (damaged, or a different object under the same name).
    #[error("shorter than expected: {0}")]
    ShortRead(String),
    /// The object is in an archive storage class (S3 Glacier Flexible Retrieval or Deep
    /// Archive) and has not been warmed up: `cairn restore` asks for that first.
    #[error("archived, not readable until warmed up (`cairn restore` warms up what it needs): {0}")]
    Archived(String),
}

impl StoreError {
    /// The class of this error, as [`Error::kind`] reports it.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::NotFound(_) => ErrorKind::ObjectMissing,
            StoreError::Transient(_) => ErrorKind::StorageUnavailable,
            StoreError::PermissionDenied(_) => ErrorKind::PermissionDenied,
            StoreError::ShortRead(_) => ErrorKind::Damaged,
            StoreError::AlreadyExists | StoreError::Permanent(_) => ErrorKind::Storage,
            StoreError::Archived(_) => ErrorKind::Archived,
        }
    }
}

/// Every error the engine returns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The password opened none of the repository's key files.
    #[error("wrong password or no matching key")]
    WrongPassword,
    /// No repository at the location (no config object).
    #[error("no repository at {location} (no config object; run `cairn init` to create one)")]
    RepositoryNotFound {
        /// The location, without credentials.
        location: String,
    },
    /// An object failed authentication or decoding.
    #[error("{object} is damaged: {reason}")]
    Corrupt {
        /// The damaged object (or blob, or file), described for a person.
        object: String,
        /// What was wrong with it.
        reason: String,
    },
    /// The repository uses a format this build does not know.
    #[error("{object} has format version {found}, this build of cairn supports versions 1 to {supported}")]
    UnsupportedVersion {
        /// Which object carried the version.
        object: String,
        /// The version found.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },
    /// The storage backend failed on an object.
    #[error("{key}: {cause}")]
    Store {
        /// The object the operation was on.
        key: ObjectKey,
        /// What the store said.
        cause: StoreError,
    },
    /// The storage backend failed on a listing or on opening.
    #[error("{0}")]
    Storage(StoreError),
    /// A local file or directory could not be read or written.
    #[error("{}: {cause}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        cause: std::io::Error,
    },
    /// Data to back up could not be read: a stream broke while it was read.
    #[error("reading {name}: {cause}")]
    SourceUnreadable {
        /// The stream, as named in the snapshot.
        name: String,
        /// What the read said.
        cause: std::io::Error,
    },
    /// A snapshot, key or path that was asked for does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// Bad arguments, options or patterns.
    #[error("{0}")]
    InvalidArgument(String),
    /// A source command (e.g. `pg_dump`) failed; no snapshot was written.
    #[error("source command `{command}` failed: {status}")]
    SourceCommand {
        /// The command line.
        command: String,
        /// How it ended.
        status: String,
    },
    /// A concurrent operation removed something this one depended on; nothing was committed.
    #[error("{object} {reason}")]
    Conflict {
        /// What was removed.
        object: String,
        /// What happened and what to do.
        reason: String,
    },
    /// A worker thread panicked (a bug in cairn).
    #[error("internal error: {0}")]
    Internal(String),
    /// What was asked needs the full key, and the repository was opened with a write-only
    /// one.
    #[error("{0}: the key is write-only (it adds backups, and reads, forgets or changes none)")]
    WriteOnly(String),
    /// A restore asked for archived packs to be warmed up and did not wait for them.
    #[error("{0}")]
    WarmingUp(String),
}

impl Error {
    /// The class of this error.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::WrongPassword => ErrorKind::WrongPassword,
            Error::RepositoryNotFound { .. } => ErrorKind::RepositoryNotFound,
            Error::Corrupt { .. } => ErrorKind::Damaged,
            Error::UnsupportedVersion { .. } => ErrorKind::UnsupportedVersion,
            Error::Store { cause, .. } | Error::Storage(cause) => cause.kind(),
            Error::Io { .. } => ErrorKind::Io,
            Error::SourceUnreadable { .. } | Error::SourceCommand { .. } => ErrorKind::SourceUnreadable,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Error::Conflict { .. } => ErrorKind::Conflict,
            Error::Internal(_) => ErrorKind::Internal,
            Error::WriteOnly(_) => ErrorKind::WriteOnlyKey,
            Error::WarmingUp(_) => ErrorKind::Archived,
        }
    }

    /// A corruption error about `object`.
    pub(crate) fn corrupt(object: impl std::fmt::Display, reason: impl Into<String>) -> Self {
        Error::Corrupt { object: object.to_string(), reason: reason.into() }
    }

    /// An I/O error on `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), cause: source }
    }

    /// The error for a failed seal or open of `object`: a write-only key's refusal, else
    /// damage.
    pub(crate) fn crypto(object: impl std::fmt::Display, e: crate::foundation::crypto::CryptoError) -> Self {
        match e {
            crate::foundation::crypto::CryptoError::WriteOnly => Error::WriteOnly(format!("opening {object}")),
            e => Error::corrupt(object, e.to_string()),
        }
    }

    /// A store error on the object `key`.
    pub(crate) fn store(key: ObjectKey) -> impl FnOnce(StoreError) -> Self {
        move |cause| Error::Store { key, cause }
    }

    /// Whether this says the store could not be read or written (unreachable, refused, failing)
    /// rather than anything about the repository's content: a check or a listing that meets it
    /// must stop, not report damage.
    #[must_use]
    pub fn is_storage_trouble(&self) -> bool {
        matches!(
            self.kind(),
            ErrorKind::StorageUnavailable
                | ErrorKind::PermissionDenied
                | ErrorKind::Storage
                | ErrorKind::Internal
                | ErrorKind::Archived
        )
    }

    /// Whether this is the store saying the object `key`-like thing is gone (a concurrent
    /// prune or forget may have removed it since it was listed).
    pub(crate) fn is_missing_object(&self) -> bool {
        matches!(self, Error::Store { cause: StoreError::NotFound(_), .. })
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

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;
    use crate::foundation::id::{Digest, ObjectKind};

    /// A front end that prints an error and then its sources prints each message once.
    #[test]
    fn no_error_shows_its_cause_twice() {
        let key = ObjectKey::new(ObjectKind::Pack, Digest::of(b"p"));
        let errors = [
            Error::Store { key, cause: StoreError::Transient("connection reset".into()) },
            Error::io("/tmp/x", std::io::Error::other("disk full")),
            Error::SourceUnreadable { name: "db.sql".into(), cause: std::io::Error::other("broken pipe") },
            Error::Storage(StoreError::PermissionDenied("403".into())),
        ];
        for e in errors {
            let mut chain = e.to_string();
            let mut source = e.source();
            while let Some(s) = source {
                chain.push_str(&format!(": {s}"));
                source = s.source();
            }
            for part in ["connection reset", "disk full", "broken pipe", "403"] {
                assert!(chain.matches(part).count() <= 1, "{chain}");
            }
        }
    }

    #[test]
    fn store_errors_sort_into_kinds() {
        let key = ObjectKey::new(ObjectKind::Index, Digest::of(b"i"));
        let kind = |cause| Error::Store { key, cause }.kind();
        assert_eq!(kind(StoreError::NotFound("x".into())), ErrorKind::ObjectMissing);
        assert_eq!(kind(StoreError::Transient("x".into())), ErrorKind::StorageUnavailable);
        assert_eq!(kind(StoreError::PermissionDenied("x".into())), ErrorKind::PermissionDenied);
        assert_eq!(kind(StoreError::Permanent("x".into())), ErrorKind::Storage);
    }
}
