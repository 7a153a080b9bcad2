//! One module per verb.

pub mod backup;
pub mod check;
pub mod copy;
pub mod dump;
pub mod forget;
pub mod init;
pub mod inspect;
pub mod key;
pub mod ls;
pub mod prune;
pub mod repair;
pub mod restore;
pub mod rewrite;
pub mod snapshots;
pub mod status;

use cairn_core::SnapshotFilter;

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
