//! `cairn run --policy`: do what a policy says is due, and nothing else, then store what was
//! done as a run record in the repository (FORMAT.md §14b).
//!
//! What is due is judged from the repository alone, never from local state, so any host with
//! the policy and the password judges the same way and a lost host loses no schedule: a source
//! is due once its newest snapshot is `every` old, the check and the drill once the newest run
//! record holding one is `every` old, prune once a day. The time is an argument, so tests can
//! run a year of policy without sleeping.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::format::record::{RunRecord, StepKind, StepRecord};
use crate::format::snapshot::Snapshot;
use crate::foundation::error::{Error, Result};
use crate::foundation::id::SnapshotId;
use crate::foundation::progress::NoProgress;
use crate::operations::backup::{self, BackupOptions, BackupSource};
use crate::operations::check::{self, ReadData};
use crate::operations::copy;
use crate::operations::forget::{self, ForgetOptions};
use crate::operations::prune::{self, PruneOptions};
use crate::operations::restore;
use crate::operations::status::CLOCK_SKEW;
use crate::policy::repos::Repos;
use crate::policy::{Policy, Source, SourceKind};
use crate::repository::Repository;
use crate::repository::select::{SnapshotFilter, SnapshotRef};

/// Whether this build lets the caller inject the time (`CAIRN_TEST_NOW` in the CLI): builds
/// with the `testing` feature only, so a production binary always runs by the clock.
pub const TIME_CAN_BE_INJECTED: bool = cfg!(feature = "testing");

/// How often `cairn run` prunes when the policy forgets snapshots.
pub const PRUNE_EVERY: Duration = Duration::from_secs(24 * 3600);

/// How early a step may come due: a timer that fires a little before the hour still finds the
/// hourly backup due. A tenth of the interval, at most five minutes.
fn slack(every: Duration) -> Duration {
    (every / 10).min(Duration::from_secs(300))
}

/// How a run is carried out.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RunOptions {
    /// The time the run judges what is due by, and the time of the snapshots it takes.
    pub now: jiff::Timestamp,
    /// Where per-source lock files go (advisory `flock` locks, released when the process
    /// ends however it ends): two runs at once never back up the same source. `None`: no
    /// locking.
    pub lock_dir: Option<PathBuf>,
    /// Where drills restore (a private temporary directory is made in it).
    pub drill_dir: PathBuf,
    /// Upload streams for backups and copies (0: the default).
    pub uploads: usize,
}

impl RunOptions {
    /// Options for a run at `now`, without locks, drilling under the system's temporary
    /// directory.
    #[must_use]
    pub fn new(now: jiff::Timestamp) -> Self {
        RunOptions { now, lock_dir: None, drill_dir: std::env::temp_dir(), uploads: 0 }
    }
}

/// An off-site copy as the caller opened it: the repository, or why it could not be opened
/// (that copy's step fails; the others go on).
pub struct CopyTarget<'a> {
    /// The copy's name in the policy.
    pub name: &'a str,
    /// The opened repository, or the error opening it.
    pub repo: std::result::Result<&'a Repository, String>,
}

