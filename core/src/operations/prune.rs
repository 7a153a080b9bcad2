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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;

use crate::format::blob::BlobKind;
use crate::format::garbage::{GarbageList, GarbagePack};
use crate::format::index::{IndexFile, IndexedPack};
use crate::format::pack::PackEntry;
use crate::format::tree::{Node, NodeKind, Tree};
use crate::foundation::error::{Error, Result};
use crate::foundation::id::{BlobId, Digest, IndexId, PackId};
use crate::foundation::progress::{NoProgress, Progress};
use crate::repository::Repository;
use crate::repository::index::Index;
use crate::repository::store::{ObjectKey, ObjectKind};
use crate::repository::trees::{TreeVisitor, TreeWalker};
use crate::repository::writer::WriteOptions;

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

/// How many times marking reads the index objects written since it last read them before it
/// takes a blob no index names for damage rather than a concurrent backup's.
const REFRESHES: u32 = 5;

/// The snapshots to keep blobs for, listed and read before any index object is: FORMAT.md
/// §Write ordering commits a snapshot's index objects before the snapshot, so every snapshot
/// read here is covered by the index objects listed after it. A snapshot forgotten by a
/// concurrent `forget` between the listing and the read is simply gone.
///
/// # Errors
/// A damaged snapshot: prune refuses to run, since it could not know what the snapshot needs.
fn live_snapshot_trees(repo: &Repository) -> Result<Vec<BlobId>> {
    let (ok, damaged) = repo.snapshots_checked()?;
    if let Some((_, e)) = damaged.into_iter().find(|(_, e)| !e.is_missing_object()) {
        return Err(e);
    }
    Ok(ok.into_iter().map(|(_, s)| s.tree).collect())
}

/// The index objects and garbage lists prune reads blobs through, brought up to date when a
/// snapshot committed while prune runs needs what they did not hold yet.
struct Catalog {
    files: BTreeMap<IndexId, IndexFile>,
    lists: BTreeMap<ObjectKey, (jiff::Timestamp, GarbageList)>,
}

impl Catalog {
    fn read(repo: &Repository) -> Result<Self> {
        let files = repo.index_files()?.into_iter().collect();
        let mut catalog = Catalog { files, lists: BTreeMap::new() };
        catalog.read_lists(repo)?;
        Ok(catalog)
    }

    /// Reads the garbage lists not read yet.
    fn read_lists(&mut self, repo: &Repository) -> Result<()> {
        for info in repo.store().list(ObjectKind::Garbage).map_err(Error::Storage)? {
            // A list swept by a concurrent prune since the listing is simply gone.
            if !self.lists.contains_key(&info.key)
                && let Some(list) = read_garbage_if_present(repo, &info.key)?
            {
                self.lists.insert(info.key, (info.last_modified, list));
            }
        }
        Ok(())
    }

    /// Brings the catalog up to the store's present: reads the index objects and garbage lists
    /// written since the last read and forgets those deleted since (a concurrent prune that
    /// supersedes index objects writes their replacement first, and a list it sweeps held only
    /// packs it deleted).
    fn refresh(&mut self, repo: &Repository) -> Result<()> {
        let infos = repo.store().list(ObjectKind::Index).map_err(Error::Storage)?;
        let present: HashSet<IndexId> = infos.iter().map(|i| IndexId(i.key.id)).collect();
        self.files.retain(|id, _| present.contains(id));
        for info in infos {
            let id = IndexId(info.key.id);
            if self.files.contains_key(&id) {
                continue;
            }
            match repo.get_verified(info.key) {
                Ok(data) => {
                    self.files.insert(id, IndexFile::open(repo.master(), &id, &data)?);
                }
                // Superseded and deleted by a concurrent prune since the listing.
                Err(e) if e.is_missing_object() => {}
                Err(e) => return Err(e),
            }
        }
        let lists: HashSet<ObjectKey> =
            repo.store().list(ObjectKind::Garbage).map_err(Error::Storage)?.into_iter().map(|i| i.key).collect();
        self.lists.retain(|key, _| lists.contains(key));
        self.read_lists(repo)
    }

    /// The index of every index object read.
    fn index(&self) -> Index {
        let mut index = Index::default();
        for f in self.files.values() {
            index.add_file(f);
        }
        index.finalize();
        index
    }

