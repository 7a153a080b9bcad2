//! Erasure on request (`cairn erase --policy`): matching paths leave every snapshot of the
//! repository and of each copy, and their bytes leave the storage in the same command, not
//! after two prunes and a grace period; the erasure is recorded in every repository, and a
//! completion notice the key holders can verify is written for the customer.
//!
//! Nothing here endangers a backup running at the same time: the bytes go through prune's
//! two phases back to back, with no grace period, and the sweep still keeps every garbage list
//! written after a running writer began (its session marker, FORMAT.md §14a). Erasure then
//! waits for such a writer to end, up to a bound, and sweeps again; past the bound it records
//! the bytes as still held, and a later prune deletes them.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::format::record::{Erasure, RunRecord, StepKind, StepRecord};
use crate::foundation::error::{Error, Result};
use crate::foundation::progress::NoProgress;
use crate::operations::prune::{self, PruneOptions};
use crate::operations::repair;
use crate::policy::run::CopyTarget;
use crate::repository::Repository;

/// The name of the primary repository in erasure records and notices.
pub const PRIMARY: &str = "primary";

/// One request.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Request {
    /// The request's id (a ticket number): how records and notices name it.
    pub id: String,
    /// The paths to erase, as `rewrite --exclude` globs.
    pub patterns: Vec<String>,
    /// How long to wait for running backups that hold erased bytes, before recording them as
    /// held.
    pub wait: Duration,
    /// The time the request is recorded at.
    pub now: jiff::Timestamp,
}

impl Request {
    /// A request `id` for `patterns`, waiting up to ten minutes for running backups.
    #[must_use]
    pub fn new(id: impl Into<String>, patterns: Vec<String>, now: jiff::Timestamp) -> Self {
        Request { id: id.into(), patterns, wait: Duration::from_secs(600), now }
    }
}

