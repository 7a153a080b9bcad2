//! `forget`: apply a retention policy, removing the snapshots it does not keep.
//!
//! The decision is [`retention`]'s pure evaluation (restic's semantics, plus tiers); this module
//! reads the snapshots, plans with it, and deletes the snapshot objects of the plan. The data
//! they referenced stays until a prune finds no snapshot uses it.

pub mod retention;

use serde::Serialize;

use crate::format::snapshot::Snapshot;
use crate::foundation::error::{Error, Result};
use crate::foundation::id::{ObjectKey, ObjectKind, SnapshotId};
use crate::repository::Repository;
use crate::repository::select::SnapshotFilter;
use retention::{GroupBy, GroupKey, Policy, RetentionPlan, SnapshotInfo};

/// What to forget.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ForgetOptions {
    /// The policy (an empty one is refused).
    pub policy: Policy,
    /// How snapshots are grouped; each group is judged on its own.
    pub group_by: GroupBy,
    /// Only snapshots this filter passes are considered (the others are kept).
    pub filter: SnapshotFilter,
    /// Decide, but delete nothing.
    pub dry_run: bool,
}

impl ForgetOptions {
    /// Options applying `policy` to every snapshot, grouped by host and paths.
    #[must_use]
    pub fn new(policy: Policy) -> Self {
        ForgetOptions { policy, ..Default::default() }
    }
}

/// The verdict for one snapshot.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Verdict {
    /// The snapshot.
    #[serde(rename = "id")]
    pub snapshot: SnapshotId,
    /// When it was taken.
    pub time: jiff::Timestamp,
    /// Whether the policy keeps it.
    pub keep: bool,
    /// Why it is kept (empty when it is forgotten), e.g. `daily snapshot`, `tier 6h:1d`.
    pub reasons: Vec<String>,
}

/// The verdicts for one group, newest first.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct GroupVerdicts {
    /// The group.
    #[serde(rename = "group")]
    pub key: GroupKey,
    /// One verdict per snapshot of the group.
    #[serde(rename = "snapshots")]
    pub verdicts: Vec<Verdict>,
}

/// What `forget` decided and did.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct ForgetOutcome {
    /// Nothing was deleted.
    pub dry_run: bool,
    /// The verdicts, group by group.
    pub groups: Vec<GroupVerdicts>,
    /// The snapshots removed (or, in a dry run, that would be).
    pub removed: Vec<SnapshotId>,
    /// Snapshots the policy does not keep that object lock still retains, with until when:
    /// not deleted (a later forget deletes them once their retention has passed).
    pub held: Vec<(SnapshotId, jiff::Timestamp)>,
    /// Kept snapshots whose retention was extended (object lock): what the policy keeps stays
    /// locked while it is kept.
    pub retention_extended: u64,
    /// Snapshots kept among those considered.
    #[serde(skip)]
    pub kept: usize,
}

/// Applies `opts.policy` to the snapshots of `repo` that `opts.filter` passes, and deletes the
/// ones it does not keep (unless `opts.dry_run`).
///
/// # Errors
/// [`Error::InvalidArgument`] for an empty or invalid policy (an empty policy would forget
/// everything); store errors.
pub fn run(repo: &Repository, opts: &ForgetOptions) -> Result<ForgetOutcome> {
    opts.policy.validate().map_err(|e| Error::InvalidArgument(e.to_string()))?;
    if opts.policy.is_empty() {
        return Err(Error::InvalidArgument(
            "refusing to forget with an empty policy: give at least one --keep-* option".into(),
        ));
    }
    let snaps: Vec<(SnapshotId, Snapshot)> =
        repo.snapshots()?.into_iter().filter(|(_, s)| opts.filter.matches(s)).collect();
    let infos: Vec<SnapshotInfo> = snaps
        .iter()
        .map(|(_, s)| SnapshotInfo { time: s.time, host: s.host.clone(), paths: s.paths.clone(), tags: s.tags.clone() })
        .collect();
    let plan = RetentionPlan::compute(&infos, &opts.policy, &opts.group_by);
    let groups = plan
        .groups
        .iter()
        .map(|g| GroupVerdicts {
            key: g.key.clone(),
            verdicts: g
                .decisions
                .iter()
                .map(|d| Verdict {
                    snapshot: snaps[d.index].0,
                    time: snaps[d.index].1.time,
                    keep: d.keep,
                    reasons: d.reasons.clone(),
                })
                .collect(),
        })
        .collect();
    let mut removed: Vec<SnapshotId> = plan.forget_indices().into_iter().map(|i| snaps[i].0).collect();
    let mut held = Vec::new();
    if !opts.dry_run {
        if !removed.is_empty() {
            repo.ensure_can_delete("forget")?;
        }
        for id in &removed {
            let key = ObjectKey::new(ObjectKind::Snapshot, id.0);
            if let Some(until) = repo.delete_unless_held(&key)? {
                held.push((*id, until));
            }
        }
        removed.retain(|id| !held.iter().any(|(h, _)| h == id));
    }
    let mut retention_extended = 0;
    if !opts.dry_run && repo.config().object_lock.is_some() {
        let forgotten: std::collections::HashSet<SnapshotId> =
            plan.forget_indices().into_iter().map(|i| snaps[i].0).collect();
        let kept: Vec<ObjectKey> = snaps
            .iter()
            .filter(|(id, _)| !forgotten.contains(id))
            .map(|(id, _)| ObjectKey::new(ObjectKind::Snapshot, id.0))
            .collect();
        retention_extended = repo.extend_retention(&kept)?;
    }
    let kept = snaps.len() - removed.len() - held.len();
    Ok(ForgetOutcome { dry_run: opts.dry_run, groups, kept, removed, held, retention_extended })
}