    /// The packs on the garbage lists read (out of the index, stored until swept).
    fn listed_packs(&self) -> impl Iterator<Item = IndexedPack> + '_ {
        self.lists.values().flat_map(|(_, l)| l.packs.iter().filter_map(GarbagePack::to_indexed))
    }

    /// `index` plus the blobs only garbage-listed packs hold.
    fn lookup(&self, index: &Index) -> Index {
        with_listed(index, &self.listed_packs().collect::<Vec<_>>())
    }
}

/// Marks every blob below `roots` as used (trees already in `used` are not walked again),
/// reading trees through the index `catalog` holds. A blob no index object read so far names
/// belongs to a snapshot committed after they were read: marking reads the index objects
/// written since and goes on from the trees it could not read, never failing over a race.
///
/// # Errors
/// Unreadable trees; a blob still in no index after [`REFRESHES`] reads: the repository is
/// damaged, and prune refuses to guess what is needed.
fn mark(repo: &Repository, catalog: &mut Catalog, roots: Vec<BlobId>, used: &mut HashSet<BlobId>) -> Result<()> {
    /// Marks what a walk reaches; a tree marked before is not read again, a tree or data blob
    /// the index lacks is put aside.
    struct Mark<'u> {
        used: &'u mut HashSet<BlobId>,
        index: &'u Index,
        trees_missing: Vec<BlobId>,
        data_missing: Vec<BlobId>,
    }
    impl TreeVisitor for Mark<'_> {
        type Output = ();
        fn before(&mut self, id: &BlobId, _: &Path) -> Result<Option<()>> {
            if self.used.contains(id) {
                return Ok(Some(()));
            }
            if !self.index.contains(id) {
                self.trees_missing.push(*id);
                return Ok(Some(()));
            }
            self.used.insert(*id);
            Ok(None)
        }
        fn entry(&mut self, _: &Path, node: &Node) -> Result<bool> {
            if node.kind == NodeKind::File {
                for id in &node.content {
                    if self.used.insert(*id) && !self.index.contains(id) {
                        self.data_missing.push(*id);
                    }
                }
            }
            Ok(true)
        }
        fn after(&mut self, _: &BlobId, _: &Path, _: Tree, _: Vec<Option<()>>) -> Result<()> {
            Ok(())
        }
        fn unreadable(&mut self, id: &BlobId, _: &Path, error: Error) -> Result<()> {
            // In a pack a concurrent prune has swept since the index was read: its blobs are
            // in that prune's new packs, or nothing needs them any more.
            if !error.is_missing_object() {
                return Err(error);
            }
            self.used.remove(id);
            self.trees_missing.push(*id);
            Ok(())
        }
    }
    let mut trees = roots;
    let mut data: Vec<BlobId> = Vec::new();
    for refreshed in 0..=REFRESHES {
        if refreshed > 0 {
            catalog.refresh(repo)?;
        }
        let index = catalog.index();
        let lookup = catalog.lookup(&index);
        drop(index);
        data.retain(|id| !lookup.contains(id));
        let mut visitor = Mark { used, index: &lookup, trees_missing: Vec::new(), data_missing: Vec::new() };
        let walker = TreeWalker::new(repo, &lookup);
        for root in &trees {
            walker.walk(root, Path::new("/"), &mut visitor)?;
        }
        trees = visitor.trees_missing;
        data.extend(visitor.data_missing);
        if trees.is_empty() && data.is_empty() {
            return Ok(());
        }
    }
    let id = trees.first().or(data.first()).copied().unwrap_or_default();
    Err(Error::corrupt(
        format!("blob {id}"),
        "is used by a snapshot but in no index; run `cairn check` and `cairn repair index` before pruning",
    ))
}