/// Carries out `request` in `primary` and each copy, and stores the record (one erase step per
/// repository) in every repository that could be opened. A repository where it failed is a
/// failed step; the others still go on.
///
/// # Errors
/// An empty request, or the record cannot be stored in the primary.
pub fn erase(primary: &Repository, copies: &[CopyTarget<'_>], request: &Request) -> Result<RunRecord> {
    if request.id.trim().is_empty() || request.patterns.is_empty() {
        return Err(Error::InvalidArgument("an erasure needs a request id and at least one path pattern".into()));
    }
    let mut steps = vec![in_one(primary, PRIMARY, request)];
    for c in copies {
        steps.push(match c.repo {
            Ok(repo) => in_one(repo, c.name, request),
            Err(ref why) => StepRecord {
                message: why.clone(),
                erasure: Some(detail(request, Vec::new(), Vec::new(), None, 0)),
                ..StepRecord::new(StepKind::Erase, c.name, false)
            },
        });
    }
    store_everywhere(primary, copies, RunRecord::new(request.now, steps))
}

/// Stores `record` in the primary, then in each copy (its own evidence; failing to store it
/// there is said in the primary's record already if the erasure failed there, and is not worth
/// failing the request for).
fn store_everywhere(primary: &Repository, copies: &[CopyTarget<'_>], record: RunRecord) -> Result<RunRecord> {
    primary.save_record(&record)?;
    for c in copies {
        if let Ok(repo) = c.repo {
            let _ = repo.save_record(&record);
        }
    }
    Ok(record)
}

fn detail(
    request: &Request,
    snapshots: Vec<(String, String)>,
    files: Vec<String>,
    deleted: Option<jiff::Timestamp>,
    packs: u64,
) -> Erasure {
    Erasure {
        request: request.id.clone(),
        patterns: request.patterns.clone(),
        snapshots,
        files,
        bytes_deleted_at: deleted,
        packs_deleted: packs,
        tenant: None,
        key_destroyed_at: None,
        held: Vec::new(),
    }
}

fn in_one(repo: &Repository, name: &str, request: &Request) -> StepRecord {
    let started = Instant::now();
    let mut step = StepRecord::new(StepKind::Erase, name, false);
    match erase_bytes(repo, request) {
        Ok(e) => {
            step.ok = e.bytes_deleted_at.is_some();
            step.message = match e.bytes_deleted_at {
                Some(_) => format!(
                    "{} paths erased from {} snapshots; {} packs deleted",
                    e.files.len(),
                    e.snapshots.len(),
                    e.packs_deleted
                ),
                None => format!(
                    "{} paths erased from {} snapshots; their bytes are held by a backup still running and go at the next prune",
                    e.files.len(),
                    e.snapshots.len()
                ),
            };
            step.erasure = Some(e);
        }
        Err(e) => {
            step.message = e.to_string();
            step.erasure = Some(detail(request, Vec::new(), Vec::new(), None, 0));
        }
    }
    step.seconds = started.elapsed().as_secs_f64();
    step
}

/// Erases the paths from the repository and from every tenant's repository nested in it.
fn erase_bytes(repo: &Repository, request: &Request) -> Result<Erasure> {
    let mut all = erase_bytes_in(repo, request)?;
    for t in repo.tenants()? {
        let tenant = repo.open_tenant(&t.name)?;
        let e = erase_bytes_in(&tenant, request)?;
        all.snapshots.extend(e.snapshots);
        all.files.extend(e.files);
        all.packs_deleted += e.packs_deleted;
        all.bytes_deleted_at = all.bytes_deleted_at.zip(e.bytes_deleted_at).map(|(a, b)| a.max(b));
    }
    all.files.sort();
    all.files.dedup();
    Ok(all)
}

/// Rewrites the snapshots without the paths, then prunes twice with no grace period (mark,
/// then sweep), waiting for running writers that hold the list.
fn erase_bytes_in(repo: &Repository, request: &Request) -> Result<Erasure> {
    let changed = repair::erase(repo, &[], &request.patterns, true, &NoProgress)?;
    let snapshots: Vec<(String, String)> = changed
        .iter()
        .map(|c| (c.snapshot.to_string(), c.replacement.map(|r| r.to_string()).unwrap_or_default()))
        .collect();
    let files: BTreeSet<String> =
        changed.iter().flat_map(|c| c.removed.iter().map(|r| r.path.display().to_string())).collect();
    let files: Vec<String> = files.into_iter().collect();
    let mark = PruneOptions { grace: Duration::ZERO, max_unused: 0.0, dry_run: false };
    let mut packs = prune::run(repo, &mark)?.packs_deleted;
    let deadline = Instant::now() + request.wait;
    loop {
        let sweep = prune::run(repo, &mark)?;
        packs += sweep.packs_deleted;
        if sweep.lists_held == 0 {
            return Ok(detail(request, snapshots, files, Some(jiff::Timestamp::now()), packs));
        }
        if Instant::now() >= deadline {
            return Ok(detail(request, snapshots, files, None, packs));
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// Crypto-shreds `tenant` in `primary` and each copy ([`Repository::shred_tenant`]) and stores
/// the record (one erase step per repository) in every repository that could be opened. A
/// repository's step succeeds once the tenant's key is gone from it; objects the storage
/// would not delete are named in the record as held.
///
/// # Errors
/// An empty request id or a bad tenant name, or the record cannot be stored in the primary.
pub fn shred(primary: &Repository, copies: &[CopyTarget<'_>], tenant: &str, request: &Request) -> Result<RunRecord> {
    if request.id.trim().is_empty() {
        return Err(Error::InvalidArgument("an erasure needs a request id".into()));
    }
    crate::format::tenant::check_name(tenant).map_err(Error::InvalidArgument)?;
    let mut steps = vec![shred_one(Ok(primary), PRIMARY, tenant, request)];
    steps.extend(copies.iter().map(|c| shred_one(c.repo.clone(), c.name, tenant, request)));
    store_everywhere(primary, copies, RunRecord::new(request.now, steps))
}

fn shred_one(
    repo: std::result::Result<&Repository, String>,
    name: &str,
    tenant: &str,
    request: &Request,
) -> StepRecord {
    let started = Instant::now();
    let mut step = StepRecord::new(StepKind::Erase, name, false);
    let mut e = detail(&Request { patterns: Vec::new(), ..request.clone() }, Vec::new(), Vec::new(), None, 0);
    e.tenant = Some(tenant.to_string());
    match repo.map_err(Error::InvalidArgument).and_then(|r| r.shred_tenant(tenant)) {
        Ok(s) => {
            step.ok = true;
            e.key_destroyed_at = s.key_destroyed_at;
            e.bytes_deleted_at = s.bytes_deleted_at;
            e.packs_deleted = s.objects_deleted;
            e.held = s.held.iter().map(|(object, why)| format!("{object}: {why}")).collect();
            let key = if s.key_destroyed { "key destroyed" } else { "no key here (never made, or shredded before)" };
            step.message = if e.held.is_empty() {
                format!("tenant {tenant}: {key}; {} objects ({} bytes) deleted", s.objects_deleted, s.bytes_deleted)
            } else {
                format!(
                    "tenant {tenant}: {key}; {} objects deleted, {} held by the storage (unreadable without the key)",
                    s.objects_deleted,
                    e.held.len()
                )
            };
            step.bytes = s.bytes_deleted;
        }
        Err(err) => step.message = format!("tenant {tenant}: {err}"),
    }
    step.erasure = Some(e);
    step.seconds = started.elapsed().as_secs_f64();
    step
}

/// A completion notice: what a request removed and where, with a MAC that holders of the
/// repository's key can check ([`verify_notice`]) and no one else can forge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Notice {
    /// The request.
    pub request: String,
    /// The patterns erased.
    pub patterns: Vec<String>,
    /// The tenant shredded (`erase --tenant`), whose every backup was erased.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// When the request was carried out.
    pub carried_out: jiff::Timestamp,
    /// Per repository (`primary` or the copy's name): whether its bytes are gone, how many
    /// snapshots and paths.
    pub repositories: Vec<NoticeRepository>,
    /// Every path removed, in any repository.
    pub files: Vec<String>,
    /// Hex keyed BLAKE3 of this document's JSON with `mac` empty, under a key derived from
    /// the primary repository's master key.
    pub mac: String,
}

/// One repository's part of a notice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NoticeRepository {
    /// `primary` or the copy's name.
    pub name: String,
    /// Snapshots rewritten.
    pub snapshots: usize,
    /// When the erased bytes left its storage (absent: not yet).
    pub bytes_deleted_at: Option<jiff::Timestamp>,
    /// For a tenant shredded: when its key was destroyed there, making its bytes unreadable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_destroyed_at: Option<jiff::Timestamp>,
}

/// The notice for an erasure `record`, authenticated under `primary`'s key.
///
/// # Errors
/// [`Error::WriteOnly`] for a write-only key.
pub fn notice(primary: &Repository, record: &RunRecord) -> Result<Notice> {
    let mut files = BTreeSet::new();
    let mut repositories = Vec::new();
    let (mut request, mut patterns, mut tenant) = (String::new(), Vec::new(), None);
    for s in record.steps.iter().filter(|s| s.kind == StepKind::Erase) {
        if let Some(e) = &s.erasure {
            request.clone_from(&e.request);
            patterns.clone_from(&e.patterns);
            tenant.clone_from(&e.tenant);
            files.extend(e.files.iter().cloned());
            repositories.push(NoticeRepository {
                name: s.target.clone(),
                snapshots: e.snapshots.len(),
                bytes_deleted_at: e.bytes_deleted_at,
                key_destroyed_at: e.key_destroyed_at,
            });
        }
    }
    let mut n = Notice {
        request,
        patterns,
        tenant,
        carried_out: record.started,
        repositories,
        files: files.into_iter().collect(),
        mac: String::new(),
    };
    n.mac = hex::encode(primary.master().notice_mac(&unsigned(&n)).map_err(|e| Error::crypto("the notice", e))?);
    Ok(n)
}

/// Whether `notice` was issued by a holder of `repo`'s key and is unchanged.
#[must_use]
pub fn verify_notice(repo: &Repository, notice: &Notice) -> bool {
    let Ok(expected) = repo.master().notice_mac(&unsigned(notice)) else { return false };
    // blake3's `Hash` compares in constant time.
    blake3::Hash::from_hex(&notice.mac).is_ok_and(|mac| mac == blake3::Hash::from(expected))
}

fn unsigned(n: &Notice) -> Vec<u8> {
    let mut bare = n.clone();
    bare.mac.clear();
    serde_json::to_vec(&bare).unwrap_or_default()
}

/// Every erasure carried out, from `repo`'s records: per request, its steps.
///
/// # Errors
/// As [`Repository::records`].
pub fn list(repo: &Repository) -> Result<Vec<RunRecord>> {
    Ok(repo.records()?.into_iter().filter(|r| r.steps.iter().any(|s| s.kind == StepKind::Erase)).collect())
}
