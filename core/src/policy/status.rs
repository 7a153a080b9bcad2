//! `cairn status --policy`: whether each promise of a policy is kept now, from the snapshots and
//! the run records alone, and the same as Prometheus metrics.
//!
//! A source keeps its promise when its newest snapshot is no older than its RPO and every
//! retention tier holds a snapshot in each of its buckets since the source's first snapshot; a
//! copy when no snapshot has waited longer than `max_lag` to be copied; the check when one
//! succeeded within two of its intervals (one run may come late) and the last cycle's checks
//! read every slice; the drill when the last one succeeded within two of its intervals and
//! restored within the RTO.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write as _;

use serde::Serialize;

use crate::format::record::StepKind;
use crate::format::snapshot::Snapshot;
use crate::foundation::error::Result;
use crate::foundation::id::SnapshotId;
use crate::operations::check::ReadData;
use crate::operations::status::CLOCK_SKEW;
use crate::policy::repos::Repos;
use crate::policy::run::CopyTarget;
use crate::policy::{Policy, SourceKind};
use crate::repository::Repository;

/// Whether every promise of a policy is kept.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct PolicyStatus {
    /// Every promise below is kept.
    pub ok: bool,
    /// The time the status was taken at.
    pub now: jiff::Timestamp,
    /// Each source.
    pub sources: Vec<SourceCompliance>,
    /// Each off-site copy.
    pub copies: Vec<CopyCompliance>,
    /// The regular check, if the policy has one.
    pub check: Option<CheckCompliance>,
    /// The restore drill, if the policy has one.
    pub drill: Option<DrillCompliance>,
    /// Erasure requests, if the policy promises a deadline.
    pub erasure: Option<ErasureCompliance>,
    /// When the newest run record began.
    pub last_run: Option<jiff::Timestamp>,
    /// When the newest run whose every step succeeded began.
    pub last_successful_run: Option<jiff::Timestamp>,
}

/// One source's promises.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct SourceCompliance {
    /// The source's name.
    pub name: String,
    /// Its newest snapshot not dated in the future.
    pub snapshot: Option<SnapshotId>,
    /// That snapshot's age, in seconds; for a `postgres` source, the age of the newest
    /// archived WAL (the recovery point achieved), base backups being its snapshots.
    pub age_seconds: Option<i64>,
    /// The recovery point objective, in seconds.
    pub rpo_seconds: u64,
    /// The newest snapshot is within the RPO.
    pub rpo_met: bool,
    /// Snapshots dated more than the allowed clock skew after now: reported, never fresh.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dated_in_future: Vec<SnapshotId>,
    /// Retention tier buckets that should hold a snapshot and do not.
    pub tier_gaps: Vec<TierGap>,
    /// Both promises kept.
    pub ok: bool,
}

/// A bucket of a retention tier with no snapshot in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TierGap {
    /// The tier, as written (`1d:7d`).
    pub tier: String,
    /// When the bucket begins.
    pub from: jiff::Timestamp,
    /// When the next one begins.
    pub to: jiff::Timestamp,
}

/// One copy's promise.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct CopyCompliance {
    /// The copy's name.
    pub name: String,
    /// How long the oldest snapshot the copy lacks has waited (0: it lacks none), in seconds;
    /// `None` when the copy could not be read.
    pub lag_seconds: Option<i64>,
    /// Snapshots of the policy's sources the copy lacks.
    pub missing: usize,
    /// The most lag allowed, in seconds.
    pub max_lag_seconds: Option<u64>,
    /// Why the copy could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The promise kept.
    pub ok: bool,
}

/// The check's promise.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct CheckCompliance {
    /// When the newest check ran.
    pub last: Option<jiff::Timestamp>,
    /// When the newest successful check ran.
    pub last_success: Option<jiff::Timestamp>,
    /// How often a check is promised, in seconds.
    pub every_seconds: u64,
    /// Slices read by the successful checks of the last cycle (its newest `m` checks).
    pub slices_covered: u32,
    /// Slices in a cycle (1 when each check reads everything or a sample).
    pub slices: u32,
    /// The promise kept.
    pub ok: bool,
}

/// The drill's promise.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct DrillCompliance {
    /// When the newest drill ran.
    pub last: Option<jiff::Timestamp>,
    /// Per source, the newest drill's restore time in seconds.
    pub restore_seconds: Vec<(String, f64)>,
    /// The recovery time objective, in seconds.
    pub rto_seconds: u64,
    /// How often a drill is promised, in seconds.
    pub every_seconds: u64,
    /// The promise kept.
    pub ok: bool,
}

