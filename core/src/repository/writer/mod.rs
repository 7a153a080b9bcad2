//! The one way blobs enter a repository: deduplicate → seal (compress, encrypt) → pack →
//! upload → index. Backup, prune's repacking, `copy` and `repair` all write through it.
//!
//! ```text
//! callers' threads ── add(kind, id, plain): known? in flight? ── new ─▶ compress, take a
//!                       place in an open pack (its own salt and key), seal under its key ─┐
//!                                                                            ▼ bounded (BLOB_QUEUE)
//!                          packer (data and tree packs apart; a pack is closed once every
//!                                  blob given a place in it has arrived)
//!                                                                            ▼ rendezvous
//!                          finisher (lays a closed pack out, shuffled, seals its header, names it)
//!                                                                            ▼ bounded (PACK_QUEUE)
//!                                   uploaders (U puts in flight) ─▶ index checkpoints every 32 packs
//! ```
//!
//! Laying a pack out copies its blobs together and hashes the whole (about 8 ms for 16 MiB
//! here). On the packer's thread that held up every caller behind a full blob queue meanwhile,
//! leaving a core idle: on its own thread, the tree's first backup took 4.3 % less time and
//! 1 GiB of media into memory 10 % less (`farm-bench -n 8`, paired against the packer doing it).
//!
//! [`Repository::write_blobs`] runs the packer and the uploaders beside a caller's closure,
//! which adds blobs through a [`BlobWriter`] from as many threads as it likes (the writer is
//! `Sync`). Deduplication is checked once, before sealing, against the committed index the
//! caller gives and the set of blobs this writer has in flight, so no blob is stored twice.
//! Sealing runs on the caller's thread, so callers that add from a thread pool seal in
//! parallel; packing and uploading overlap with them.
//!
//! Ordering (FORMAT.md §Read and write ordering) is in the types: a pack is uploaded before an
//! index object names it, and [`Repository::write_blobs`] returns an [`IndexCommitted`] only
//! once the index objects naming every pack it uploaded are stored, and every pack it
//! deduplicated against is still stored and indexed. [`Repository::save_snapshot`] takes that
//! token, so a snapshot cannot be written before what it references is committed.
//!
//! Memory is bounded by the queues: at most `BLOB_QUEUE` sealed blobs, the packs being built,
//! one closed pack at the finisher, `PACK_QUEUE + U` packs in flight and two spare pack buffers
//! (one uploaded pack's buffer waiting while the finisher fills the other).

mod packer;
mod upload;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use crossbeam_channel::{Sender, bounded};

use crate::format::blob::{self, BlobKind, MAX_BLOB_LEN};
use crate::format::index::{IndexFile, IndexedPack};
use crate::format::pack::FinishedPack;
use crate::format::snapshot::Snapshot;
use crate::foundation::error::{Error, Result};
use crate::foundation::id::{BlobId, IndexId, ObjectKey, ObjectKind, PackId, SnapshotId};
use crate::repository::Repository;
use crate::repository::index::Index;
use packer::{Allocator, ClosedPack, Lane, Placed};

/// Sealed blobs between the callers and the packer (each at most a maximal chunk).
const BLOB_QUEUE: usize = 8;
/// Finished packs waiting for an uploader, besides those uploading.
const PACK_QUEUE: usize = 0;
/// Uploads in flight by default: enough to hide a remote store's latency; a local disk takes a
/// pack several times faster than the packer makes one, and every pack in flight is a pack's
/// worth of memory.
const UPLOADERS_REMOTE: usize = 4;
const UPLOADERS_LOCAL: usize = 1;
/// Packs per index checkpoint, so an interrupted backup leaves its uploads reusable.
pub const CHECKPOINT_PACKS: usize = 32;

/// How a writer works.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct WriteOptions {
    /// Pack uploads in flight (0 = the default: 4 to a remote store, 1 to a local one).
    pub uploads: usize,
}

impl WriteOptions {
    /// The defaults, with `uploads` pack uploads in flight (0 = the default for the store).
    #[must_use]
    pub fn with_uploads(uploads: usize) -> Self {
        WriteOptions { uploads }
    }
}

/// What a writer stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteStats {
    /// Blobs stored that the repository did not have.
    pub blobs_new: u64,
    /// Plaintext bytes of those blobs.
    pub bytes_new: u64,
    /// Packs uploaded.
    pub packs_uploaded: u64,
    /// Bytes of the packs uploaded.
    pub bytes_uploaded: u64,
}

