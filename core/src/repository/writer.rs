//! The one way blobs enter a repository: deduplicate → seal (compress, encrypt) → pack →
//! upload → index. Backup, prune's repacking, `copy` and `repair` all write through it.
//!
//! ```text
//! callers' threads ── add(kind, id, plain): known? in flight? ── new ─▶ compress, take a
//!                       place in an open pack (its own salt and key), seal under its key ─┐
//!                                                                            ▼ bounded (BLOB_QUEUE)
//!                          packer (data and tree packs apart; a pack is laid out, shuffled,
//!                                  once every blob given a place in it has arrived)
//!                                                                            ▼ bounded (PACK_QUEUE)
//!                                   uploaders (U puts in flight) ─▶ index checkpoints every 32 packs
//! ```
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
//! `PACK_QUEUE + U` packs in flight and one spare pack buffer.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crossbeam_channel::{Receiver, Sender, bounded};

use crate::format::blob::{self, BlobKind, MAX_BLOB_LEN, SealedBlob};
use crate::format::index::{IndexFile, IndexedPack};
use crate::format::pack::{FinishedPack, MAX_ENTRIES, PackSeal, PackWriter};
use crate::format::snapshot::Snapshot;
use crate::foundation::crypto::{SALT_LEN, SealKey};
use crate::foundation::error::{Error, Result, StoreError};
use crate::foundation::id::{BlobId, IndexId, ObjectKey, ObjectKind, PackId, SnapshotId};
use crate::repository::Repository;
use crate::repository::index::Index;
use crate::repository::store::PutHints;

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

/// A pack taking blobs: its salt, key, and the room given out so far.
struct OpenPack {
    seq: u64,
    seal: PackSeal,
    key: Arc<SealKey>,
    len: usize,
    count: usize,
}

/// Gives each new blob its place in an open pack (data, trees, and the trees' second copies
/// apart), closing a pack once the room given out reaches the pack size or the most entries a
/// header holds.
#[derive(Default)]
struct Allocator {
    next: u64,
    open: [Option<OpenPack>; 3],
}

/// Which open pack a blob goes to: data, a tree, or a tree's second copy.
#[derive(Debug, Clone, Copy)]
enum Lane {
    Data = 0,
    Tree = 1,
    TreeCopy = 2,
}

/// Where a blob goes: its pack, the key to seal it under, and, for the blob that fills the
/// pack, how many blobs the pack holds.
struct Slot {
    seq: u64,
    seal: PackSeal,
    key: Arc<SealKey>,
    closes: Option<usize>,
}

impl Allocator {
    fn reserve(&mut self, repo: &Repository, lane: Lane, sealed_len: usize, target: usize) -> Slot {
        let next = &mut self.next;
        let open = self.open[lane as usize].get_or_insert_with(|| {
            // A write-only key seals each pack to the repository's public key (FORMAT.md §5.5).
            let (salt, public, generation, key) = repo.master().new_pack_key();
            *next += 1;
            let seal = PackSeal { salt, public, generation };
            OpenPack { seq: *next, seal, key: Arc::new(key), len: SALT_LEN, count: 0 }
        });
        open.len += sealed_len;
        open.count += 1;
        let full = open.len >= target || open.count >= MAX_ENTRIES as usize;
        let slot =
            Slot { seq: open.seq, seal: open.seal, key: Arc::clone(&open.key), closes: full.then_some(open.count) };
        if full {
            self.open[lane as usize] = None;
        }
        slot
    }
}

/// A sealed blob on its way to the packer, with its place.
struct Placed {
    slot: Slot,
    blob: SealedBlob,
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