/// The erasure promise: every request carried out in every repository within the deadline.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct ErasureCompliance {
    /// The deadline, in seconds.
    pub deadline_seconds: u64,
    /// Requests recorded.
    pub requests: usize,
    /// Requests not yet carried out in every repository, with when they were first recorded
    /// and where they are still pending.
    pub pending: Vec<PendingErasure>,
    /// The promise kept: no pending request is older than the deadline.
    pub ok: bool,
}

/// A request not yet carried out everywhere.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct PendingErasure {
    /// The request's id.
    pub request: String,
    /// When it was first recorded.
    pub since: jiff::Timestamp,
    /// The repositories (`primary` or copy names) where its bytes are not yet gone.
    pub repositories: Vec<String>,
    /// Older than the deadline.
    pub overdue: bool,
}

fn erasure(
    deadline: std::time::Duration,
    records: &[crate::format::record::RunRecord],
    now: jiff::Timestamp,
) -> ErasureCompliance {
    use std::collections::BTreeMap;
    // Per request: when first recorded, and per repository whether any run completed it.
    let mut seen: BTreeMap<String, (jiff::Timestamp, BTreeMap<String, bool>)> = BTreeMap::new();
    for r in records {
        for s in r.steps.iter().filter(|s| s.kind == StepKind::Erase) {
            let Some(e) = &s.erasure else { continue };
            let entry = seen.entry(e.request.clone()).or_insert((r.started, BTreeMap::new()));
            entry.0 = entry.0.min(r.started);
            *entry.1.entry(s.target.clone()).or_default() |= s.ok;
        }
    }
    let limit = jiff::SignedDuration::try_from(deadline).unwrap_or(jiff::SignedDuration::MAX);
    let pending: Vec<PendingErasure> = seen
        .iter()
        .filter_map(|(request, (since, repos))| {
            let open: Vec<String> = repos.iter().filter(|(_, done)| !**done).map(|(name, _)| name.clone()).collect();
            (!open.is_empty()).then(|| PendingErasure {
                request: request.clone(),
                since: *since,
                repositories: open,
                overdue: now.duration_since(*since) > limit,
            })
        })
        .collect();
    ErasureCompliance {
        deadline_seconds: deadline.as_secs(),
        requests: seen.len(),
        ok: pending.iter().all(|p| !p.overdue),
        pending,
    }
}

/// The status of `policy` at `now`, from `repo`'s snapshots and run records and each copy's
/// snapshots.
///
/// # Errors
/// Store errors listing or reading the primary's snapshots or records.
pub fn status(
    policy: &Policy,
    repo: &Repository,
    copies: &[CopyTarget<'_>],
    now: jiff::Timestamp,
) -> Result<PolicyStatus> {
    // The tenants' repositories are opened once, for their snapshots and their archives.
    let repos = Repos::open(policy, repo, false);
    Ok(judge(policy, &repos.snapshots()?, &repo.records()?, &newest_wal_in(policy, &repos)?, copies, now))
}

/// The snapshots of `policy`'s sources in `repo`: its own, and those of the tenants its sources
/// name (a tenant not made yet has none).
///
/// # Errors
/// Store errors listing or reading snapshots.
pub fn snapshots(policy: &Policy, repo: &Repository) -> Result<Vec<(SnapshotId, Snapshot)>> {
    Repos::open(policy, repo, false).snapshots()
}

/// When the newest WAL segment of each `postgres` source's cluster reached the store.
///
/// # Errors
/// Store errors listing the archive.
pub fn newest_wal(policy: &Policy, repo: &Repository) -> Result<BTreeMap<String, jiff::Timestamp>> {
    newest_wal_in(policy, &Repos::open(policy, repo, false))
}

/// As [`newest_wal`], in repositories already opened.
fn newest_wal_in(policy: &Policy, repos: &Repos<'_>) -> Result<BTreeMap<String, jiff::Timestamp>> {
    let mut out = BTreeMap::new();
    // Each repository's archive listed once, however many clusters it holds.
    let mut listings: BTreeMap<Option<&str>, Vec<crate::repository::store::ObjectInfo>> = BTreeMap::new();
    for source in &policy.sources {
        let SourceKind::Postgres { cluster, .. } = &source.kind else { continue };
        let Ok(r) = repos.for_source(source) else { continue };
        let listing = match listings.entry(source.tenant.as_deref()) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => e.insert(crate::postgres::list_wal(r)?),
        };
        let files = crate::postgres::archived_in(r, listing, cluster)?;
        if let Some((_, t)) = crate::postgres::chain::newest_segment(&files) {
            out.insert(cluster.clone(), t);
        }
    }
    Ok(out)
}