/// Proof that the index objects naming every blob a writer stored are in the repository, and
/// that every pack it reused is still stored and indexed: what a snapshot needs before it may
/// be saved ([`Repository::save_snapshot`]). Only [`Repository::write_blobs`] makes one.
#[must_use = "a snapshot needs it: pass it to Repository::save_snapshot"]
#[derive(Debug)]
pub struct IndexCommitted {
    /// The index objects this writer stored (checkpoints and the last one).
    indexes: Vec<IndexId>,
    /// What a snapshot of this writer needs indexed, checked again once it is written.
    deps: Dependencies,
}

/// The packs a writer's outcome depends on, and the index objects it took them from.
#[derive(Debug, Clone, Default)]
struct Dependencies {
    /// Index objects the writer's committed index was loaded from, and those it wrote.
    indexes: Vec<IndexId>,
    /// Packs it uploaded, with their entries.
    uploaded: Vec<IndexedPack>,
    /// Packs of the committed index holding blobs it reused instead of storing.
    reused: Vec<PackId>,
}

impl IndexCommitted {
    /// The index objects the writer stored.
    #[must_use]
    pub fn index_objects(&self) -> &[IndexId] {
        &self.indexes
    }
}

/// Who writes the index objects naming the uploaded packs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Indexing {
    /// The writer: checkpoints while it runs, the rest at the end, then the dependency check.
    Writer,
    /// The caller (prune, which replaces the whole index): the packs are handed back.
    Caller,
}

/// State shared by the callers' threads, the packer and the uploaders.
struct Shared<'r> {
    repo: &'r Repository,
    /// The committed index: a blob in it is not stored again.
    index: &'r Index,
    /// Blobs this writer has taken on (sealed, packed or uploaded).
    pending: Mutex<HashSet<BlobId>>,
    allocator: Mutex<Allocator>,
    level: i32,
    /// Pad blobs (format version 2 with padding on).
    pad: bool,
    indexing: Indexing,
    /// Packs of `index` (by number) holding blobs a caller reused instead of storing.
    reused: Vec<AtomicBool>,
    /// Set on the first failure; every stage winds down and the caller's `add`s fail.
    failed: AtomicBool,
    fatal: Mutex<Option<Error>>,
    blobs_new: AtomicU64,
    bytes_new: AtomicU64,
    packs_uploaded: AtomicU64,
    bytes_uploaded: AtomicU64,
    /// Every pack uploaded, with its entries.
    uploaded: Mutex<Vec<IndexedPack>>,
    /// Packs uploaded and not yet named by an index object of this writer.
    unindexed: Mutex<Vec<IndexedPack>>,
    /// Index objects this writer stored.
    own_indexes: Mutex<Vec<IndexId>>,
}

fn lock<T>(m: &Mutex<T>) -> Result<MutexGuard<'_, T>> {
    m.lock().map_err(|_| Error::Internal("a writer thread panicked".into()))
}

/// Adds blobs to a repository; handed to the closure of [`Repository::write_blobs`]. `Sync`:
/// any number of threads may add at once.
pub struct BlobWriter<'s, 'r> {
    shared: &'s Shared<'r>,
    blobs: Sender<Placed>,
}

impl BlobWriter<'_, '_> {
    /// Whether the committed index has the blob. If it does, the pack holding it is recorded
    /// as one the writer's outcome depends on (checked before [`IndexCommitted`] is given).
    #[must_use]
    pub fn known(&self, id: &BlobId) -> bool {
        match self.shared.index.get(id) {
            Some(e) => {
                if let Some(flag) = self.shared.reused.get(e.pack() as usize) {
                    flag.store(true, Ordering::Relaxed);
                }
                true
            }
            None => false,
        }
    }

    /// Whether the repository has the blob or this writer has taken it on.
    #[must_use]
    pub fn has(&self, id: &BlobId) -> bool {
        self.known(id) || self.shared.pending.lock().is_ok_and(|p| p.contains(id))
    }

    /// Stores `plain` as a blob of `kind` unless the repository or this writer has it; returns
    /// its id.
    ///
    /// # Errors
    /// As [`BlobWriter::add_with_id`].
    pub fn add(&self, kind: BlobKind, plain: &[u8]) -> Result<BlobId> {
        let id = self.shared.repo.master().blob_id(plain);
        self.add_with_id(kind, id, plain)?;
        Ok(id)
    }

