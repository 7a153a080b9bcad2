//! PostgreSQL continuous archiving in the repository: base backups as snapshots, the WAL
//! archive beside them, point-in-time restore, and one retention chain for both.
//!
//! - [`basebackup::BaseBackupStream`]: `pg_basebackup`'s tar stream, backed up as a stream
//!   and described in the snapshot ([`BaseBackup`]).
//! - [`push`] / [`fetch`]: `archive_command` and `restore_command`, one object per WAL file
//!   (FORMAT.md §14c), create-only.
//! - [`chain`]: which WAL every kept base backup needs, the gaps in it, and what retention may
//!   delete.
//! - [`choose_base`] and [`unpack`]: the base backup a restore to a point starts from.

pub mod basebackup;
pub mod chain;
pub mod lsn;

use std::path::Path;

use bytes::Bytes;

use crate::format::snapshot::{BaseBackup, Snapshot};
use crate::format::wal::{WalCodec, WalName};
use crate::foundation::error::{Error, Result, StoreError};
use crate::foundation::id::{ObjectKind, SnapshotId};
use crate::repository::Repository;
use crate::repository::store::ObjectInfo;
use crate::repository::trees::TreeWalker;

/// The zstd level of WAL files: fast enough for `archive_command` to keep up with a busy
/// server, and WAL compresses well at it.
const WAL_ZSTD_LEVEL: i32 = 3;

/// The file name of a base backup's tar stream in its snapshot.
pub const BASE_TAR: &str = "base.tar";

/// What [`push`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Stored, this many bytes.
    Stored(u64),
    /// The same file was archived before; nothing written.
    AlreadyArchived,
}

/// Archives `data` as WAL file `name` of `cluster`. Create-only: an archived file with the
/// same content is success, a different one an error (PostgreSQL's rule for
/// `archive_command`).
///
/// # Errors
/// [`Error::Conflict`] if a different file is archived under the name; store errors.
pub fn push(repo: &Repository, cluster: &str, name: &WalName, data: &[u8]) -> Result<Pushed> {
    let codec = WalCodec::new(repo.master(), cluster)?;
    let key = codec.key(name);
    let sealed = codec.seal(name, data, WAL_ZSTD_LEVEL)?;
    let size = sealed.len() as u64;
    match repo.store().put(&key, Bytes::from(sealed)) {
        Ok(()) => Ok(Pushed::Stored(size)),
        Err(StoreError::AlreadyExists) => {
            let stored = repo.store().get(&key).map_err(|e| Error::Store { key, cause: e })?;
            if codec.open(name, &stored)? == data {
                Ok(Pushed::AlreadyArchived)
            } else {
                Err(Error::Conflict {
                    object: format!("WAL file {name} of cluster {cluster}"),
                    reason: "is already archived with different content: an archive is never overwritten (is a second \
                             server archiving under the same --cluster name?)"
                        .into(),
                })
            }
        }
        Err(e) => Err(Error::Store { key, cause: e }),
    }
}

/// The archived WAL file `name` of `cluster`, or `None` if it was never archived.
///
/// # Errors
/// [`Error::Corrupt`] if it is damaged; store errors.
pub fn fetch(repo: &Repository, cluster: &str, name: &WalName) -> Result<Option<Vec<u8>>> {
    let codec = WalCodec::new(repo.master(), cluster)?;
    let key = codec.key(name);
    match repo.store().get(&key) {
        Ok(sealed) => codec.open(name, &sealed).map(Some),
        Err(StoreError::NotFound(_)) => Ok(None),
        Err(e) => Err(Error::Store { key, cause: e }),
    }
}

/// The listing of `wal/`: every cluster's files, their names still hidden.
///
/// # Errors
/// Store errors.
pub fn list_wal(repo: &Repository) -> Result<Vec<ObjectInfo>> {
    repo.store().list(ObjectKind::Wal).map_err(Error::Storage)
}

/// `cluster`'s files among `listing` (from [`list_wal`]), in WAL order.
///
/// # Errors
/// [`Error::WriteOnly`] for a write-only key.
pub fn archived_in(repo: &Repository, listing: &[ObjectInfo], cluster: &str) -> Result<Vec<(WalName, ObjectInfo)>> {
    let codec = WalCodec::new(repo.master(), cluster)?;
    let mut out: Vec<_> =
        listing.iter().filter_map(|info| codec.name(&info.key).map(|name| (name, info.clone()))).collect();
    out.sort_by_key(|(name, _)| *name);
    Ok(out)
}

/// The archived files of `cluster`, in WAL order, with what the store says of each.
///
/// # Errors
/// Store errors.
pub fn archived(repo: &Repository, cluster: &str) -> Result<Vec<(WalName, ObjectInfo)>> {
    archived_in(repo, &list_wal(repo)?, cluster)
}

/// The base backups of `cluster` among `snapshots`, oldest first.
#[must_use]
pub fn base_backups_in(snapshots: &[(SnapshotId, Snapshot)], cluster: &str) -> Vec<(SnapshotId, Snapshot)> {
    let mut out: Vec<_> =
        snapshots.iter().filter(|(_, s)| s.postgres.as_ref().is_some_and(|p| p.cluster == cluster)).cloned().collect();
    out.sort_by_key(|(_, s)| s.postgres.as_ref().map(|p| (p.stop_time, p.stop_lsn)));
    out
}

/// The base backups of `cluster` in the repository, oldest first.
///
/// # Errors
/// As [`Repository::snapshots`].
pub fn base_backups(repo: &Repository, cluster: &str) -> Result<Vec<(SnapshotId, Snapshot)>> {
    Ok(base_backups_in(&repo.snapshots()?, cluster))
}

