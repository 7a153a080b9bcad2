//! Garbage collection that never races a running backup (FORMAT.md §Prune).
//!
//! No locks. Prune works in two phases separated by a grace period measured with the store's
//! own timestamps:
//!
//! 1. **Mark** ([`PrunePlan::compute`] then [`PrunePlan::apply`]): find the blobs the current
//!    snapshots use; repack the used blobs of packs whose unused share is too high; write index
//!    objects that cover every kept pack (superseding the old ones, which are then deleted);
//!    and write a *garbage list* naming the packs no longer indexed, with their entries.
//! 2. **Sweep** (at the start of every later prune): for each garbage list older than the grace
//!    period, packs holding a blob that a snapshot now needs (a backup that started before the
//!    mark and deduplicated against the old index) are put back into the index; the rest are
//!    deleted, then the list.
//!
//! Packs younger than the grace period (by the store's clock) are never marked: they may
//! belong to a backup still running. A backup also checks, just before writing its snapshot,
//! that every pack it uploaded or reused still exists (failing without a snapshot if one was
//! swept) and is still indexed (re-indexing it if a prune took it out), so a backup running
//! longer than the grace period cannot commit a snapshot with missing data. Prune itself takes
//! back listed packs a committed snapshot needs. An interrupted prune leaves at worst duplicate
//! index entries or a garbage list the next prune finishes.

mod mark;
mod repack;
mod sweep;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use serde::Serialize;

use crate::format::blob::BlobKind;
use crate::format::garbage::{GarbageList, GarbagePack};
use crate::format::index::IndexedPack;
use crate::foundation::error::{Error, Result};
use crate::foundation::id::{BlobId, IndexId, PackId};
use crate::foundation::progress::{NoProgress, Progress};
use crate::repository::Repository;
use crate::repository::index::Index;
use crate::repository::store::{ObjectKey, ObjectKind};
use mark::{Catalog, live_snapshot_trees, mark, write_garbage};

/// Prune settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PruneOptions {
    /// Repack partly used packs until unused bytes are at most this fraction of all pack bytes.
    pub max_unused: f64,
    /// How long unreferenced packs wait before deletion (store time).
    pub grace: Duration,
    /// Compute and report only.
    pub dry_run: bool,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions { max_unused: 0.05, grace: Duration::from_secs(3600), dry_run: false }
    }
}

/// What prune did (or would do).
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct PruneStats {
    /// Blobs the snapshots use.
    pub used_blobs: u64,
    /// Packs kept as they are.
    pub packs_kept: u64,
    /// Packs whose used blobs were copied into new packs.
    pub packs_repacked: u64,
    /// Packs no snapshot needs, now waiting for the grace period.
    pub packs_marked: u64,
    /// Packs deleted after their grace period.
    pub packs_deleted: u64,
    /// Packs taken back from a garbage list because a newer snapshot needs them.
    pub packs_resurrected: u64,
    /// Bytes deleted.
    pub bytes_freed: u64,
    /// Bytes marked for deletion (freed by a later prune, after the grace period).
    pub bytes_marked: u64,
    /// Bytes in kept packs.
    pub bytes_kept: u64,
    /// Unused bytes left in kept packs.
    pub bytes_unused_left: u64,
    /// Packs in storage that no index names, left by interrupted backups.
    pub packs_unindexed: u64,
    /// Packs younger than the grace period, left alone (they may belong to a running backup).
    pub packs_young: u64,
    /// Garbage lists past the grace period kept because a writer that began before them is
    /// still running (its session marker is fresh): it may have loaded an index naming them.
    pub lists_held: u64,
    /// Session markers of crashed writers deleted.
    pub sessions_stale: u64,
    /// Used trees written once more because only one copy of them was left (FORMAT.md §10).
    pub trees_recopied: u64,
    /// Parity objects deleted with their packs, or left by a backup interrupted before it
    /// stored their pack (FORMAT.md §10a).
    pub parity_deleted: u64,
    /// Objects due for deletion that object lock still retains: not deleted (a later prune
    /// deletes them once their retention has passed).
    pub objects_held: u64,
    /// The latest date one of them is retained until.
    pub held_until: Option<jiff::Timestamp>,
    /// Objects kept snapshots need whose retention was extended (object lock).
    pub retention_extended: u64,
}