    /// Stores `plain`, whose id the caller computed, unless the repository or this writer has
    /// it. Returns whether it was new. Seals on the calling thread.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a blob over the format's size limit; an error once the
    /// writer has failed (an upload failed: [`Repository::write_blobs`] returns why).
    pub fn add_with_id(&self, kind: BlobKind, id: BlobId, plain: &[u8]) -> Result<bool> {
        if self.shared.failed.load(Ordering::Relaxed) {
            return Err(aborted());
        }
        if plain.len() > MAX_BLOB_LEN as usize {
            return Err(Error::InvalidArgument(format!(
                "a blob of {} bytes is over the {MAX_BLOB_LEN}-byte limit of the format",
                plain.len()
            )));
        }
        if self.known(&id) || !lock(&self.shared.pending)?.insert(id) {
            return Ok(false);
        }
        let prepared = blob::prepare(plain, self.shared.level, self.shared.pad);
        let target = self.shared.repo.config().pack_size as usize;
        // A tree is stored twice, in two packs (FORMAT.md §10): what every restore of the
        // directories below it depends on survives one damaged pack.
        let lanes: &[Lane] = match kind {
            BlobKind::Data => &[Lane::Data],
            BlobKind::Tree => &[Lane::Tree, Lane::TreeCopy],
        };
        for &lane in lanes {
            let slot = lock(&self.shared.allocator)?.reserve(self.shared.repo, lane, prepared.sealed_len(), target);
            let sealed = blob::seal_prepared(&slot.key, kind, id, &prepared);
            self.blobs.send(Placed { slot, blob: sealed }).map_err(|_| aborted())?;
        }
        self.shared.blobs_new.fetch_add(1, Ordering::Relaxed);
        self.shared.bytes_new.fetch_add(plain.len() as u64, Ordering::Relaxed);
        Ok(true)
    }