    /// Collects sealed blobs into their packs; a pack is finished (laid out in a random order,
    /// its header sealed) once every blob given a place in it has arrived, and the packs still
    /// open when the callers are done are finished then.
    fn packer(&self, blobs: &Receiver<Placed>, packs: &Sender<FinishedPack>, spare: &Receiver<Vec<u8>>) {
        struct Building {
            writer: PackWriter,
            key: Arc<SealKey>,
            expect: Option<usize>,
            trees: bool,
        }
        impl Building {
            /// Data packs are shuffled. Tree packs keep the order trees were written in (a
            /// directory after its subdirectories, the root last), so a restore gets a new
            /// snapshot's trees with its root's own request (`restore::fetch_window`).
            fn finish(self) -> FinishedPack {
                self.writer.finish(&self.key, !self.trees)
            }
        }
        let mut building: HashMap<u64, Building> = HashMap::new();
        for Placed { slot, blob } in blobs {
            let pack = building.entry(slot.seq).or_insert_with(|| Building {
                // A pack's buffer is taken when it is laid out; the one an uploader put back
                // is reused: with one uploader no more than two pack buffers live at a time.
                writer: PackWriter::with_buffer(slot.seal, spare.try_recv().unwrap_or_default()),
                key: Arc::clone(&slot.key),
                expect: None,
                trees: blob.kind == BlobKind::Tree,
            });
            pack.writer.add(blob);
            pack.expect = pack.expect.or(slot.closes);
            if pack.expect == Some(pack.writer.count())
                && let Some(full) = building.remove(&slot.seq)
                && packs.send(full.finish()).is_err()
            {
                return;
            }
        }
        let mut rest: Vec<(u64, Building)> = building.into_iter().collect();
        rest.sort_by_key(|(seq, _)| *seq);
        for (_, pack) in rest {
            if packs.send(pack.finish()).is_err() {
                return;
            }
        }
    }

    /// Uploads packs; writes an index checkpoint every [`CHECKPOINT_PACKS`] packs.
    fn uploader(&self, packs: &Receiver<FinishedPack>, spare: &Sender<Vec<u8>>) {
        for pack in packs {
            if self.failed.load(Ordering::SeqCst) {
                continue; // drain, so the packer never blocks
            }
            let key = ObjectKey::new(ObjectKind::Pack, pack.id.0);
            let len = pack.bytes.len() as u64;
            // A data pack's parity goes first: every pack an index names then has its parity
            // (trees are stored twice instead). Data packs go in the data storage class; tree
            // packs stay in the default one, so listing and browsing never touch cold objects.
            let data = pack.entries.first().is_some_and(|e| e.kind == BlobKind::Data);
            if data && let Err(e) = self.repo.put_parity(&pack.id, &pack.bytes) {
                self.fail(e);
                continue;
            }
            let class = if data { self.repo.config().data_storage_class.as_deref() } else { None };
            let put = self.repo.store().put_with(&key, pack.bytes.clone(), PutHints::storage_class(class));
            // The packer reuses the buffer when the store kept no reference to it.
            if let Ok(buf) = pack.bytes.try_into_mut() {
                let _ = spare.try_send(buf.into());
            }
            match put {
                // The same bytes uploaded before (by an interrupted run): a content address.
                Ok(()) | Err(StoreError::AlreadyExists) => {}
                Err(cause) => {
                    self.fail(Error::Store { key, cause });
                    continue;
                }
            }
            self.packs_uploaded.fetch_add(1, Ordering::Relaxed);
            self.bytes_uploaded.fetch_add(len, Ordering::Relaxed);
            let indexed = IndexedPack { id: pack.id, seal: pack.seal, entries: pack.entries };
            if let Err(e) = self.uploaded_one(indexed) {
                self.fail(e);
            }
        }
    }

    fn uploaded_one(&self, pack: IndexedPack) -> Result<()> {
        lock(&self.uploaded)?.push(pack.clone());
        let checkpoint = {
            let mut waiting = lock(&self.unindexed)?;
            waiting.push(pack);
            (self.indexing == Indexing::Writer && waiting.len() >= CHECKPOINT_PACKS)
                .then(|| std::mem::take(&mut *waiting))
        };
        if let Some(packs) = checkpoint {
            let id = self.repo.save_index(&IndexFile { supersedes: vec![], packs })?;
            lock(&self.own_indexes)?.push(id);
        }
        Ok(())
    }

    /// Names the packs not yet in an index object of this writer in one.
    fn index_the_rest(&self) -> Result<()> {
        let rest = std::mem::take(&mut *lock(&self.unindexed)?);
        if !rest.is_empty() {
            let id = self.repo.save_index(&IndexFile { supersedes: vec![], packs: rest })?;
            lock(&self.own_indexes)?.push(id);
        }
        Ok(())
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
        let (pack_tx, pack_rx) = bounded::<FinishedPack>(PACK_QUEUE);
        let (spare_tx, spare_rx) = bounded::<Vec<u8>>(1);
        scope.spawn(move || shared.packer(&blob_rx, &pack_tx, &spare_rx));
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
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::format::keyfile::KdfParams;
    use crate::repository::InitOptions;
    use crate::repository::store::object_store::ObjectStoreBackend;

    fn repo(name: &str, pack_size: u32) -> Repository {
        let store = Arc::new(ObjectStoreBackend::open(&format!("memory://{name}"), &Default::default()).unwrap());
        let opts = InitOptions {
            kdf: KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 },
            pack_size,
            ..Default::default()
        };
        Repository::init(store, b"password", &opts).unwrap()
    }