/// As [`status`], from the primary's `snapshots`, `records` and [`newest_wal`] already read
/// (the report reads them once for both).
#[must_use]
pub fn judge(
    policy: &Policy,
    snapshots: &[(SnapshotId, Snapshot)],
    records: &[crate::format::record::RunRecord],
    wal: &BTreeMap<String, jiff::Timestamp>,
    copies: &[CopyTarget<'_>],
    now: jiff::Timestamp,
) -> PolicyStatus {
    let sources: Vec<SourceCompliance> =
        policy.sources.iter().map(|s| source(policy, s, snapshots, wal, now)).collect();
    let mut copy_status = Vec::new();
    for c in copies {
        let max = policy.copies.iter().find(|p| p.name == c.name).and_then(|p| p.max_lag);
        copy_status.push(copy(policy, c, snapshots, max, now));
    }
    let check = policy.check.map(|c| {
        // Each check step: when its run began, whether it succeeded, its slice.
        type CheckStep = (jiff::Timestamp, bool, Option<(u32, u32)>);
        let checks: Vec<CheckStep> = records
            .iter()
            .flat_map(|r| r.steps.iter().filter(|s| s.kind == StepKind::Check).map(move |s| (r.started, s.ok, s.slice)))
            .collect();
        let slices = match c.read_data {
            ReadData::Subset { m, .. } => m.max(1),
            _ => 1,
        };
        let cycle = checks.iter().rev().take(slices as usize);
        let covered: BTreeSet<u32> =
            cycle.filter(|(_, ok, _)| *ok).map(|(_, _, slice)| slice.map_or(1, |(n, _)| n)).collect();
        let last_success = checks.iter().filter(|(_, ok, _)| *ok).map(|(t, _, _)| *t).max();
        let slices_covered = u32::try_from(covered.len()).unwrap_or(u32::MAX);
        CheckCompliance {
            last: checks.iter().map(|(t, _, _)| *t).max(),
            last_success,
            every_seconds: c.every.as_secs(),
            slices_covered,
            slices,
            ok: within(last_success, c.every * 2, now) && slices_covered == slices,
        }
    });
    let drill = policy.drill.map(|d| {
        let newest = records.iter().rev().find(|r| r.steps.iter().any(|s| s.kind == StepKind::Drill));
        let steps: Vec<_> =
            newest.map(|r| r.steps.iter().filter(|s| s.kind == StepKind::Drill).collect()).unwrap_or_default();
        DrillCompliance {
            last: newest.map(|r| r.started),
            restore_seconds: steps.iter().map(|s| (s.target.clone(), s.seconds)).collect(),
            rto_seconds: d.rto.as_secs(),
            every_seconds: d.every.as_secs(),
            ok: within(newest.map(|r| r.started), d.every * 2, now) && steps.iter().all(|s| s.ok) && !steps.is_empty(),
        }
    });
    let erasure = policy.erasure_deadline.map(|d| erasure(d, records, now));
    let ok = sources.iter().all(|s| s.ok)
        && copy_status.iter().all(|c| c.ok)
        && check.as_ref().is_none_or(|c| c.ok)
        && drill.as_ref().is_none_or(|d| d.ok)
        && erasure.as_ref().is_none_or(|e| e.ok);
    PolicyStatus {
        ok,
        now,
        sources,
        copies: copy_status,
        check,
        drill,
        erasure,
        last_run: records.iter().map(|r| r.started).max(),
        last_successful_run: records.iter().filter(|r| r.ok()).map(|r| r.started).max(),
    }
}

fn within(t: Option<jiff::Timestamp>, d: std::time::Duration, now: jiff::Timestamp) -> bool {
    t.is_some_and(|t| now.duration_since(t) <= jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX))
}