    /// Stores one more copy of a tree the repository holds only once (prune, after a pack of
    /// it was lost), in a pack of trees' second copies.
    ///
    /// # Errors
    /// As [`BlobWriter::add_with_id`].
    pub fn add_tree_copy(&self, id: BlobId, plain: &[u8]) -> Result<()> {
        if self.shared.failed.load(Ordering::Relaxed) {
            return Err(aborted());
        }
        if !lock(&self.shared.pending)?.insert(id) {
            return Ok(());
        }
        let prepared = blob::prepare(plain, self.shared.level, self.shared.pad);
        let target = self.shared.repo.config().pack_size as usize;
        let slot =
            lock(&self.shared.allocator)?.reserve(self.shared.repo, Lane::TreeCopy, prepared.sealed_len(), target);
        let sealed = blob::seal_prepared(&slot.key, BlobKind::Tree, id, &prepared);
        self.blobs.send(Placed { slot, blob: sealed }).map_err(|_| aborted())?;
        self.shared.blobs_new.fetch_add(1, Ordering::Relaxed);
        self.shared.bytes_new.fetch_add(plain.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Whether the writer has failed (an upload failed); work adding blobs may stop.
    #[must_use]
    pub fn failed(&self) -> bool {
        self.shared.failed.load(Ordering::Relaxed)
    }
}

fn aborted() -> Error {
    Error::Internal("the blob writer stopped after an earlier failure".into())
}

impl Shared<'_> {
    fn fail(&self, e: Error) {
        if let Ok(mut f) = self.fatal.lock() {
            f.get_or_insert(e);
        }
        self.failed.store(true, Ordering::SeqCst);
    }

    fn stats(&self) -> WriteStats {
        WriteStats {
            blobs_new: self.blobs_new.load(Ordering::Relaxed),
            bytes_new: self.bytes_new.load(Ordering::Relaxed),
            packs_uploaded: self.packs_uploaded.load(Ordering::Relaxed),
            bytes_uploaded: self.bytes_uploaded.load(Ordering::Relaxed),
        }
    }

    /// What this writer's outcome depends on.
    fn dependencies(&self) -> Result<Dependencies> {
        let reused = self
            .index
            .packs()
            .iter()
            .zip(&self.reused)
            .filter(|(_, used)| used.load(Ordering::Relaxed))
            .map(|(p, _)| p.id)
            .collect();
        let mut indexes = self.index.loaded_from().to_vec();
        indexes.extend(lock(&self.own_indexes)?.iter().copied());
        Ok(Dependencies { indexes, uploaded: lock(&self.uploaded)?.clone(), reused })
    }
}

/// Fails if a pack `deps` names has gone (swept by a concurrent prune since the index was
/// loaded): a snapshot would reference missing data. A pack a concurrent prune only took out
/// of the index (no snapshot used it when it looked; it is on a garbage list) is named in an
/// index object again, whose id is added to `deps.indexes`.
///
/// With `committed` (the check after the snapshot is written) the packs are listed only if the
/// index objects changed since the check before: a sweep deletes no pack an index object names,
/// so while those `deps.indexes` name stand, listing every pack again would find nothing.
fn ensure_indexed(repo: &Repository, deps: &mut Dependencies, committed: bool) -> Result<()> {
    let now = repo.index_ids()?;
    if committed && deps.indexes.iter().all(|id| now.contains(id)) {
        return Ok(());
    }
    let sizes: HashMap<PackId, u64> = repo
        .store()
        .list(ObjectKind::Pack)
        .map_err(Error::Storage)?
        .into_iter()
        .map(|i| (PackId(i.key.id), i.size))
        .collect();
    for id in deps.reused.iter().chain(deps.uploaded.iter().map(|p| &p.id)) {
        if !sizes.contains_key(id) {
            return Err(removed_while_running(*id));
        }
    }
    if deps.indexes.iter().all(|id| now.contains(id)) {
        return Ok(()); // no prune rewrote the index meanwhile
    }
    let current = repo.load_index()?;
    let mut again: Vec<IndexedPack> =
        deps.uploaded.iter().filter(|p| p.entries.iter().any(|e| !current.contains(&e.id))).cloned().collect();
    let current_packs: HashSet<PackId> = current.packs().iter().map(|p| p.id).collect();
    // A reused pack's full entry list comes from its own header (the loaded index keeps one
    // entry per blob, so it may lack duplicates the pack also holds).
    for id in &deps.reused {
        if current_packs.contains(id) {
            continue;
        }
        let size = *sizes.get(id).ok_or_else(|| removed_while_running(*id))?;
        let (seal, entries) = match repo.read_pack_header(id, size) {
            Ok(h) => h,
            Err(e) if e.is_missing_object() => return Err(removed_while_running(*id)),
            Err(e) => return Err(e),
        };
        again.push(IndexedPack { id: *id, seal, entries });
    }
    deps.indexes = current.loaded_from().to_vec();
    if !again.is_empty() {
        deps.indexes.push(repo.save_index(&IndexFile { supersedes: vec![], packs: again })?);
    }
    Ok(())
}

/// The error of a writer that depends on a pack a concurrent prune swept.
fn removed_while_running(id: PackId) -> Error {
    Error::Conflict {
        object: format!("pack {id}"),
        reason: "was removed while this backup ran (by a concurrent prune); no snapshot was written, run it again"
            .into(),
    }
}

impl Repository {
    /// Runs `work` with a [`BlobWriter`] for this repository while a packer and uploaders run
    /// beside it, then names every uploaded pack in index objects and checks that every pack
    /// the work deduplicated against (in `index`, the committed index it loaded with
    /// [`Repository::load_index`]) is still stored and indexed. Returns what `work` returned, what was written, and the token a
    /// snapshot needs.
    ///
    /// The packs uploaded are named in an index object even when `work` or an upload failed,
    /// so a later run reuses them instead of uploading them again (no snapshot refers to them).
    ///
    /// # Errors
    /// The first upload or index error; otherwise `work`'s error; then a pack removed by a
    /// concurrent prune.
    pub fn write_blobs<T>(
        &self,
        index: &Index,
        opts: WriteOptions,
        work: impl FnOnce(&BlobWriter<'_, '_>) -> Result<T>,
    ) -> Result<(T, WriteStats, IndexCommitted)> {
        let shared = self.shared(index, Indexing::Writer);
        let result = run_writer(&shared, opts, work);
        // Even after a failure: the next run reuses what was uploaded.
        let indexed = shared.index_the_rest();
        if let Some(e) = lock(&shared.fatal)?.take() {
            return Err(e);
        }
        let value = result?;
        indexed?;
        let mut deps = shared.dependencies()?;
        ensure_indexed(self, &mut deps, false)?;
        let indexes = lock(&shared.own_indexes)?.clone();
        Ok((value, shared.stats(), IndexCommitted { indexes, deps }))
    }

    /// As [`Repository::write_blobs`], for a caller that writes the index itself (prune, which
    /// replaces the whole index): no index object is written, and the uploaded packs are
    /// returned with their entries.
    ///
    /// # Errors
    /// The first upload error; otherwise `work`'s error.
    pub fn write_packs<T>(
        &self,
        index: &Index,
        opts: WriteOptions,
        work: impl FnOnce(&BlobWriter<'_, '_>) -> Result<T>,
    ) -> Result<(T, WriteStats, Vec<IndexedPack>)> {
        let shared = self.shared(index, Indexing::Caller);
        let result = run_writer(&shared, opts, work);
        if let Some(e) = lock(&shared.fatal)?.take() {
            return Err(e);
        }
        let value = result?;
        let packs = std::mem::take(&mut *lock(&shared.uploaded)?);
        Ok((value, shared.stats(), packs))
    }