    /// `len` incompressible bytes, different for each `i`.
    fn blob(i: u32, len: usize) -> Vec<u8> {
        let mut x = u64::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// Blobs added from several threads, with duplicates, come back from the index exactly once
    /// each, in packs of data or of trees only; checkpoints and the last index object name
    /// every pack.
    #[test]
    fn blobs_from_many_threads_are_stored_once_and_indexed() {
        let repo = repo("writer-threads", 1 << 16);
        let index = repo.load_index().unwrap();
        let ((), stats, committed) = repo
            .write_blobs(&index, WriteOptions::default(), |w| {
                std::thread::scope(|s| {
                    for t in 0..4u32 {
                        s.spawn(move || {
                            for i in 0..300u32 {
                                let kind = if i % 10 == 0 { BlobKind::Tree } else { BlobKind::Data };
                                // Each thread adds its own blob, and one every thread adds: each is
                                // stored once.
                                w.add(kind, &blob(i * 4 + t, 3000)).unwrap();
                                w.add(kind, &blob(i * 4, 3000)).unwrap();
                            }
                        });
                    }
                });
                Ok(())
            })
            .unwrap();
        let index = repo.load_index().unwrap();
        let distinct: HashSet<Vec<u8>> = (0..1200u32).map(|i| blob(i, 3000)).collect();
        assert_eq!(stats.blobs_new as usize, distinct.len());
        assert_eq!(index.len(), distinct.len());
        for plain in &distinct {
            let id = repo.master().blob_id(plain);
            let entry = index.get(&id).expect("stored and indexed");
            assert_eq!(repo.read_entry(&index, entry).unwrap(), *plain);
        }
        assert!(stats.packs_uploaded as usize > CHECKPOINT_PACKS, "enough packs for a checkpoint");
        assert!(committed.index_objects().len() >= 2, "a checkpoint and the last object");
        for p in index.packs() {
            let kinds: HashSet<BlobKind> =
                index.entries().filter(|e| index.pack(e).id == p.id).map(|e| e.kind()).collect();
            // A pack of trees' second copies has no entry in the table (one per blob).
            assert!(kinds.len() <= 1, "data and trees in separate packs");
        }
    }

    /// A blob the committed index has is not stored again; one only the writer has taken on
    /// is stored once.
    #[test]
    fn known_blobs_are_not_stored_again() {
        let repo = repo("writer-known", 1 << 16);
        let index = repo.load_index().unwrap();
        let (id, _, _) = repo.write_blobs(&index, WriteOptions::default(), |w| w.add(BlobKind::Data, b"old")).unwrap();
        let index = repo.load_index().unwrap();
        let (new, stats, _) = repo
            .write_blobs(&index, WriteOptions::default(), |w| {
                assert!(w.known(&id) && w.has(&id));
                assert!(!w.add_with_id(BlobKind::Data, id, b"old")?);
                let new = w.add(BlobKind::Data, b"new")?;
                assert!(!w.known(&new) && w.has(&new));
                assert!(!w.add_with_id(BlobKind::Data, new, b"new")?);
                Ok(new)
            })
            .unwrap();
        assert_eq!((stats.blobs_new, stats.packs_uploaded), (1, 1));
        assert!(repo.load_index().unwrap().contains(&new));
    }

    /// Prune's way: packs come back to the caller and no index object is written.
    #[test]
    fn packs_for_the_caller_are_not_indexed() {
        let repo = repo("writer-packs", 1 << 16);
        let index = repo.load_index().unwrap();
        let (id, stats, packs) =
            repo.write_packs(&index, WriteOptions::default(), |w| w.add(BlobKind::Data, b"moved")).unwrap();
        assert_eq!(stats.packs_uploaded, 1);
        assert_eq!(packs.len(), 1);
        assert_eq!(packs[0].entries[0].id, id);
        assert!(repo.index_ids().unwrap().is_empty());
    }

    /// Work that fails still leaves what was uploaded indexed, and no token.
    #[test]
    fn a_failed_run_indexes_what_it_uploaded() {
        let repo = repo("writer-failed", 1 << 16);
        let index = repo.load_index().unwrap();
        // Twenty packs' worth: with one uploader and queues of a few blobs, most of them are
        // uploaded before the work fails.
        let result = repo.write_blobs(&index, WriteOptions::default(), |w| -> Result<()> {
            for i in 0..320 {
                w.add(BlobKind::Data, &blob(i, 4000))?;
            }
            Err(Error::InvalidArgument("the source failed".into()))
        });
        assert!(matches!(result, Err(Error::InvalidArgument(_))));
        let index = repo.load_index().unwrap();
        assert!(index.packs().len() >= 15, "uploaded packs are indexed for the next run: {}", index.packs().len());
        let stored = repo.store().list(ObjectKind::Pack).unwrap();
        assert_eq!(stored.len(), index.packs().len(), "every pack uploaded is indexed");
        for e in index.entries() {
            assert!(repo.read_entry(&index, e).is_ok());
        }
    }

    /// A prune that rewrote the index after the writer's own check (and listed the snapshots
    /// before this one existed) took the writer's pack out of the index: writing the snapshot
    /// names it in an index object again, so the snapshot restores at once.
    #[test]
    fn a_snapshot_written_after_a_prune_dropped_its_pack_indexes_it_again() {
        let repo = repo("writer-post-commit", 1 << 16);
        let index = repo.load_index().unwrap();
        let (id, _, committed) =
            repo.write_blobs(&index, WriteOptions::default(), |w| w.add(BlobKind::Tree, b"a tree")).unwrap();
        for old in repo.index_ids().unwrap() {
            repo.store().delete(&ObjectKey::new(ObjectKind::Index, old.0)).unwrap();
        }
        assert!(!repo.load_index().unwrap().contains(&id));
        let snapshot = crate::repository::testing::snapshot_of(id);
        repo.save_snapshot(&snapshot, &committed).unwrap();
        let index = repo.load_index().unwrap();
        assert_eq!(repo.read_entry(&index, index.get(&id).expect("indexed again")).unwrap(), b"a tree");
    }

    /// Every tree is stored in two packs; a read falls back on the second copy when the first
    /// pack is damaged, and `check --read-data` counts no file lost.
    #[test]
    fn trees_are_stored_twice_and_a_damaged_copy_costs_nothing() {
        let repo = repo("writer-tree-copies", 1 << 16);
        let index = repo.load_index().unwrap();
        let tree = crate::format::tree::Tree::new(vec![]).encode();
        let (id, stats, committed) =
            repo.write_blobs(&index, WriteOptions::default(), |w| w.add(BlobKind::Tree, &tree)).unwrap();
        assert_eq!((stats.blobs_new, stats.packs_uploaded), (1, 2), "one tree, two packs");
        let snapshot = crate::repository::testing::snapshot_of(id);
        repo.save_snapshot(&snapshot, &committed).unwrap();
        let index = repo.load_index().unwrap();
        let first = *index.get(&id).unwrap();
        assert_eq!(index.alternates(&id).len(), 1);
        assert_ne!(index.pack(&index.alternates(&id)[0]).id, index.pack(&first).id);

        // Flip a byte of the first copy, in place.
        let key = ObjectKey::new(ObjectKind::Pack, index.pack(&first).id.0);
        let mut bytes = repo.store().get(&key).unwrap().to_vec();
        bytes[first.offset as usize + 20] ^= 0x40;
        repo.store().replace(&key, bytes.into()).unwrap();
        assert!(repo.read_entry(&index, &first).is_err(), "the first copy is damaged");
        assert_eq!(repo.read_blob(&index, BlobKind::Tree, &id).unwrap(), tree, "the second copy is read");

        let report = crate::operations::check::run(&repo, crate::operations::check::ReadData::All).unwrap();
        assert!(report.problems.iter().any(|p| p.message.contains("intact copy")), "{:?}", report.problems);
        assert!(report.affected.is_empty(), "no file is lost: {:?}", report.affected);
        assert!(report.damaged_blobs.is_empty());
    }
}