/// `index` plus the blobs only garbage-listed packs hold: a blob the index has is always read
/// from the indexed pack (a listed pack may already be swept).
fn with_listed(index: &Index, listed: &[IndexedPack]) -> Index {
    let mut lookup = index.clone();
    for p in listed {
        let only_here: Vec<PackEntry> = p.entries.iter().filter(|e| !index.contains(&e.id)).copied().collect();
        lookup.add_pack(p.id, p.seal, &only_here);
    }
    lookup.finalize();
    lookup
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

    fn repack_blobs(&self, repo: &Repository, progress: &dyn Progress) -> Result<Vec<IndexedPack>> {
        let copied = |e: &PackEntry| self.used.contains(&e.id) && self.index.contains(&e.id);
        let total: u64 =
            self.repack.iter().flat_map(|p| &p.entries).filter(|e| copied(e)).map(|e| u64::from(e.length)).sum();
        progress.total(total, self.repack.len() as u64);
        // Blobs kept in another pack need no copy; the writer skips what this index holds. A
        // tree kept in fewer than two packs is left out of it, so the writer stores what it
        // lacks.
        let mut tree_copies: HashMap<BlobId, u32> = HashMap::new();
        for e in self.keep.iter().flat_map(|p| &p.entries).filter(|e| e.kind == BlobKind::Tree) {
            *tree_copies.entry(e.id).or_default() += 1;
        }
        let mut kept = Index::default();
        for p in &self.keep {
            let entries: Vec<PackEntry> = p
                .entries
                .iter()
                .filter(|e| e.kind != BlobKind::Tree || tree_copies.get(&e.id).copied().unwrap_or(0) >= 2)
                .copied()
                .collect();
            kept.add_pack(p.id, p.seal, &entries);
        }
        kept.finalize();
        let ((), _, packs) = repo.write_packs(&kept, WriteOptions::default(), |writer| {
            for p in &self.repack {
                for e in p.entries.iter().filter(|e| self.used.contains(&e.id)) {
                    let Some(entry) = self.index.get(&e.id) else { continue };
                    // A tree whose first copy fails is read from its other one.
                    let plain = repo.read_blob(&self.index, e.kind, &e.id).map_err(|err| {
                        if err.is_missing_object() { swept_while_running(self.index.pack(entry).id) } else { err }
                    })?;
                    // A tree the kept packs hold once gets one more copy, one they do not hold
                    // gets two: every used tree ends with exactly two, never three.
                    if e.kind == BlobKind::Tree && tree_copies.get(&e.id) == Some(&1) {
                        writer.add_tree_copy(e.id, &plain)?;
                    } else {
                        writer.add_with_id(e.kind, e.id, &plain)?;
                    }
                    progress.bytes_read(u64::from(e.length));
                }
                progress.file_done(
                    Path::new(&format!("pack {}", p.id.short())),
                    p.entries.iter().map(|e| u64::from(e.length)).sum(),
                );
            }
            // The one copy left is read (through the other copies if it fails), then stored
            // once more.
            for id in &self.recopy {
                let plain = repo.read_blob(&self.index, BlobKind::Tree, id)?;
                writer.add_tree_copy(*id, &plain)?;
            }
            Ok(())
        })?;
        Ok(packs)
    }

    /// Deletes the packs of garbage lists older than the grace period, resurrecting any a
    /// snapshot now needs.
    fn sweep(
        &mut self,
        repo: &Repository,
        opts: &PruneOptions,
        now: jiff::Timestamp,
        current: &ObjectKey,
    ) -> Result<()> {
        let grace = jiff::SignedDuration::try_from(opts.grace).unwrap_or(jiff::SignedDuration::MAX);
        let mut resurrect = Vec::new();
        let mut delete_lists = Vec::new();
        let mut deletions: Vec<(PackId, u64)> = Vec::new();
        // Running writers first: a list written after the oldest of them began waits for it
        // (it may have loaded an index naming the list's packs, and reuse them in a snapshot
        // committed after this sweep looked). A writer publishes its marker before it loads
        // the index, so one not listed here loads an index written after these lists.
        let sessions = repo.live_sessions(now)?;
        // Snapshots committed since this prune read them (backups that ran concurrently) may
        // need blobs in the packs about to go: walk them too, through the index as it is now
        // (listed after the snapshots, refreshed if they need more) and the listed packs.
        let fresh: Vec<BlobId> =
            live_snapshot_trees(repo)?.into_iter().filter(|tree| !self.used.contains(tree)).collect();
        let mut catalog = Catalog::read(repo)?;
        mark(repo, &mut catalog, fresh, &mut self.used)?;
        // Blobs needed now, rechecked against what the index holds now. A pack on any list,
        // this run's too, that a snapshot committed meanwhile needs is indexed again at once:
        // that snapshot must restore now, not only after a later prune (FORMAT.md §15).
        let current_index = catalog.index();
        let mut taken_back = HashSet::new();
        for (key, (at, list)) in &catalog.lists {
            let aged = key != current && now.duration_since(*at) >= grace;
            let held = aged && sessions.oldest_start.is_some_and(|start| *at >= start);
            self.stats.lists_held += u64::from(held);
            let due = aged && !held;
            for gp in &list.packs {
                let needed = gp
                    .to_indexed()
                    .filter(|p| p.entries.iter().any(|e| self.used.contains(&e.id) && !current_index.contains(&e.id)));
                match needed {
                    Some(p) if taken_back.insert(p.id) => resurrect.push(p),
                    Some(_) => {}
                    None if due => deletions.push((gp.id, gp.size)),
                    None => {}
                }
            }
            if due {
                delete_lists.push(*key);
            }
        }
        if !resurrect.is_empty() {
            self.stats.packs_resurrected += resurrect.len() as u64;
            let keep: HashSet<PackId> = resurrect.iter().map(|p| p.id).collect();
            deletions.retain(|(id, _)| !keep.contains(id));
            repo.save_index(&IndexFile { supersedes: vec![], packs: resurrect })?;
        }
        let mut spared: HashSet<PackId> = current_index.packs().iter().map(|p| p.id).collect();
        // A pack also on a list that is not due (this run's, a young one, one held for a
        // running writer) waits for that list: prunes list the same pack again when a snapshot
        // took it back and was forgotten since.
        for (key, (_, list)) in &catalog.lists {
            if !delete_lists.contains(key) {
                spared.extend(list.packs.iter().map(|p| p.id));
            }
        }
        let mut seen = HashSet::new();
        for (id, size) in deletions {
            if spared.contains(&id) || !seen.insert(id) {
                continue; // indexed again (e.g. the same bytes uploaded by a later backup)
            }
            if self.delete(repo, &ObjectKey::new(ObjectKind::Pack, id.0))? {
                self.stats.packs_deleted += 1;
                self.stats.bytes_freed += size;
            } else {
                // Still stored: its parity stays with it.
                seen.remove(&id);
            }
        }
        if repo.config().data_parity > 0 {
            self.sweep_parity(repo, now, grace, &seen)?;
        }
        for key in delete_lists {
            self.delete(repo, &key)?;
        }
        for key in sessions.stale {
            self.delete(repo, &key)?;
            self.stats.sessions_stale += 1;
        }
        Ok(())
    }
}