fn source(
    policy: &Policy,
    s: &crate::policy::Source,
    snapshots: &[(SnapshotId, Snapshot)],
    wal: &BTreeMap<String, jiff::Timestamp>,
    now: jiff::Timestamp,
) -> SourceCompliance {
    let mine: Vec<&(SnapshotId, Snapshot)> = snapshots.iter().filter(|(_, snap)| snap.tags.contains(&s.name)).collect();
    let (future, present): (Vec<&(SnapshotId, Snapshot)>, Vec<_>) =
        mine.into_iter().partition(|(_, snap)| snap.time > now + CLOCK_SKEW);
    let newest = present.iter().max_by_key(|(_, snap)| snap.time);
    let age = match &s.kind {
        // Any second since the oldest base backup can be restored: the recovery point is the
        // newest archived WAL, and a cluster with no base backup has none.
        SourceKind::Postgres { cluster, .. } => newest.and(wal.get(cluster)).map(|t| now.duration_since(*t).as_secs()),
        _ => newest.map(|(_, snap)| now.duration_since(snap.time).as_secs()),
    };
    let rpo_met = age.is_some_and(|a| u64::try_from(a).unwrap_or(0) <= s.rpo.as_secs());
    let times: Vec<jiff::Timestamp> = present.iter().map(|(_, snap)| snap.time).collect();
    let tier_gaps = tier_gaps(policy, &times, now);
    SourceCompliance {
        name: s.name.clone(),
        snapshot: newest.map(|(id, _)| *id),
        age_seconds: age,
        rpo_seconds: s.rpo.as_secs(),
        rpo_met,
        dated_in_future: future.iter().map(|(id, _)| *id).collect(),
        ok: rpo_met && tier_gaps.is_empty(),
        tier_gaps,
    }
}

/// The buckets of each tier, within its reach back from `now`, that ended before `now` and
/// began after the source's first snapshot, and hold none of `times`.
fn tier_gaps(policy: &Policy, times: &[jiff::Timestamp], now: jiff::Timestamp) -> Vec<TierGap> {
    let Some(first) = times.iter().min() else { return Vec::new() };
    let mut gaps = Vec::new();
    for tier in &policy.retention {
        let held: HashSet<i128> = times.iter().map(|t| tier.bucket_of(*t)).collect();
        let reach = tier.reach_from(now);
        let (from, to) = (tier.bucket_of(reach.max(*first)), tier.bucket_of(now));
        // The bucket holding `now` is not over; the first may have begun before the reach.
        for b in from..to {
            let start = tier.bucket_start(b);
            if start < reach || start < tier.bucket_start(tier.bucket_of(*first)) || held.contains(&b) {
                continue;
            }
            gaps.push(TierGap { tier: tier.to_string(), from: start, to: tier.bucket_start(b + 1) });
        }
    }
    gaps
}

fn copy(
    policy: &Policy,
    c: &CopyTarget<'_>,
    snapshots: &[(SnapshotId, Snapshot)],
    max_lag: Option<std::time::Duration>,
    now: jiff::Timestamp,
) -> CopyCompliance {
    let base = CopyCompliance {
        name: c.name.to_string(),
        lag_seconds: None,
        missing: 0,
        max_lag_seconds: max_lag.map(|d| d.as_secs()),
        error: None,
        ok: false,
    };
    let dst = match c.repo {
        Ok(dst) => dst,
        Err(ref why) => return CopyCompliance { error: Some(why.clone()), ..base },
    };
    let held: HashSet<SnapshotId> = match self::snapshots(policy, dst) {
        Ok(list) => list.iter().map(|(id, s)| s.original.unwrap_or(*id)).collect(),
        Err(e) => return CopyCompliance { error: Some(e.to_string()), ..base },
    };
    let ours = |s: &Snapshot| policy.sources.iter().any(|p| s.tags.contains(&p.name));
    let missing: Vec<&Snapshot> = snapshots
        .iter()
        .filter(|(id, s)| ours(s) && !held.contains(id) && s.time <= now + CLOCK_SKEW)
        .map(|(_, s)| s)
        .collect();
    let lag = missing.iter().map(|s| now.duration_since(s.time).as_secs().max(0)).max().unwrap_or(0);
    CopyCompliance {
        lag_seconds: Some(lag),
        missing: missing.len(),
        ok: max_lag.is_none_or(|m| u64::try_from(lag).unwrap_or(0) <= m.as_secs()),
        ..base
    }
}