/// The store's idea of "now": the timestamp of an object we just wrote.
fn store_now(repo: &Repository, key: &ObjectKey) -> Result<jiff::Timestamp> {
    let listed = repo.store().list(key.kind).map_err(Error::Storage)?;
    listed
        .into_iter()
        .find(|i| i.key == *key)
        .map(|i| i.last_modified)
        .ok_or_else(|| Error::NotFound(format!("{key} just written")))
}

/// What prune will do.
#[derive(Debug)]
pub struct PrunePlan {
    used: HashSet<BlobId>,
    keep: Vec<IndexedPack>,
    repack: Vec<IndexedPack>,
    drop: Vec<(IndexedPack, u64)>,
    old_indexes: Vec<IndexId>,
    unindexed: Vec<(PackId, u64)>,
    /// Used trees with one copy left in the packs kept and none in a pack repacked (a pack of
    /// theirs was lost, or they were written by a version 1 writer): written once more.
    recopy: Vec<BlobId>,
    index: Index,
    /// The figures.
    pub stats: PruneStats,
}

impl PrunePlan {
    /// Decides which packs to keep, repack and drop.
    ///
    /// # Errors
    /// Store errors; damaged snapshots, trees or index objects.
    pub fn compute(repo: &Repository, opts: &PruneOptions) -> Result<Self> {
        // Snapshots first, then the index objects (see `live_snapshot_trees`). Packs on
        // garbage lists are out of the index but still stored until swept: a backup that ran
        // across an earlier prune may have committed a snapshot that needs them, so trees are
        // read through them too, and every listed pack a snapshot uses is taken back.
        let roots = live_snapshot_trees(repo)?;
        let mut catalog = Catalog::read(repo)?;
        let mut used = HashSet::new();
        mark(repo, &mut catalog, roots, &mut used)?;
        let index = catalog.index();
        let mut packs: BTreeMap<PackId, IndexedPack> = BTreeMap::new();
        for f in catalog.files.values() {
            for p in &f.packs {
                packs.entry(p.id).or_insert_with(|| p.clone());
            }
        }
        let listed: HashSet<PackId> = catalog.listed_packs().map(|p| p.id).collect();
        let lookup = catalog.lookup(&index);
        let mut resurrected = 0u64;
        for p in catalog.listed_packs() {
            if p.entries.iter().any(|e| used.contains(&e.id) && !index.contains(&e.id)) && !packs.contains_key(&p.id) {
                resurrected += 1;
                packs.insert(p.id, p);
            }
        }
        drop(index);
        let pack_infos = repo.store().list(ObjectKind::Pack).map_err(Error::Storage)?;
        let sizes: HashMap<PackId, u64> = pack_infos.iter().map(|i| (PackId(i.key.id), i.size)).collect();
        // Packs younger than the grace period may belong to a backup still running (its index
        // checkpoints name them before its snapshot exists): they are neither marked nor
        // repacked this time. "Now" is the newest timestamp the store itself gave an object,
        // never this machine's clock.
        let mut newest = pack_infos.iter().map(|i| i.last_modified).max().unwrap_or_default();
        for kind in [ObjectKind::Index, ObjectKind::Snapshot] {
            for i in repo.store().list(kind).map_err(Error::Storage)? {
                newest = newest.max(i.last_modified);
            }
        }
        let grace = jiff::SignedDuration::try_from(opts.grace).unwrap_or(jiff::SignedDuration::MAX);
        let young: HashSet<PackId> = pack_infos
            .iter()
            .filter(|i| grace > jiff::SignedDuration::ZERO && newest.duration_since(i.last_modified) < grace)
            .map(|i| PackId(i.key.id))
            .collect();
        let mut stats =
            PruneStats { used_blobs: used.len() as u64, packs_resurrected: resurrected, ..Default::default() };
        // Each used data blob is kept in exactly one pack, the first that holds it; each used
        // tree in two (trees are written twice, FORMAT.md §10).
        let mut claimed: HashMap<BlobId, u8> = HashMap::new();
        let mut partial: Vec<(IndexedPack, u64, u64)> = Vec::new();
        let mut keep = Vec::new();
        let mut drop = Vec::new();
        for p in packs.into_values() {
            let Some(&size) = sizes.get(&p.id) else { continue }; // missing: check reports it
            let mut used_bytes = 0u64;
            let mut unused_bytes = 0u64;
            for e in &p.entries {
                let copies = if e.kind == BlobKind::Tree { 2 } else { 1 };
                let claims = claimed.entry(e.id).or_default();
                if used.contains(&e.id) && *claims < copies {
                    *claims += 1;
                    used_bytes += u64::from(e.length);
                } else {
                    unused_bytes += u64::from(e.length);
                }
            }
            if young.contains(&p.id) {
                stats.bytes_kept += size;
                stats.bytes_unused_left += unused_bytes;
                stats.packs_young += 1;
                keep.push(p);
            } else if used_bytes == 0 {
                stats.bytes_marked += size;
                drop.push((p, size));
            } else if unused_bytes == 0 {
                stats.bytes_kept += size;
                keep.push(p);
            } else {
                partial.push((p, size, unused_bytes));
            }
        }
        // Repack the emptiest packs first until the unused share is within bounds.
        partial.sort_by_key(|p| std::cmp::Reverse(p.2 * 1000 / p.1.max(1)));
        let total: u64 = stats.bytes_kept + partial.iter().map(|p| p.1).sum::<u64>();
        let mut unused_left: u64 = partial.iter().map(|p| p.2).sum();
        let mut repack = Vec::new();
        for (p, size, unused) in partial {
            if unused_left as f64 > opts.max_unused * total as f64 {
                unused_left -= unused;
                stats.bytes_marked += size;
                repack.push(p);
            } else {
                stats.bytes_kept += size;
                keep.push(p);
            }
        }
        stats.bytes_unused_left += unused_left;
        stats.packs_kept = keep.len() as u64;
        stats.packs_repacked = repack.len() as u64;
        stats.packs_marked = (drop.len() + repack.len()) as u64;
        let indexed: HashSet<PackId> =
            keep.iter().chain(repack.iter()).map(|p| p.id).chain(drop.iter().map(|(p, _)| p.id)).collect();
        // Packs already on a garbage list are waiting out their grace period, not unindexed.
        // Young packs no index names (a running backup's, not yet in an index checkpoint) are
        // left alone like young indexed ones.
        stats.packs_young += young.iter().filter(|id| !indexed.contains(id) && !listed.contains(id)).count() as u64;
        let unindexed: Vec<(PackId, u64)> = sizes
            .into_iter()
            .filter(|(id, _)| !indexed.contains(id) && !listed.contains(id) && !young.contains(id))
            .collect();
        stats.packs_unindexed = unindexed.len() as u64;
        // Every used tree is to be stored twice: count the copies the kept packs hold; trees in
        // a repacked pack are written (twice if need be) by the repacking.
        let mut tree_copies: HashMap<BlobId, u32> = HashMap::new();
        for e in keep.iter().flat_map(|p| &p.entries).filter(|e| e.kind == BlobKind::Tree && used.contains(&e.id)) {
            *tree_copies.entry(e.id).or_default() += 1;
        }
        let repacked: HashSet<BlobId> = repack.iter().flat_map(|p| &p.entries).map(|e| e.id).collect();
        let recopy: Vec<BlobId> =
            tree_copies.into_iter().filter(|(id, n)| *n < 2 && !repacked.contains(id)).map(|(id, _)| id).collect();
        stats.trees_recopied = recopy.len() as u64;
        Ok(PrunePlan {
            used,
            keep,
            repack,
            drop,
            old_indexes: catalog.files.into_keys().collect(),
            unindexed,
            recopy,
            index: lookup,
            stats,
        })
    }