impl PrunePlan {
    /// Deletes the parity of the packs just deleted, and parity objects older than the grace
    /// period whose pack is not stored (a backup stores a pack's parity just before the pack).
    fn sweep_parity(
        &mut self,
        repo: &Repository,
        now: jiff::Timestamp,
        grace: jiff::SignedDuration,
        deleted: &HashSet<PackId>,
    ) -> Result<()> {
        let stored: HashSet<Digest> =
            repo.store().list(ObjectKind::Pack).map_err(Error::Storage)?.into_iter().map(|i| i.key.id).collect();
        for info in repo.store().list(ObjectKind::Parity).map_err(Error::Storage)? {
            let orphan = !stored.contains(&info.key.id) && now.duration_since(info.last_modified) >= grace;
            if (deleted.contains(&PackId(info.key.id)) || orphan) && self.delete(repo, &info.key)? {
                self.stats.parity_deleted += 1;
            }
        }
        Ok(())
    }
}

/// The error of a prune that meant to repack a pack another prune swept meanwhile.
fn swept_while_running(id: PackId) -> Error {
    Error::Conflict {
        object: format!("pack {id}"),
        reason: "was removed while this prune ran (by a concurrent prune); nothing was committed, run it again".into(),
    }
}

fn write_garbage(repo: &Repository, list: &GarbageList) -> Result<ObjectKey> {
    let sealed = list.seal(repo.master());
    let key = ObjectKey::new(ObjectKind::Garbage, Digest::of(&sealed));
    repo.store().put(&key, Bytes::from(sealed)).map_err(Error::store(key))?;
    Ok(key)
}

