//! One module per verb.

pub mod backup;
pub mod check;
pub mod copy;
pub mod docs;
pub mod dump;
pub mod erase;
pub mod forget;
pub mod init;
pub mod inspect;
pub mod key;
pub mod ls;
pub mod migrate;
pub mod mount;
pub mod pg;
pub mod policy;
pub mod prune;
pub mod repair;
pub mod report;
pub mod restore;
pub mod rewrite;
pub mod run;
pub mod schedule;
pub mod snapshots;
pub mod status;
pub mod tag;
pub mod tenant;

use cairn_core::{NodeKind, SnapshotFilter, SnapshotRef};

/// Snapshot filters shared by several verbs.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct FilterArgs {
    /// Only snapshots of this host (repeatable).
    #[arg(long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,
    /// Only snapshots that include this path (repeatable).
    #[arg(long = "path", value_name = "PATH")]
    pub paths: Vec<String>,
    /// Only snapshots with this tag (repeatable; all must match).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
}

impl FilterArgs {
    /// The core filter.
    pub fn filter(&self) -> SnapshotFilter {
        SnapshotFilter { hosts: self.hosts.clone(), paths: self.paths.clone(), tags: self.tags.clone() }
    }
}

/// The snapshots `specs` names (ids, prefixes or `latest`), or every snapshot `filter` passes
/// when there are none.
pub fn select_snapshots(
    repo: &cairn_core::Repository,
    specs: &[String],
    filter: &SnapshotFilter,
) -> anyhow::Result<Vec<(cairn_core::SnapshotId, cairn_core::Snapshot)>> {
    if specs.is_empty() {
        return Ok(repo.snapshots()?.into_iter().filter(|(_, s)| filter.matches(s)).collect());
    }
    let mut out = Vec::with_capacity(specs.len());
    for spec in specs {
        out.push(repo.find_snapshot(&spec.parse::<SnapshotRef>()?, filter)?);
    }
    Ok(out)
}

/// The ids of the snapshots `specs` names.
pub fn snapshot_ids(repo: &cairn_core::Repository, specs: &[String]) -> anyhow::Result<Vec<cairn_core::SnapshotId>> {
    let mut out = Vec::with_capacity(specs.len());
    for spec in specs {
        out.push(repo.find_snapshot(&spec.parse::<SnapshotRef>()?, &SnapshotFilter::default())?.0);
    }
    Ok(out)
}

/// The name `ls --json`, `find` and `diff` print for a kind of entry.
pub fn kind_name(kind: NodeKind) -> &'static str {
    match kind {
        NodeKind::File => "file",
        NodeKind::Dir => "dir",
        NodeKind::Symlink => "symlink",
        NodeKind::Fifo => "fifo",
        NodeKind::Socket => "socket",
        NodeKind::CharDevice => "chardevice",
        NodeKind::BlockDevice => "blockdevice",
    }
}