/// Runs what `policy` says is due at `opts.now` against `repo` (and `copies`), stores the run
/// record and returns it. A failing step does not stop the ones after it; it is recorded as
/// failed ([`RunRecord::ok`] is false).
///
/// With a write-only key (a backup host's), only the sources' backups run, each due by the
/// last run record that backed it up, since such a key lists no snapshot; retention, prune,
/// copies, the check and the drill need a full key and are left to runs with one (`cairn
/// status --policy` names them when they are overdue).
///
/// # Errors
/// Only what leaves no record to write: the repository's snapshots or records cannot be
/// listed, or the record cannot be stored.
pub fn run(policy: &Policy, repo: &Repository, copies: &[CopyTarget<'_>], opts: &RunOptions) -> Result<RunRecord> {
    let records = repo.records()?;
    // The tenants' repositories are made when first needed: a source's first backup.
    let repos = Repos::open(policy, repo, true);
    let write_only = repo.master().is_write_only();
    // When each source was last backed up: its newest snapshot, or for a write-only key, which
    // reads no snapshot, its last backup recorded by a run.
    let last_backup = |records: &[RunRecord], snapshots: &[(SnapshotId, Snapshot)], source: &Source| {
        if write_only {
            last_step(records, StepKind::Backup, Some(&source.name), true)
        } else {
            newest_of(snapshots, &source.name, opts.now).map(|(_, t)| t)
        }
    };
    let snapshots = if write_only { Vec::new() } else { repos.snapshots()? };
    let mut steps = Vec::new();
    for source in &policy.sources {
        if !is_due(last_backup(&records, &snapshots, source), source.every, opts.now) {
            continue;
        }
        let into = match repos.for_source(source) {
            Ok(into) => into,
            Err(why) => {
                steps.push(StepRecord { message: why, ..StepRecord::new(StepKind::Backup, &source.name, false) });
                continue;
            }
        };
        let lock = match &opts.lock_dir {
            Some(dir) => match SourceLock::try_take(dir, into, &source.name) {
                Ok(Some(lock)) => Some(lock),
                Ok(None) => {
                    steps.push(StepRecord {
                        message: "another `cairn run` is backing this source up now; left to it".into(),
                        ..StepRecord::new(StepKind::Backup, &source.name, true)
                    });
                    continue;
                }
                Err(e) => {
                    steps.push(failed(StepKind::Backup, &source.name, &e, 0.0));
                    continue;
                }
            },
            None => None,
        };
        // Another run may have backed the source up between the listing and the lock.
        if lock.is_some() {
            let (fresh_records, fresh) =
                if write_only { (repo.records()?, Vec::new()) } else { (Vec::new(), into.snapshots()?) };
            if !is_due(last_backup(&fresh_records, &fresh, source), source.every, opts.now) {
                continue;
            }
        }
        steps.push(timed(StepKind::Backup, &source.name, || back_up(into, source, opts)));
        drop(lock);
    }
    if write_only {
        let record = RunRecord::new(opts.now, steps);
        repo.save_record(&record)?;
        return Ok(record);
    }
    // Retention and copies have work only when there is a snapshot newer than their last
    // success: one taken now, or one an earlier run could not forget or copy.
    let newest_any = repos.snapshots()?.iter().map(|(_, s)| s.time).filter(|t| *t <= opts.now + CLOCK_SKEW).max();
    let behind = |kind: StepKind, target: &str| match (newest_any, last_step(&records, kind, Some(target), true)) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(newest), Some(done)) => done < newest,
    };
    if !policy.retention.is_empty() && behind(StepKind::Forget, "") {
        steps.push(timed(StepKind::Forget, "", || apply_retention(&repos, policy)));
        let last_prune = last_step(&records, StepKind::Prune, Some(""), true);
        if is_due(last_prune, PRUNE_EVERY, opts.now) {
            steps.push(timed(StepKind::Prune, "", || prune_step(&repos, "")));
        }
    }
    for c in copies.iter().filter(|c| behind(StepKind::Copy, c.name)) {
        let dst = match c.repo {
            Ok(dst) => dst,
            Err(ref why) => {
                steps.push(StepRecord { message: why.clone(), ..StepRecord::new(StepKind::Copy, c.name, false) });
                continue;
            }
        };
        let there = Repos::open(policy, dst, true);
        steps.push(timed(StepKind::Copy, c.name, || {
            let mut message = Vec::new();
            let mut uploaded = 0;
            for (tenant, src) in repos.all() {
                let to =
                    match tenant {
                        None => dst,
                        Some(t) => there.all().find(|(name, _)| *name == Some(t)).map(|(_, r)| r).ok_or_else(|| {
                            Error::InvalidArgument(format!("tenant `{t}` could not be made in the copy"))
                        })?,
                    };
                let stats = copy::run(src, to, &[])?;
                let wal = crate::postgres::copy_archive(src, to)?;
                uploaded += stats.bytes_uploaded;
                let mut said = format!("{} snapshots copied, {} there already", stats.copied.len(), stats.skipped);
                if wal.files > 0 {
                    said = format!("{said}; {} archived WAL files copied", wal.files);
                }
                message.push(match tenant {
                    None => said,
                    Some(t) => format!("tenant {t}: {said}"),
                });
            }
            if let Some(why) = repos.failed().next() {
                return Err(Error::InvalidArgument(why.to_string()));
            }
            // The copy keeps what the primary keeps: the same tiers, applied there.
            if !policy.retention.is_empty() {
                message.push(apply_retention(&there, policy)?.message);
            }
            Ok(StepRecord {
                message: message.join("; "),
                bytes: uploaded,
                ..StepRecord::new(StepKind::Copy, c.name, true)
            })
        }));
        if !policy.retention.is_empty()
            && is_due(last_step(&records, StepKind::Prune, Some(c.name), true), PRUNE_EVERY, opts.now)
        {
            steps.push(timed(StepKind::Prune, c.name, || prune_step(&there, c.name)));
        }
    }
    if let Some(c) = &policy.check
        && is_due(last_step(&records, StepKind::Check, None, false), c.every, opts.now)
    {
        let (mode, slice) = check_slice(c.read_data, &records);
        steps.push(timed(StepKind::Check, "", || {
            let (mut problems, mut packs, mut bytes) = (Vec::new(), 0, 0);
            for (tenant, r) in repos.all() {
                let report = check::run(r, mode)?;
                packs += report.packs_read;
                bytes += report.bytes_read;
                if !report.ok() {
                    problems.push(format!(
                        "{}{} problems: {}",
                        tenant.map(|t| format!("tenant {t}: ")).unwrap_or_default(),
                        report.problems.len(),
                        first_problems(&report)
                    ));
                }
            }
            problems.extend(repos.failed().map(str::to_string));
            Ok(StepRecord {
                ok: problems.is_empty(),
                message: if problems.is_empty() {
                    format!("no errors; {packs} packs read")
                } else {
                    problems.join("; ")
                },
                slice,
                bytes,
                ..StepRecord::new(StepKind::Check, "", true)
            })
        }));
    }
    if let Some(d) = &policy.drill
        && is_due(last_step(&records, StepKind::Drill, None, false), d.every, opts.now)
    {
        let snapshots = repos.snapshots()?;
        for source in &policy.sources {
            let found = newest_of(&snapshots, &source.name, opts.now).map(|(id, _)| id);
            let (Some(id), Ok(from)) = (found, repos.for_source(source)) else {
                steps.push(StepRecord {
                    message: "no snapshot of this source to drill".into(),
                    ..StepRecord::new(StepKind::Drill, &source.name, false)
                });
                continue;
            };
            steps.push(timed(StepKind::Drill, &source.name, || drill(from, &source.name, id, d.rto, opts)));
        }
    }
    let record = RunRecord::new(opts.now, steps);
    repo.save_record(&record)?;
    Ok(record)
}

