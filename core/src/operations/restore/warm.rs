//! Warming up archived data packs before a restore reads them (issue 15, item 4).
//!
//! In a repository whose data packs are created in an archive class (S3 Glacier Flexible
//! Retrieval or Deep Archive, FORMAT.md §7), a pack cannot be read until the store is asked to
//! make a readable copy, which takes minutes to hours. Trees, index and snapshots stay in the
//! default class, so the restore is planned without touching a cold object; then exactly the
//! packs the plan reads are checked, the cold ones are asked for (side by side), and the
//! restore waits, polling, until all are warm. Asking is idempotent, so a restore that is
//! interrupted (or told not to wait) and run again asks again and waits only for what is
//! still warming.

use std::time::{Duration, Instant};

use crate::foundation::error::{Error, Result};
use crate::foundation::id::PackId;
use crate::foundation::progress::Progress;
use crate::repository::Repository;
use crate::repository::store::batch;
use crate::repository::store::{ObjectKey, ObjectKind, WarmUp};

/// How a restore warms archived packs up.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct WarmOptions {
    /// The request: tier and days.
    pub request: WarmUp,
    /// Wait for the packs to be warm (`false`: ask, then stop with [`Error::WarmingUp`]).
    pub wait: bool,
    /// Time between two looks at what is still warming.
    pub poll: Duration,
}

impl Default for WarmOptions {
    fn default() -> Self {
        WarmOptions { request: WarmUp::default(), wait: true, poll: Duration::from_secs(60) }
    }
}

/// What warming up did.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Warmed {
    /// Packs the restore reads that were cold when it started.
    pub cold: u64,
    /// Warm-up requests made (each cold pack once per run).
    pub requested: u64,
    /// Seconds spent waiting.
    pub waited_seconds: f64,
}

/// Makes sure every pack of `packs` can be read: a no-op unless the repository's data class is
/// an archive class.
///
/// # Errors
/// Store errors; [`Error::WarmingUp`] when `opts.wait` is off and some pack is cold.
pub(super) fn warm(repo: &Repository, packs: &[PackId], opts: &WarmOptions, progress: &dyn Progress) -> Result<Warmed> {
    let mut out = Warmed::default();
    if !repo.config().data_is_archived() || packs.is_empty() {
        return Ok(out);
    }
    let keys: Vec<ObjectKey> = packs.iter().map(|p| ObjectKey::new(ObjectKind::Pack, p.0)).collect();
    let mut cold = still_cold(repo, &keys)?;
    out.cold = cold.len() as u64;
    let started = Instant::now();
    if !cold.is_empty() {
        out.requested += request(repo, &cold, &opts.request)? as u64;
        if !opts.wait {
            return Err(Error::WarmingUp(format!(
                "{} of the {} packs this restore reads are archived: their warm-up ({} tier, kept {} day(s)) is \
                 requested; run the restore again once they are warm (hours for S3 Glacier and Deep Archive)",
                cold.len(),
                keys.len(),
                opts.request.tier.name(),
                opts.request.days,
            )));
        }
    }
    while !cold.is_empty() {
        progress.warning(&format!(
            "warming up {} archived pack(s) of {} ({} tier); waiting",
            cold.len(),
            keys.len(),
            opts.request.tier.name()
        ));
        std::thread::sleep(opts.poll);
        cold = still_cold(repo, &cold)?;
    }
    out.waited_seconds = started.elapsed().as_secs_f64();
    Ok(out)
}

/// The packs of `keys` that cannot be read yet, asked side by side.
fn still_cold(repo: &Repository, keys: &[ObjectKey]) -> Result<Vec<ObjectKey>> {
    let store = repo.store();
    let warm = batch::try_map(keys, batch::in_flight(store.as_ref(), 0), |key| {
        store.is_warm(key).map_err(Error::store(*key))
    })?;
    let mut cold: Vec<ObjectKey> = keys.iter().zip(warm).filter(|(_, warm)| !warm).map(|(k, _)| *k).collect();
    cold.sort_by_key(|k| k.id);
    Ok(cold)
}

/// Asks for every pack of `cold` to be warmed up, side by side; returns how many were asked.
fn request(repo: &Repository, cold: &[ObjectKey], request: &WarmUp) -> Result<usize> {
    let store = repo.store();
    batch::try_map(cold, batch::in_flight(store.as_ref(), 0), |key| {
        store.warm_up(key, request).map_err(Error::store(*key))
    })
    .map(|asked| asked.len())
}
