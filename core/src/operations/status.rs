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
    /// Snapshots of the source dated more than [`CLOCK_SKEW`] after the status's time (a
    /// wrong clock or `--time`): reported, never counted as fresh. When the source has only
    /// such snapshots, `snapshot` is the newest of them and `ok` is false.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dated_in_future: Vec<SnapshotId>,
}

/// How far in the future a snapshot's time may be (clocks of different hosts disagree a
/// little) before it is taken for a wrong one.
pub const CLOCK_SKEW: jiff::SignedDuration = jiff::SignedDuration::from_secs(300);

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
    /// Per source: the newest snapshot not dated in the future, and those that are.
    #[derive(Default)]
    struct Seen {
        newest: Option<(SnapshotId, jiff::Timestamp)>,
        future: Vec<(SnapshotId, jiff::Timestamp)>,
    }
    let mut seen: BTreeMap<(String, Vec<String>), Seen> = BTreeMap::new();
    for (id, s) in repo.snapshots()?.into_iter().filter(|(_, s)| filter.matches(s)) {
        let e = seen.entry((s.host.clone(), s.paths.clone())).or_default();
        if s.time.duration_since(now) > CLOCK_SKEW {
            e.future.push((id, s.time));
        } else if e.newest.is_none_or(|(_, t)| s.time >= t) {
            e.newest = Some((id, s.time));
        }
    }
    let sources: Vec<SourceStatus> = seen
        .into_iter()
        .filter_map(|((host, paths), seen)| {
            let future: Vec<SnapshotId> = seen.future.iter().map(|(id, _)| *id).collect();
            let (snapshot, time, fresh) = match seen.newest {
                Some((id, time)) => (id, time, true),
                None => seen.future.iter().max_by_key(|(_, t)| *t).map(|&(id, t)| (id, t, false))?,
            };
            let age = now.duration_since(time);
            let ok = fresh && age <= max_age;
            Some(SourceStatus { host, paths, snapshot, time, age, max_age, ok, dated_in_future: future })
        })
        .collect();
    Ok(Status { ok: !sources.is_empty() && sources.iter().all(|s| s.ok), sources })
}