/// Whether a step last done at `last` (never: `None`) is due again at `now`.
fn is_due(last: Option<jiff::Timestamp>, every: Duration, now: jiff::Timestamp) -> bool {
    let Some(last) = last else { return true };
    let every = jiff::SignedDuration::try_from(every.saturating_sub(slack(every))).unwrap_or(jiff::SignedDuration::MAX);
    now.duration_since(last) >= every
}

/// The newest snapshot of `source` (tagged with its name) not dated after `now` (beyond the
/// clock skew allowed): a snapshot from the future never makes a source look fresh.
fn newest_of(
    snapshots: &[(SnapshotId, crate::format::snapshot::Snapshot)],
    source: &str,
    now: jiff::Timestamp,
) -> Option<(SnapshotId, jiff::Timestamp)> {
    snapshots
        .iter()
        .filter(|(_, s)| s.tags.iter().any(|t| t == source) && s.time <= now + CLOCK_SKEW)
        .map(|(id, s)| (*id, s.time))
        .max_by_key(|(_, t)| *t)
}

/// When the newest run that took a step of `kind` for `target` (any target: `None`) started
/// (with `ok_only`, a step that succeeded).
fn last_step(records: &[RunRecord], kind: StepKind, target: Option<&str>, ok_only: bool) -> Option<jiff::Timestamp> {
    records
        .iter()
        .filter(|r| {
            r.steps.iter().any(|s| s.kind == kind && target.is_none_or(|t| s.target == t) && (s.ok || !ok_only))
        })
        .map(|r| r.started)
        .max()
}

