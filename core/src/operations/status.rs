//! `status`: the recovery point of every source. For each source (host and paths) the newest
//! snapshot's age is held against a recovery point objective, so a monitoring job can alert on
//! a source whose backups stopped.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::foundation::error::Result;
use crate::foundation::id::SnapshotId;
use crate::repository::Repository;
use crate::repository::select::SnapshotFilter;

/// One source's recovery point.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct SourceStatus {
    /// The host the source's snapshots were taken on.
    pub host: String,
    /// The paths (or stream name) they saved.
    pub paths: Vec<String>,
    /// The newest snapshot of the source.
    pub snapshot: SnapshotId,
    /// When it was taken.
    pub time: jiff::Timestamp,
    /// How old it is at the time of the status.
    #[serde(rename = "age_seconds", serialize_with = "seconds")]
    pub age: jiff::SignedDuration,
    /// The recovery point objective it is held against.
    #[serde(rename = "max_age_seconds", serialize_with = "seconds")]
    pub max_age: jiff::SignedDuration,
    /// Whether it is within the objective.
    pub ok: bool,
}

fn seconds<S: serde::Serializer>(d: &jiff::SignedDuration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_i64(d.as_secs())
}

/// The recovery points of all sources.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Status {
    /// Every source is within the objective (and there is at least one).
    pub ok: bool,
    /// The sources, by host and paths.
    pub sources: Vec<SourceStatus>,
}

impl Status {
    /// Sources older than the objective.
    pub fn late(&self) -> impl Iterator<Item = &SourceStatus> {
        self.sources.iter().filter(|s| !s.ok)
    }
}

/// The recovery point of every source among the snapshots `filter` passes, at `now`, against
/// `max_age`.
///
/// # Errors
/// Store errors listing or reading snapshots.
pub fn run(
    repo: &Repository,
    filter: &SnapshotFilter,
    max_age: jiff::SignedDuration,
    now: jiff::Timestamp,
) -> Result<Status> {
    let mut newest: BTreeMap<(String, Vec<String>), (SnapshotId, jiff::Timestamp)> = BTreeMap::new();
    for (id, s) in repo.snapshots()?.into_iter().filter(|(_, s)| filter.matches(s)) {
        let e = newest.entry((s.host.clone(), s.paths.clone())).or_insert((id, s.time));
        if s.time >= e.1 {
            *e = (id, s.time);
        }
    }
    let sources: Vec<SourceStatus> = newest
        .into_iter()
        .map(|((host, paths), (snapshot, time))| {
            let age = now.duration_since(time);
            SourceStatus { host, paths, snapshot, time, age, max_age, ok: age <= max_age }
        })
        .collect();
    Ok(Status { ok: !sources.is_empty() && sources.iter().all(|s| s.ok), sources })
}