    /// Stores a snapshot: the commit point of a backup. `committed` proves the index objects
    /// naming what the snapshot references were stored first ([`Repository::write_blobs`]).
    ///
    /// Then checks once more that what the snapshot needs is indexed: a prune that listed the
    /// snapshots before this one existed, and rewrote the index after the writer's own check,
    /// took the packs this snapshot needs out of the index (they stay stored, on its garbage
    /// list, for the grace period); they are named in an index object again, so the snapshot
    /// restores at once, not only after a later prune takes them back (FORMAT.md §15).
    ///
    /// # Errors
    /// Store errors; a pack the snapshot needs that was deleted meanwhile (the snapshot is
    /// written then: the error says so).
    pub fn save_snapshot(&self, snapshot: &Snapshot, committed: &IndexCommitted) -> Result<SnapshotId> {
        let bytes = snapshot.store(self.master(), self.config().version);
        let id = SnapshotId(crate::foundation::id::Digest::of(&bytes));
        let key = ObjectKey::new(ObjectKind::Snapshot, id.0);
        self.store().put(&key, bytes::Bytes::from(bytes)).map_err(Error::store(key))?;
        let mut deps = committed.deps.clone();
        ensure_indexed(self, &mut deps, true).map_err(|e| match e {
            Error::Conflict { object, .. } => Error::Corrupt {
                object: format!("snapshot {id}"),
                reason: format!("written, but {object} it needs was deleted meanwhile by a prune; run `cairn check`"),
            },
            e => e,
        })?;
        Ok(id)
    }

    fn shared<'r>(&'r self, index: &'r Index, indexing: Indexing) -> Shared<'r> {
        Shared {
            repo: self,
            index,
            pending: Mutex::new(HashSet::new()),
            allocator: Mutex::new(Allocator::default()),
            level: self.config().compression,
            pad: self.config().padding,
            indexing,
            reused: (0..index.packs().len()).map(|_| AtomicBool::new(false)).collect(),
            failed: AtomicBool::new(false),
            fatal: Mutex::new(None),
            blobs_new: AtomicU64::new(0),
            bytes_new: AtomicU64::new(0),
            packs_uploaded: AtomicU64::new(0),
            bytes_uploaded: AtomicU64::new(0),
            uploaded: Mutex::new(Vec::new()),
            unindexed: Mutex::new(Vec::new()),
            own_indexes: Mutex::new(Vec::new()),
        }
    }
}

/// Runs the packer and uploaders beside `work`, until `work` is done and every sealed blob is
/// uploaded (or the writer failed).
fn run_writer<T>(
    shared: &Shared<'_>,
    opts: WriteOptions,
    work: impl FnOnce(&BlobWriter<'_, '_>) -> Result<T>,
) -> Result<T> {
    let uploaders = match opts.uploads {
        0 if shared.repo.store().is_remote() => UPLOADERS_REMOTE,
        0 => UPLOADERS_LOCAL,
        n => n,
    };
    std::thread::scope(|scope| {
        let (blob_tx, blob_rx) = bounded::<Placed>(BLOB_QUEUE);
        // A rendezvous: the packer hands a closed pack over only once the finisher is free, so
        // no more than one closed pack waits.
        let (closed_tx, closed_rx) = bounded::<ClosedPack>(0);
        let (pack_tx, pack_rx) = bounded::<FinishedPack>(PACK_QUEUE);
        let (spare_tx, spare_rx) = bounded::<Vec<u8>>(2);
        scope.spawn(move || shared.packer(&blob_rx, &closed_tx));
        scope.spawn(move || shared.finisher(&closed_rx, &pack_tx, &spare_rx));
        for _ in 0..uploaders {
            let (packs, spare) = (pack_rx.clone(), spare_tx.clone());
            scope.spawn(move || shared.uploader(&packs, &spare));
        }
        drop((pack_rx, spare_tx));
        let writer = BlobWriter { shared, blobs: blob_tx };
        let result = work(&writer);
        if result.is_err() {
            // Nothing more is worth uploading; what is uploaded already gets indexed.
            shared.failed.store(true, Ordering::SeqCst);
        }
        // Closing the blob queue lets the packer finish its packs, then the uploaders end.
        drop(writer);
        result
    })
}

#[cfg(test)]
mod tests;
