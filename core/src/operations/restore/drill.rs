//! The restore drill: restore a snapshot into a private temporary directory, check every file
//! against the hash stored at backup time, time it, and remove it again. What a backup policy
//! calls "backups tested automatically and restored in drills".

use serde::Serialize;

use crate::foundation::error::{Error, Result};
use crate::foundation::progress::NoProgress;
use crate::repository::Repository;
use crate::repository::select::{SnapshotFilter, SnapshotRef};

use super::{RestoreOptions, RestoreSummary, run};

/// What a drill did: the restore's summary (with every file verified).
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct DrillReport {
    /// The restore, with `verify` on.
    pub restore: RestoreSummary,
}

impl DrillReport {
    /// Every file came back and matched its stored hash.
    #[must_use]
    pub fn ok(&self) -> bool {
        self.restore.failed.is_empty()
    }
}

/// Restores `which` (among snapshots `filter` passes) into a new directory only this user can
/// enter, under the system's temporary directory, verifying every file; removes the directory
/// whatever the outcome.
///
/// # Errors
/// As [`run`]; [`Error::Io`] when the temporary directory cannot be made.
pub fn drill(repo: &Repository, which: &SnapshotRef, filter: &SnapshotFilter) -> Result<DrillReport> {
    drill_in(repo, which, filter, &std::env::temp_dir())
}

/// [`drill`], with the temporary directory made in `parent`.
///
/// # Errors
/// As [`drill`].
pub fn drill_in(
    repo: &Repository,
    which: &SnapshotRef,
    filter: &SnapshotFilter,
    parent: &std::path::Path,
) -> Result<DrillReport> {
    // A name no one can guess, created 0700 by this process: nobody else can plant a link in
    // it or read what is restored.
    let dir = tempfile::Builder::new().prefix("cairn-drill-").tempdir_in(parent).map_err(|e| Error::io(parent, e))?;
    let mut opts = RestoreOptions::new(dir.path());
    opts.verify = true;
    opts.filter = filter.clone();
    let restore = run(repo, which, None, &opts, &NoProgress);
    let removed = dir.close().map_err(|e| Error::io(parent, e));
    let report = DrillReport { restore: restore? };
    removed?;
    Ok(report)
}