/// Where a point-in-time restore stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// At this time (the first commit after it is not replayed).
    Time(jiff::Timestamp),
    /// At this WAL position.
    Lsn(u64),
    /// At this transaction id.
    Xid(u64),
    /// At the end of the archive.
    Latest,
}

/// The base backup to restore `target` from, out of `backups` (as [`base_backups`] gives
/// them): the newest that was consistent before the target. For a transaction id, which
/// cairn cannot place in time, the newest.
#[must_use]
pub fn choose_base<'a>(backups: &'a [(SnapshotId, Snapshot)], target: &Target) -> Option<&'a (SnapshotId, Snapshot)> {
    backups.iter().rev().find(|(_, s)| {
        let Some(p) = &s.postgres else { return false };
        match target {
            Target::Time(t) => p.stop_time <= *t,
            Target::Lsn(l) => p.stop_lsn <= *l,
            Target::Xid(_) | Target::Latest => true,
        }
    })
}

/// Unpacks base backup `snapshot` into the empty or missing directory `target` (made
/// private to its owner, as PostgreSQL requires); the bytes unpacked.
///
/// # Errors
/// [`Error::InvalidArgument`] if `target` holds anything or `snapshot` is no base backup;
/// read and [`Error::Io`] errors.
pub fn unpack(repo: &Repository, snapshot: &Snapshot, target: &Path) -> Result<u64> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if snapshot.postgres.is_none() {
        return Err(Error::InvalidArgument("the snapshot is not a PostgreSQL base backup".into()));
    }
    let io = |e: std::io::Error| Error::Io { path: target.to_path_buf(), cause: e };
    match std::fs::read_dir(target) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(Error::InvalidArgument(format!(
                    "{} is not empty: a restore never writes over a data directory",
                    target.display()
                )));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(target).map_err(io)?;
        }
        Err(e) => return Err(io(e)),
    }
    std::fs::set_permissions(target, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    let index = repo.load_index()?;
    let node = TreeWalker::new(repo, &index).find(snapshot, &Path::new("/").join(BASE_TAR))?;
    let reader = crate::operations::restore::FileReader::new(repo, &index, &node)?;
    let mut counted = Counted { inner: reader, bytes: 0, failure: None };
    let mut archive = tar::Archive::new(&mut counted);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    let unpacked = archive.unpack(target);
    // A failure reading the repository comes back as itself, not as the tar error around it.
    if let Some(failure) = counted.failure.take() {
        return Err(failure);
    }
    unpacked.map_err(io)?;
    Ok(counted.bytes)
}

/// A reader that counts, and keeps the engine error a read failed with.
struct Counted<R> {
    inner: R,
    bytes: u64,
    failure: Option<Error>,
}

impl<R: std::io::Read> std::io::Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.bytes += n as u64;
                Ok(n)
            }
            Err(e) => {
                let engine = crate::operations::restore::unwrap_io(e);
                let message = engine.to_string();
                self.failure = Some(engine);
                Err(std::io::Error::other(message))
            }
        }
    }
}

/// The PostgreSQL program `name`: in `dir` when given, else on `PATH`, else in the newest
/// `/usr/lib/postgresql/*/bin` (Debian's layout, not on `PATH`).
#[must_use]
pub fn find_program(dir: Option<&Path>, name: &str) -> Option<std::path::PathBuf> {
    if let Some(dir) = dir {
        return Some(dir.join(name));
    }
    if let Some(path) = std::env::var_os("PATH")
        && let Some(found) = std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
    {
        return Some(found);
    }
    let mut versions: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin").join(name))))
        .filter(|(_, p)| p.is_file())
        .collect();
    versions.sort();
    versions.pop().map(|(_, p)| p)
}

/// The base backup a snapshot records, or an error naming it.
///
/// # Errors
/// [`Error::InvalidArgument`] for a snapshot that is no base backup.
pub fn base_of(id: &SnapshotId, snapshot: &Snapshot) -> Result<BaseBackup> {
    snapshot
        .postgres
        .clone()
        .ok_or_else(|| Error::InvalidArgument(format!("snapshot {} is not a PostgreSQL base backup", id.short())))
}

/// What [`copy_archive`] copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CopiedWal {
    /// Files copied.
    pub files: usize,
    /// Their bytes, as PostgreSQL wrote them.
    pub bytes: u64,
}

/// Copies the WAL archive of every cluster with base backups in `src` to `dst` (an off-site
/// copy must restore to any point too): each file `dst` lacks, opened under `src`'s keys and
/// sealed under `dst`'s, one at a time.
///
/// # Errors
/// Store errors of either repository; [`Error::Corrupt`] for a damaged file in `src`;
/// [`Error::Conflict`] if `dst` holds a different file under a name.
pub fn copy_archive(src: &Repository, dst: &Repository) -> Result<CopiedWal> {
    let mut out = CopiedWal::default();
    let (from, to) = (list_wal(src)?, list_wal(dst)?);
    for cluster in chain::clusters(src)? {
        let there: std::collections::HashSet<WalName> =
            archived_in(dst, &to, &cluster)?.into_iter().map(|(name, _)| name).collect();
        for (name, _) in archived_in(src, &from, &cluster)? {
            if there.contains(&name) {
                continue;
            }
            // Expired by a prune since it was listed: nothing to copy.
            let Some(data) = fetch(src, &cluster, &name)? else { continue };
            push(dst, &cluster, &name, &data)?;
            out.files += 1;
            out.bytes += data.len() as u64;
        }
    }
    Ok(out)
}