/// The slice this check reads: with `read_data_subset = "n/m"` the checks take the `m` slices
/// in turn (counting the checks recorded so far), so `m` checks read every pack once.
fn check_slice(asked: ReadData, records: &[RunRecord]) -> (ReadData, Option<(u32, u32)>) {
    match asked {
        ReadData::Subset { m, .. } if m > 0 => {
            let done = records.iter().flat_map(|r| &r.steps).filter(|s| s.kind == StepKind::Check).count();
            let n = u32::try_from(done % m as usize).unwrap_or(0) + 1;
            (ReadData::Subset { n, m }, Some((n, m)))
        }
        other => (other, None),
    }
}

fn first_problems(report: &check::CheckReport) -> String {
    let named: Vec<String> = report.problems.iter().take(3).map(|p| format!("{}: {}", p.object, p.message)).collect();
    named.join("; ")
}

fn back_up(repo: &Repository, source: &Source, opts: &RunOptions) -> Result<StepRecord> {
    let mut bopts = BackupOptions {
        tags: vec![source.name.clone()],
        time: Some(opts.now),
        uploads: opts.uploads,
        ..BackupOptions::default()
    };
    let what = match &source.kind {
        SourceKind::Command { argv, filename } => BackupSource::command(filename, argv.iter().cloned()),
        SourceKind::Paths { paths, exclude } => {
            bopts.excludes = exclude.clone();
            BackupSource::paths(paths.iter().cloned())
        }
        SourceKind::Postgres { cluster, args, pg_bin } => {
            let program = crate::postgres::find_program(pg_bin.as_deref(), "pg_basebackup").ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "source `{}`: pg_basebackup not found (install PostgreSQL's client programs or set pg_bin)",
                    source.name
                ))
            })?;
            let cell = std::sync::Arc::new(std::sync::OnceLock::new());
            let stream = crate::postgres::basebackup::BaseBackupStream::start(
                &program,
                args,
                cluster,
                std::sync::Arc::clone(&cell),
            )?;
            bopts.postgres = Some(cell);
            BackupSource::reader(crate::postgres::BASE_TAR, stream)
        }
    };
    let result = backup::run(repo, what, &bopts, &NoProgress)?;
    let s = &result.summary;
    let unread = s.errors.len();
    Ok(StepRecord {
        ok: unread == 0,
        message: if unread == 0 {
            format!(
                "{} files, {} bytes read, {} bytes new",
                s.files_new + s.files_changed + s.files_unmodified,
                s.bytes_read,
                s.bytes_new
            )
        } else {
            format!("snapshot written without {unread} entries that could not be read: {}", s.errors.join("; "))
        },
        snapshot: Some(result.snapshot.to_string()),
        bytes: s.bytes_read,
        ..StepRecord::new(StepKind::Backup, &source.name, true)
    })
}