    /// Carries out the plan: sweep old garbage lists, repack, rewrite the index, mark garbage.
    ///
    /// # Errors
    /// Store errors; the repository stays consistent at every step.
    pub fn apply(self, repo: &Repository, opts: &PruneOptions) -> Result<PruneStats> {
        self.apply_with_progress(repo, opts, &NoProgress)
    }

    /// As [`PrunePlan::apply`], reporting the repacking to `progress` (see
    /// [`run_with_progress`]).
    ///
    /// # Errors
    /// As [`PrunePlan::apply`].
    pub fn apply_with_progress(
        mut self,
        repo: &Repository,
        opts: &PruneOptions,
        progress: &dyn Progress,
    ) -> Result<PruneStats> {
        if opts.dry_run {
            return Ok(self.stats);
        }
        repo.ensure_can_delete("prune")?;
        // Repack used blobs of partly used packs into new packs (uploaded before any index
        // stops naming the old ones).
        let mut new_packs = Vec::new();
        if !self.repack.is_empty() || !self.recopy.is_empty() {
            new_packs = self.repack_blobs(repo, progress)?;
        }
        // The garbage list of this run: dropped and repacked packs, plus unindexed packs from
        // interrupted backups (those only become deletable after a further grace period too).
        let mut garbage: Vec<GarbagePack> =
            self.drop.iter().map(|(p, size)| GarbagePack::from_indexed(p, *size)).collect();
        for p in &self.repack {
            let size = p.entries.iter().map(|e| u64::from(e.offset) + u64::from(e.length)).max().unwrap_or(0);
            garbage.push(GarbagePack::from_indexed(p, size));
        }
        for (id, size) in &self.unindexed {
            garbage.push(GarbagePack::unindexed(*id, *size));
        }
        // New index: every kept pack and every new pack, superseding all old index objects.
        let mut all: Vec<IndexedPack> = std::mem::take(&mut self.keep);
        all.extend(new_packs);
        repo.save_index_objects(&self.old_indexes, &all)?;
        let garbage_ids: HashSet<PackId> = garbage.iter().map(|p| p.id).collect();
        for id in self.old_indexes.clone() {
            // A superseded index object object lock still retains stays, and with it every
            // pack it names (the sweep spares whatever an index object names).
            self.delete(repo, &ObjectKey::new(ObjectKind::Index, id.0))?;
        }
        // Mark, then sweep lists older than the grace period by the store's clock.
        let marker = write_garbage(repo, &GarbageList::new(garbage))?;
        let now = store_now(repo, &marker)?;
        self.sweep(repo, opts, now, &marker)?;
        if repo.config().object_lock.is_some() {
            self.extend_retention(repo, &garbage_ids)?;
        }
        Ok(self.stats)
    }