/// Reads a garbage list; `None` when it is gone (swept by a concurrent prune since the listing).
fn read_garbage_if_present(repo: &Repository, key: &ObjectKey) -> Result<Option<GarbageList>> {
    match repo.get_verified(*key) {
        Ok(data) => GarbageList::open(repo.master(), key, &data).map(Some),
        Err(e) if e.is_missing_object() => Ok(None),
        Err(e) => Err(e),
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
mod tests {

    use super::*;
    use crate::format::blob::BlobKind;
    use crate::format::tree::Time;

    fn repo(name: &str) -> Repository {
        crate::repository::testing::memory_repo(name)
    }

    fn node(name: &str, kind: NodeKind, content: Vec<BlobId>, subtree: Option<BlobId>) -> Node {
        Node {
            name: name.as_bytes().to_vec(),
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: Time::default(),
            atime: Time::default(),
            ctime: Time::default(),
            inode: 0,
            dev: 0,
            nlink: 1,
            size: 0,
            rdev: 0,
            content,
            hash: None,
            subtree,
            target: None,
            link: None,
            xattrs: vec![],
            flags: 0,
            subdirs: Vec::new(),
        }
    }

    /// Writes `/dir/file` (one data blob) the way a backup does, index objects included;
    /// returns the root tree, the directory's tree and the data blob.
    fn write_tree(repo: &Repository, data: &[u8]) -> [BlobId; 3] {
        let index = repo.load_index().unwrap();
        let (ids, _, _) = repo
            .write_blobs(&index, WriteOptions::default(), |w| {
                let blob = w.add(BlobKind::Data, data)?;
                let dir =
                    w.add(BlobKind::Tree, &Tree::new(vec![node("file", NodeKind::File, vec![blob], None)]).encode())?;
                let root =
                    w.add(BlobKind::Tree, &Tree::new(vec![node("dir", NodeKind::Dir, vec![], Some(dir))]).encode())?;
                Ok([root, dir, blob])
            })
            .unwrap();
        ids
    }

    #[test]
    fn marking_reads_the_index_objects_a_later_snapshot_was_committed_with() {
        let repo = repo("prune-mark-refresh");
        let early = write_tree(&repo, b"before the prune read the index");
        let mut catalog = Catalog::read(&repo).unwrap();
        // A backup commits after the prune read the index: its trees are in no object read.
        let late = write_tree(&repo, b"committed while the prune ran");
        assert!(!catalog.index().contains(&late[0]));
        let mut used = HashSet::new();
        mark(&repo, &mut catalog, vec![early[0], late[0]], &mut used).unwrap();
        let want: HashSet<BlobId> = early.iter().chain(&late).copied().collect();
        assert_eq!(used, want);
    }

    #[test]
    fn a_blob_in_no_index_after_refreshing_is_damage() {
        let repo = repo("prune-mark-missing");
        let root = write_tree(&repo, b"stored")[0];
        let gone = repo.master().blob_id(b"a tree never stored");
        let mut catalog = Catalog::read(&repo).unwrap();
        let err = mark(&repo, &mut catalog, vec![root, gone], &mut HashSet::new()).unwrap_err();
        assert!(
            err.to_string().contains(&format!("blob {gone} is damaged: is used by a snapshot but in no index")),
            "{err}"
        );
    }

    /// A backup that commits after prune listed the snapshots (its packs look unused and are
    /// dropped from the index) restores as soon as the prune is done: the sweep walks the
    /// snapshots committed meanwhile and indexes what they need again, from this run's own
    /// garbage list too.
    #[test]
    fn a_snapshot_committed_while_prune_runs_is_indexed_when_it_ends() {
        let repo = repo("prune-commit-during");
        let ids = write_tree(&repo, b"uploaded by a backup still running");
        let opts = PruneOptions { grace: Duration::ZERO, ..Default::default() };
        let plan = PrunePlan::compute(&repo, &opts).unwrap();
        assert_eq!(plan.drop.len(), 3, "no snapshot yet: the data pack and both tree packs look unused");
        // The backup commits now, bypassing its own checks (as if they ran before the prune
        // rewrote the index).
        let bytes = crate::repository::testing::snapshot_of(ids[0]).seal(repo.master());
        let key = ObjectKey::new(ObjectKind::Snapshot, crate::foundation::id::Digest::of(&bytes));
        repo.store().put(&key, bytes.into()).unwrap();
        plan.apply(&repo, &opts).unwrap();
        let index = repo.load_index().unwrap();
        for id in ids {
            let entry = index.get(&id).expect("indexed again when the prune ended");
            repo.read_entry(&index, entry).expect("and still stored");
        }
    }

    /// Prune keeps both packs of a tree it needs (trees are stored twice), and drops a tree's
    /// two packs together once no snapshot needs it.
    #[test]
    fn both_copies_of_a_used_tree_are_kept() {
        let repo = repo("prune-tree-copies");
        let ids = write_tree(&repo, b"kept");
        let bytes = crate::repository::testing::snapshot_of(ids[0]).seal(repo.master());
        let key = ObjectKey::new(ObjectKind::Snapshot, crate::foundation::id::Digest::of(&bytes));
        repo.store().put(&key, bytes.into()).unwrap();
        let opts = PruneOptions { grace: Duration::ZERO, ..Default::default() };
        let stats = run(&repo, &opts).unwrap();
        assert_eq!((stats.packs_marked, stats.packs_kept), (0, 3), "{stats:?}");
        let index = repo.load_index().unwrap();
        for tree in &ids[..2] {
            assert_eq!(index.alternates(tree).len(), 1, "both copies are still indexed");
        }
        repo.store().delete(&key).unwrap();
        let stats = run(&repo, &opts).unwrap();
        assert_eq!(stats.packs_marked, 3, "{stats:?}");
    }

    /// A tree left with one copy (one of its packs lost, say after a damaged pack was removed)
    /// is written once more by the next prune, read from the copy left; the index then names
    /// two readable copies again, and a second prune has nothing more to copy.
    #[test]
    fn a_tree_left_with_one_copy_gets_its_second_back() {
        let repo = repo("prune-recopy");
        let ids = write_tree(&repo, b"two trees, one pack of them lost");
        let bytes = crate::repository::testing::snapshot_of(ids[0]).seal(repo.master());
        let key = ObjectKey::new(ObjectKind::Snapshot, crate::foundation::id::Digest::of(&bytes));
        repo.store().put(&key, bytes.into()).unwrap();
        let index = repo.load_index().unwrap();
        let lost = index.pack(index.get(&ids[0]).unwrap()).id;
        repo.store().delete(&ObjectKey::new(ObjectKind::Pack, lost.0)).unwrap();
        let opts = PruneOptions { grace: Duration::ZERO, ..Default::default() };
        let stats = run(&repo, &opts).unwrap();
        assert_eq!(stats.trees_recopied, 2, "{stats:?}");
        let index = repo.load_index().unwrap();
        for tree in &ids[..2] {
            let copies: Vec<crate::repository::index::IndexEntry> =
                index.get(tree).into_iter().chain(index.alternates(tree)).copied().collect();
            assert_eq!(copies.len(), 2, "two copies again");
            assert!(copies.iter().all(|e| index.pack(e).id != lost));
            for e in copies {
                repo.read_entry(&index, &e).expect("each copy reads");
            }
        }
        assert_eq!(run(&repo, &opts).unwrap().trees_recopied, 0);
    }

    /// A used tree whose first copy is damaged, in a pack being repacked, is repacked from its
    /// second copy: prune does not stall on damage the repository can absorb.
    #[test]
    fn a_repacked_tree_with_a_damaged_first_copy_is_read_from_its_second() {
        let repo = repo("prune-repack-damaged");
        let index = repo.load_index().unwrap();
        let (roots, _, _) = repo
            .write_blobs(&index, WriteOptions::default(), |w| {
                let mut roots = Vec::new();
                for name in ["kept", "forgotten"] {
                    let blob = w.add(BlobKind::Data, name.as_bytes())?;
                    let file = node("file", NodeKind::File, vec![blob], None);
                    roots.push(w.add(BlobKind::Tree, &Tree::new(vec![file]).encode())?);
                }
                Ok(roots)
            })
            .unwrap();
        let bytes = crate::repository::testing::snapshot_of(roots[0]).seal(repo.master());
        let key = ObjectKey::new(ObjectKind::Snapshot, crate::foundation::id::Digest::of(&bytes));
        repo.store().put(&key, bytes.into()).unwrap();
        let index = repo.load_index().unwrap();
        let first = *index.get(&roots[0]).unwrap();
        let pack = ObjectKey::new(ObjectKind::Pack, index.pack(&first).id.0);
        let mut damaged = repo.store().get(&pack).unwrap().to_vec();
        damaged[first.offset as usize + 1] ^= 1;
        repo.store().replace(&pack, damaged.into()).unwrap();
        assert!(repo.read_entry(&index, &first).is_err(), "the first copy is damaged");
        let opts = PruneOptions { grace: Duration::ZERO, max_unused: 0.0, ..Default::default() };
        let stats = run(&repo, &opts).unwrap();
        assert!(stats.packs_repacked >= 2, "both tree packs are half unused: {stats:?}");
        let index = repo.load_index().unwrap();
        let copies: Vec<crate::repository::index::IndexEntry> =
            index.get(&roots[0]).into_iter().chain(index.alternates(&roots[0])).copied().collect();
        assert_eq!(copies.len(), 2, "two copies again");
        for e in copies {
            repo.read_entry(&index, &e).expect("each copy reads");
        }
    }
}