fn prune_step(repos: &Repos<'_>, target: &str) -> Result<StepRecord> {
    let (mut deleted, mut repacked, mut freed, mut wal_files) = (0, 0, 0, 0);
    for (_, repo) in repos.all() {
        let stats = prune::run(repo, &PruneOptions::default())?;
        let wal = crate::postgres::chain::expire(repo, false)?;
        deleted += stats.packs_deleted;
        repacked += stats.packs_repacked;
        freed += stats.bytes_freed + wal.bytes;
        wal_files += wal.files;
    }
    Ok(StepRecord {
        message: format!(
            "{deleted} packs deleted, {repacked} repacked, {freed} bytes freed; {wal_files} archived WAL files expired"
        ),
        bytes: freed,
        ..StepRecord::new(StepKind::Prune, target, true)
    })
}

/// Applies the retention tiers to each source's snapshots on its own, in its repository.
fn apply_retention(repos: &Repos<'_>, policy: &Policy) -> Result<StepRecord> {
    let (mut removed, mut kept) = (0, 0);
    for source in &policy.sources {
        // A tenant not made yet has nothing to forget.
        let Ok(repo) = repos.for_source(source) else { continue };
        let rules = forget::retention::Policy { keep_tiers: policy.retention.clone(), ..Default::default() };
        let mut fopts = ForgetOptions::new(rules);
        fopts.filter = SnapshotFilter { tags: vec![source.name.clone()], ..Default::default() };
        let outcome = forget::run(repo, &fopts)?;
        removed += outcome.removed.len();
        kept += outcome.kept;
    }
    Ok(StepRecord {
        message: format!("removed {removed} snapshots, kept {kept}"),
        ..StepRecord::new(StepKind::Forget, "", true)
    })
}

fn drill(repo: &Repository, source: &str, id: SnapshotId, rto: Duration, opts: &RunOptions) -> Result<StepRecord> {
    let report = restore::drill_in(repo, &SnapshotRef::Id(id), &SnapshotFilter::default(), &opts.drill_dir)?;
    let r = &report.restore;
    let in_time = r.seconds <= rto.as_secs_f64();
    let message = if !report.ok() {
        format!("{} files failed to restore or verify", r.failed.len())
    } else if !in_time {
        format!(
            "restored and verified {} files, {} bytes, in {:.1} s: over the RTO of {} s",
            r.files,
            r.bytes,
            r.seconds,
            rto.as_secs()
        )
    } else {
        format!(
            "restored and verified {} files, {} bytes, in {:.1} s (RTO {} s)",
            r.files,
            r.bytes,
            r.seconds,
            rto.as_secs()
        )
    };
    Ok(StepRecord {
        ok: report.ok() && in_time,
        message,
        snapshot: Some(id.to_string()),
        bytes: r.bytes,
        ..StepRecord::new(StepKind::Drill, source, true)
    })
}

fn failed(kind: StepKind, target: &str, e: &Error, seconds: f64) -> StepRecord {
    StepRecord { message: e.to_string(), seconds, ..StepRecord::new(kind, target, false) }
}

/// Runs one step, timing it; an error becomes a failed step.
fn timed(kind: StepKind, target: &str, f: impl FnOnce() -> Result<StepRecord>) -> StepRecord {
    let started = Instant::now();
    match f() {
        Ok(mut s) => {
            s.seconds = started.elapsed().as_secs_f64();
            s
        }
        Err(e) => failed(kind, target, &e, started.elapsed().as_secs_f64()),
    }
}

/// An exclusive advisory lock on one source of one repository, held while it is backed up.
struct SourceLock {
    _file: std::fs::File,
}

impl SourceLock {
    /// Takes the lock, or `None` when another process holds it.
    fn try_take(dir: &Path, repo: &Repository, source: &str) -> Result<Option<Self>> {
        crate::foundation::private::create_dir_all(dir, 0o700).map_err(|e| Error::io(dir, e))?;
        let name = crate::foundation::id::Digest::of(format!("{}\0{source}", repo.config().id).as_bytes());
        let path = dir.join(format!("{}.lock", &name.to_hex()[..16]));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(SourceLock { _file: file })),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(Error::io(&path, std::io::Error::from(e))),
        }
    }
}