    /// Deletes `key` unless object lock retains it; returns whether it was deleted.
    fn delete(&mut self, repo: &Repository, key: &ObjectKey) -> Result<bool> {
        match repo.delete_unless_held(key)? {
            None => Ok(true),
            Some(until) => {
                self.stats.objects_held += 1;
                self.stats.held_until = self.stats.held_until.max(Some(until));
                Ok(false)
            }
        }
    }

    /// Object lock's maintenance: extends the retention of everything kept (packs and parity
    /// not on this run's garbage list, the index objects now, key files, the config, run
    /// records, archived WAL) that would be released within half the lock's period.
    /// Snapshots are extended by `forget`, which knows which its policy keeps.
    fn extend_retention(&mut self, repo: &Repository, garbage: &HashSet<PackId>) -> Result<()> {
        let old: HashSet<IndexId> = self.old_indexes.iter().copied().collect();
        let mut keys = vec![ObjectKey::CONFIG];
        let kinds = [
            ObjectKind::Pack,
            ObjectKind::Parity,
            ObjectKind::Index,
            ObjectKind::Key,
            ObjectKind::Record,
            ObjectKind::Wal,
        ];
        for kind in kinds {
            for info in repo.store().list(kind).map_err(Error::Storage)? {
                let dropped = match kind {
                    ObjectKind::Pack | ObjectKind::Parity => garbage.contains(&PackId(info.key.id)),
                    ObjectKind::Index => old.contains(&IndexId(info.key.id)),
                    _ => false,
                };
                if !dropped {
                    keys.push(info.key);
                }
            }
        }
        self.stats.retention_extended = repo.extend_retention(&keys)?;
        Ok(())
    }
}

/// Runs prune: plan, then apply.
///
/// # Errors
/// As [`PrunePlan::compute`] and [`PrunePlan::apply`].
pub fn run(repo: &Repository, opts: &PruneOptions) -> Result<PruneStats> {
    run_with_progress(repo, opts, &NoProgress)
}

/// As [`run`], reporting to `progress` what repacking copies: its total (the bytes of the used
/// blobs in the packs to repack, and those packs), the bytes as they are copied, and each
/// pack once its blobs are.
///
/// # Errors
/// As [`run`].
pub fn run_with_progress(repo: &Repository, opts: &PruneOptions, progress: &dyn Progress) -> Result<PruneStats> {
    PrunePlan::compute(repo, opts)?.apply_with_progress(repo, opts, progress)
}

#[cfg(test)]
mod tests;