impl PolicyStatus {
    /// The status in Prometheus' text format, for node_exporter's textfile collector.
    #[must_use]
    pub fn metrics(&self) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, help: &str, samples: &[(String, f64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let label = |key: &str, value: &str| format!("{{{key}=\"{}\"}}", escape(value));
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        let time = |t: jiff::Timestamp| t.as_millisecond() as f64 / 1000.0;
        let source = |f: &dyn Fn(&SourceCompliance) -> Option<f64>| -> Vec<(String, f64)> {
            self.sources.iter().filter_map(|s| f(s).map(|v| (label("source", &s.name), v))).collect()
        };
        metric(
            "cairn_policy_compliant",
            "Whether every promise of the policy is kept (1) or not (0).",
            &[(String::new(), flag(self.ok))],
        );
        metric(
            "cairn_source_compliant",
            "Whether the source meets its RPO and retention tiers (1) or not (0).",
            &source(&|s| Some(flag(s.ok))),
        );
        metric(
            "cairn_source_snapshot_age_seconds",
            "Age of the source's newest snapshot.",
            &source(&|s| s.age_seconds.map(|a| a as f64)),
        );
        metric(
            "cairn_source_rpo_seconds",
            "The source's recovery point objective.",
            &source(&|s| Some(s.rpo_seconds as f64)),
        );
        metric(
            "cairn_source_tier_gaps",
            "Retention tier buckets of the source with no snapshot.",
            &source(&|s| Some(s.tier_gaps.len() as f64)),
        );
        let copies: Vec<(String, f64)> =
            self.copies.iter().filter_map(|c| c.lag_seconds.map(|l| (label("copy", &c.name), l as f64))).collect();
        metric("cairn_copy_lag_seconds", "How long the oldest snapshot the copy lacks has waited.", &copies);
        let copies_ok: Vec<(String, f64)> = self.copies.iter().map(|c| (label("copy", &c.name), flag(c.ok))).collect();
        metric("cairn_copy_compliant", "Whether the copy is within its max lag (1) or not (0).", &copies_ok);
        if let Some(d) = &self.drill {
            let restore: Vec<(String, f64)> =
                d.restore_seconds.iter().map(|(s, secs)| (label("source", s), *secs)).collect();
            metric("cairn_drill_restore_seconds", "The newest drill's restore time per source.", &restore);
            metric("cairn_drill_rto_seconds", "The recovery time objective.", &[(String::new(), d.rto_seconds as f64)]);
        }
        if let Some(c) = &self.check {
            if let Some(t) = c.last_success {
                metric(
                    "cairn_check_last_success_timestamp_seconds",
                    "When the newest successful check ran.",
                    &[(String::new(), time(t))],
                );
            }
            metric(
                "cairn_check_cycle_coverage_ratio",
                "Share of the slices the last cycle's checks read.",
                &[(String::new(), f64::from(c.slices_covered) / f64::from(c.slices.max(1)))],
            );
        }
        if let Some(e) = &self.erasure {
            let overdue = e.pending.iter().filter(|p| p.overdue).count();
            metric(
                "cairn_erasure_requests_pending",
                "Erasure requests not yet carried out in every repository.",
                &[(String::new(), e.pending.len() as f64)],
            );
            metric(
                "cairn_erasure_requests_overdue",
                "Erasure requests pending past the deadline.",
                &[(String::new(), overdue as f64)],
            );
        }
        if let Some(t) = self.last_successful_run {
            metric(
                "cairn_run_last_success_timestamp_seconds",
                "When the newest run whose every step succeeded began.",
                &[(String::new(), time(t))],
            );
        }
        out
    }
}

/// A label value escaped as the text format asks (backslash, double quote, newline).
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(tiers: &str) -> Policy {
        Policy::parse(&format!(
            "[repository]\nurl = \"/r\"\n[[source]]\nname = \"s\"\npaths = [\"/d\"]\nevery = \"1d\"\nrpo = \"26h\"\n[retention]\ntiers = [{tiers}]\n"
        ))
        .unwrap()
    }

    fn at(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_missing_day_is_a_gap_of_the_daily_tier_and_nothing_before_the_first_snapshot_is() {
        let p = policy("\"1d:7d\"");
        let days = ["2026-03-01", "2026-03-02", "2026-03-04", "2026-03-05"];
        let times: Vec<_> = days.iter().map(|d| at(&format!("{d}T01:00:00Z"))).collect();
        let gaps = tier_gaps(&p, &times, at("2026-03-05T12:00:00Z"));
        assert_eq!(
            gaps,
            vec![TierGap { tier: "1d:7d".into(), from: at("2026-03-03T00:00:00Z"), to: at("2026-03-04T00:00:00Z") }]
        );
    }

    #[test]
    fn monthly_buckets_start_on_the_first() {
        let p = policy("\"1M:12M\"");
        let times = [at("2026-01-15T00:00:00Z"), at("2026-03-15T00:00:00Z")];
        let gaps = tier_gaps(&p, &times, at("2026-04-02T00:00:00Z"));
        assert_eq!(gaps.len(), 1, "{gaps:?}");
        assert_eq!(gaps[0].from, at("2026-02-01T00:00:00Z"));
        assert_eq!(gaps[0].to, at("2026-03-01T00:00:00Z"));
    }

    #[test]
    fn metrics_escape_label_values() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
