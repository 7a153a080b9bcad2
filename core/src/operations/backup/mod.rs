//! Backup: walk, change detection, and the chunk → hash → compress → seal → pack → upload
//! pipeline (DESIGN.md §Backup data flow; FORMAT.md §Read and write ordering).
//!
//! Threads, all inside one `std::thread::scope` so an error or panic surfaces here:
//! ```text
//! walker (caller's thread) ── bounded jobs ─▶ file workers (W) ─┐
//!   │ tree blobs                                                ├─ bounded blobs ─▶ packer ─ bounded packs ─▶ uploaders (U)
//!   └───────────────────────────────────────────────────────────┘                                   │
//!                                                                        index checkpoints ◀────────┘
//! ```
//! A worker stores a small file (up to `INLINE_MAX`) whole on its own thread. A larger file, or
//! a stream, is read a batch at a time, and its batches of chunks go to a rayon pool that hashes,
//! deduplicates, compresses and seals them in parallel while the next batch is read and cut (a
//! large batch is cut on the pool's threads too, so one stream is not bound to one core's
//! chunking). Dedup is checked once, before compression, against the committed index and the
//! set of blobs in flight, so no blob is stored twice by one backup.
//!
//! Memory is bounded by the channel sizes: at most `JOBS` file jobs, per worker one small-file
//! buffer and two batches while a large file is read (`FILE_BATCH_BYTES` each, or
//! `STREAM_BATCH_BYTES` for a stream; one is kept between files), `BLOB_QUEUE` sealed blobs, the
//! pack being built, `PACK_QUEUE + U` packs in flight and one spare pack buffer.
//!
//! Ordering: packs are uploaded before the index objects naming them, and the snapshot is
//! written last, only when every upload succeeded and every source command exited with success.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, bounded};
use rayon::prelude::*;

use crate::format::blob::{self, BlobKind, SealedBlob};
use crate::format::index::{IndexFile, IndexedPack};
use crate::format::pack::{FinishedPack, PackWriter};
use crate::format::snapshot::{SNAPSHOT_VERSION, Snapshot, Summary};
use crate::format::tree::{Node, NodeKind, Time, Tree};
use crate::foundation::chunk::{Batch, Cutter, StreamBatcher};
use crate::foundation::crypto::{SALT_LEN, SealKey, random_salt};
use crate::foundation::error::{Error, IoContext, Result};
use crate::foundation::id::{BlobId, Digest, SnapshotId};
use crate::foundation::identity::host_and_user;
use crate::foundation::pattern::PathPatterns;
use crate::foundation::progress::Progress;
use crate::operations::backup::source::StreamSource;
use crate::repository::index::Index;
use crate::repository::store::{ObjectKey, ObjectKind, StoreError};
use crate::repository::{Repository, SnapshotFilter};

mod files;
pub mod source;
mod walk;

use files::{FileJob, FileOutcome, Results};

use walk::{absolute_args, walk};

const JOBS: usize = 64;
/// Sealed blobs between the workers and the packer (each at most a maximal chunk).
const BLOB_QUEUE: usize = 8;
/// Finished packs waiting for an uploader, besides those uploading.
const PACK_QUEUE: usize = 0;
/// Uploads in flight by default: enough to hide a remote store's latency; a local disk takes
/// a pack several times faster than the packer makes one, and every pack in flight is 16 MiB of
/// memory.
const UPLOADERS_REMOTE: usize = 4;
const UPLOADERS_LOCAL: usize = 1;
/// Bytes per batch of a file: each file worker holds two batches.
const FILE_BATCH_BYTES: usize = 2 << 20;
/// Bytes per batch of a stream: large enough that [`Cutter::cut_batch`] cuts it on two threads.
const STREAM_BATCH_BYTES: usize = 8 << 20;
/// Packs per index checkpoint, so an interrupted backup leaves its uploads reusable.
const CHECKPOINT_PACKS: usize = 32;

/// What to back up and how.
#[derive(Debug, Clone, Default)]
pub struct BackupOptions {
    /// Files and directories to save.
    pub paths: Vec<PathBuf>,
    /// Save a stream instead, as a file with this name.
    pub stream: Option<(StreamSource, String)>,
    /// Tags for the snapshot.
    pub tags: Vec<String>,
    /// Host name to record (default: this machine's).
    pub host: Option<String>,
    /// Snapshot time (default: now), for imported or replayed histories.
    pub time: Option<jiff::Timestamp>,
    /// Glob patterns to leave out: without `/` they match a name anywhere, with `/` an absolute
    /// path (`*` stays within one component, `**` crosses them).
    pub excludes: Vec<String>,
    /// Do not cross into other file systems.
    pub one_file_system: bool,
    /// Compare against this snapshot instead of the newest one of the same host and paths.
    pub parent: Option<SnapshotId>,
    /// Read every file, comparing against no parent.
    pub force: bool,
    /// Do not compare ctime in change detection.
    pub ignore_ctime: bool,
    /// Do not compare inode numbers in change detection.
    pub ignore_inode: bool,
    /// Worker threads for CPU stages (0 = number of cores).
    pub threads: usize,
    /// Pack uploads in flight (0 = default: 4).
    pub uploads: usize,
}

impl BackupOptions {
    /// Defaults for backing up `paths`.
    #[must_use]
    pub fn for_paths(paths: Vec<PathBuf>) -> Self {
        BackupOptions { paths, ..Default::default() }
    }
}

/// What a backup produced.
#[derive(Debug, Clone)]
pub struct BackupResult {
    /// The new snapshot.
    pub snapshot: SnapshotId,
    /// Its parent.
    pub parent: Option<SnapshotId>,
    /// What was done.
    pub summary: Summary,
}

fn lock<T>(m: &Mutex<T>) -> Result<MutexGuard<'_, T>> {
    m.lock().map_err(|_| Error::Internal("a backup thread panicked".into()))
}

#[derive(Default)]
struct Counters {
    files_new: AtomicU64,
    files_changed: AtomicU64,
    files_unmodified: AtomicU64,
    dirs: AtomicU64,
    others: AtomicU64,
    total_bytes: AtomicU64,
    bytes_read: AtomicU64,
    blobs_new: AtomicU64,
    bytes_new: AtomicU64,
    bytes_stored: AtomicU64,
}

/// State shared by all stages of one backup.
struct Session<'a> {
    repo: &'a Repository,
    index: Index,
    pending: Mutex<HashSet<BlobId>>,
    key: SealKey,
    salt: [u8; SALT_LEN],
    level: i32,
    cutter: Cutter,
    pool: rayon::ThreadPool,
    counters: Counters,
    /// Set on the first fatal error; every stage winds down.
    failed: AtomicBool,
    fatal: Mutex<Option<Error>>,
    results: Results,
    progress: &'a dyn Progress,
    /// Packs (by index number) holding blobs this backup reuses instead of storing.
    reused_packs: Vec<AtomicBool>,
    /// Packs this backup uploaded, with their entries.
    uploaded: Mutex<Vec<IndexedPack>>,
    /// Index objects present when this backup loaded the index.
    start_indexes: HashSet<crate::foundation::id::IndexId>,
    /// Index objects this backup wrote (checkpoints and the last one).
    own_indexes: Mutex<Vec<crate::foundation::id::IndexId>>,
}

impl Session<'_> {
    /// Whether the committed index has the blob; if so, notes its pack as one this backup
    /// depends on.
    fn known(&self, id: &BlobId) -> bool {
        match self.index.get(id) {
            Some(e) => {
                if let Some(flag) = self.reused_packs.get(e.pack() as usize) {
                    flag.store(true, Ordering::Relaxed);
                }
                true
            }
            None => false,
        }
    }

    /// Fails if a pack this backup depends on has gone (swept by a concurrent prune after this
    /// backup loaded the index): the snapshot would reference missing data.
    fn check_dependencies(&self) -> Result<()> {
        let sizes: HashMap<crate::foundation::id::PackId, u64> = self
            .repo
            .store()
            .list(ObjectKind::Pack)
            .map_err(Error::Storage)?
            .into_iter()
            .map(|i| (crate::foundation::id::PackId(i.key.id), i.size))
            .collect();
        let reused: Vec<(usize, crate::foundation::id::PackId)> = self
            .index
            .packs()
            .iter()
            .enumerate()
            .zip(&self.reused_packs)
            .filter(|(_, used)| used.load(Ordering::Relaxed))
            .map(|((n, p), _)| (n, p.id))
            .collect();
        let uploaded = lock(&self.uploaded)?.clone();
        for id in reused.iter().map(|(_, id)| *id).chain(uploaded.iter().map(|p| p.id)) {
            if !sizes.contains_key(&id) {
                return Err(removed_while_running(id));
            }
        }
        // A prune that ran meanwhile rewrote the index: packs this backup uploaded or reused may
        // now be only on a garbage list (no snapshot used them when it looked). They are still
        // stored; name them in an index object again before the snapshot needs them.
        let now = self.repo.index_ids()?;
        let own = lock(&self.own_indexes)?.clone();
        if self.start_indexes.iter().chain(&own).all(|id| now.contains(id)) {
            return Ok(()); // no prune rewrote the index meanwhile
        }
        let current = self.repo.load_index()?;
        let mut again: Vec<IndexedPack> =
            uploaded.into_iter().filter(|p| p.entries.iter().any(|e| !current.contains(&e.id))).collect();
        let missing_reused: HashSet<usize> =
            reused.iter().filter(|(_, id)| !current.packs().iter().any(|p| p.id == *id)).map(|(n, _)| *n).collect();
        // A reused pack's full entry list comes from its own header (the loaded index keeps one
        // entry per blob, so it may lack duplicates the pack also holds).
        for n in missing_reused {
            let p = self.index.packs()[n];
            let key = ObjectKey::new(ObjectKind::Pack, p.id.0);
            let size = *sizes.get(&p.id).ok_or_else(|| Error::NotFound(format!("{key}")))?;
            let (salt, entries) = match self.repo.read_pack_header(&p.id, size) {
                Ok(h) => h,
                Err(Error::Store { cause: StoreError::NotFound(_), .. }) => return Err(removed_while_running(p.id)),
                Err(e) => return Err(e),
            };
            again.push(IndexedPack { id: p.id, salt, entries });
        }
        if !again.is_empty() {
            self.repo.save_index(&IndexFile { supersedes: vec![], packs: again })?;
        }
        Ok(())
    }

    fn fail(&self, e: Error) {
        if let Ok(mut f) = self.fatal.lock() {
            f.get_or_insert(e);
        }
        self.failed.store(true, Ordering::SeqCst);
        self.results.ready.notify_all();
    }

    /// Hashes, deduplicates, compresses and seals one batch in parallel; returns the ids in
    /// order and sends new blobs to the packer.
    fn store_batch(&self, batch: &Batch, blobs: &Sender<SealedBlob>) -> Result<Vec<BlobId>> {
        let bytes = batch.bytes();
        let results: Vec<(BlobId, Option<SealedBlob>)> = batch
            .ranges()
            .par_iter()
            .map(|range| {
                let chunk = &bytes[range.clone()];
                let id = self.repo.master().blob_id(chunk);
                let is_new = !self.known(&id) && self.pending.lock().map(|mut p| p.insert(id)).unwrap_or(false);
                (id, is_new.then(|| blob::seal(&self.key, BlobKind::Data, id, chunk, self.level)))
            })
            .collect();
        let mut ids = Vec::with_capacity(results.len());
        for (id, sealed) in results {
            ids.push(id);
            if let Some(s) = sealed {
                self.counters.blobs_new.fetch_add(1, Ordering::Relaxed);
                self.counters.bytes_new.fetch_add(u64::from(s.raw_len), Ordering::Relaxed);
                blobs.send(s).map_err(|_| Error::Internal("packer stopped".into()))?;
            }
        }
        Ok(ids)
    }

    /// Stores one input, batch by batch. Reading and cutting the next batch overlaps with
    /// hashing, compressing and sealing the last one and with the whole-file hash; all of it
    /// runs in the session's pool, so a thread that runs out of work takes some of another's.
    fn store_chunks<R: Read + Send>(
        &self,
        batcher: &mut StreamBatcher<R>,
        batch_bytes: usize,
        blobs: &Sender<SealedBlob>,
    ) -> Result<std::io::Result<(Vec<BlobId>, Digest, u64)>> {
        let mut hasher = blake3::Hasher::new();
        let mut size = 0u64;
        let mut content = Vec::new();
        let mut current = match self.pool.install(|| batcher.next_batch(batch_bytes)) {
            Ok(b) => b,
            Err(e) => return Ok(Err(e)),
        };
        while let Some(batch) = current {
            if self.failed.load(Ordering::SeqCst) {
                return Err(Error::Internal("backup aborted".into()));
            }
            let read = batch.bytes().len() as u64;
            size += read;
            self.counters.bytes_read.fetch_add(read, Ordering::Relaxed);
            self.progress.bytes_read(read);
            let (stored, next) = self.pool.join(
                || {
                    let (ids, _) = rayon::join(|| self.store_batch(&batch, blobs), || hasher.update(batch.bytes()));
                    ids
                },
                || batcher.next_batch(batch_bytes),
            );
            content.extend(stored?);
            batcher.recycle(batch);
            current = match next {
                Ok(b) => b,
                Err(e) => return Ok(Err(e)),
            };
        }
        Ok(Ok((content, Digest(*hasher.finalize().as_bytes()), size)))
    }

    /// Collects sealed blobs into packs (data and trees apart).
    fn packer(&self, blobs: &Receiver<SealedBlob>, packs: &Sender<FinishedPack>, spare: &Receiver<Vec<u8>>) {
        let target = self.repo.config().pack_size as usize;
        let mut data = PackWriter::new(self.salt, target);
        let mut trees = PackWriter::new(self.salt, 1 << 20);
        for blob in blobs {
            let writer = if blob.kind == BlobKind::Tree { &mut trees } else { &mut data };
            writer.add(blob);
            if writer.is_full(target) {
                // Hand the pack over first: an uploader takes it only once it is done with its
                // last one, whose buffer it has put back by then, so a local backup (one
                // uploader) never holds more than two pack buffers.
                let full = std::mem::replace(writer, PackWriter::new(self.salt, 0));
                if packs.send(full.finish(&self.key)).is_err() {
                    return;
                }
                *writer = match spare.try_recv() {
                    Ok(buf) => PackWriter::with_buffer(self.salt, buf),
                    Err(_) => PackWriter::new(self.salt, target),
                };
            }
        }
        for w in [data, trees] {
            if !w.is_empty() && packs.send(w.finish(&self.key)).is_err() {
                return;
            }
        }
    }

    /// Uploads packs; writes an index checkpoint every few packs.
    fn uploader(&self, packs: &Receiver<FinishedPack>, indexed: &Mutex<Vec<IndexedPack>>, spare: &Sender<Vec<u8>>) {
        for pack in packs {
            if self.failed.load(Ordering::SeqCst) {
                continue; // drain so the packer never blocks
            }
            let key = ObjectKey::new(ObjectKind::Pack, pack.id.0);
            let len = pack.bytes.len() as u64;
            let put = self.repo.store().put(&key, pack.bytes.clone());
            // The packer reuses the buffer when the store kept no reference to it.
            if let Ok(buf) = pack.bytes.try_into_mut() {
                let _ = spare.try_send(buf.into());
            }
            match put {
                Ok(()) | Err(StoreError::AlreadyExists) => {}
                Err(cause) => {
                    self.fail(Error::Store { key, cause });
                    continue;
                }
            }
            self.counters.bytes_stored.fetch_add(len, Ordering::Relaxed);
            if let Ok(mut up) = self.uploaded.lock() {
                up.push(IndexedPack { id: pack.id, salt: pack.salt, entries: pack.entries.clone() });
            }
            let checkpoint = match indexed.lock() {
                Ok(mut list) => {
                    list.push(IndexedPack { id: pack.id, salt: pack.salt, entries: pack.entries });
                    (list.len() >= CHECKPOINT_PACKS).then(|| std::mem::take(&mut *list))
                }
                Err(_) => None,
            };
            if let Some(packs) = checkpoint {
                match self.repo.save_index(&IndexFile { supersedes: vec![], packs }) {
                    Ok(id) => {
                        if let Ok(mut own) = self.own_indexes.lock() {
                            own.push(id);
                        }
                    }
                    Err(e) => self.fail(e),
                }
            }
        }
    }

    /// Seals and queues a tree blob unless the repository has it.
    fn store_tree(&self, tree: &Tree, blobs: &Sender<SealedBlob>) -> Result<BlobId> {
        let plain = tree.encode();
        if plain.len() > crate::format::blob::MAX_BLOB_LEN as usize {
            return Err(Error::InvalidArgument(format!(
                "a directory with {} entries encodes to {} bytes, over the {}-byte limit of a tree blob",
                tree.nodes.len(),
                plain.len(),
                crate::format::blob::MAX_BLOB_LEN
            )));
        }
        let id = self.repo.master().blob_id(&plain);
        if !self.known(&id) && lock(&self.pending)?.insert(id) {
            let sealed = blob::seal(&self.key, BlobKind::Tree, id, &plain, self.level);
            self.counters.blobs_new.fetch_add(1, Ordering::Relaxed);
            self.counters.bytes_new.fetch_add(plain.len() as u64, Ordering::Relaxed);
            blobs.send(sealed).map_err(|_| Error::Internal("packer stopped".into()))?;
        }
        Ok(id)
    }
}

/// The error of a backup that depends on a pack a concurrent prune swept.
fn removed_while_running(id: crate::foundation::id::PackId) -> Error {
    Error::Corrupt {
        object: format!("pack {id}"),
        reason: "was removed while this backup ran (a concurrent prune); no snapshot was written, run the backup again"
            .into(),
    }
}

/// Runs a backup into `repo`.
///
/// # Errors
/// Fatal errors only (store failures, a failing source command, bad options); unreadable files
/// are listed in [`Summary::errors`] instead.
pub fn run(repo: &Repository, opts: &BackupOptions, progress: &dyn Progress) -> Result<BackupResult> {
    let started = Instant::now();
    let (host_default, user) = host_and_user();
    let host = opts.host.clone().unwrap_or(host_default);
    let args = if opts.stream.is_some() { Vec::new() } else { absolute_args(&opts.paths)? };
    if opts.stream.is_none() && args.is_empty() {
        return Err(Error::InvalidArgument("nothing to back up: give at least one path, or --stdin".into()));
    }
    let paths: Vec<String> = match &opts.stream {
        Some((_, name)) => vec![format!("/{name}")],
        None => args.iter().map(|p| p.to_string_lossy().into_owned()).collect(),
    };
    let excludes = PathPatterns::new(&opts.excludes)?;

    let start_indexes = repo.index_ids()?;
    let index = repo.load_index()?;
    let parent = if opts.force {
        None
    } else if let Some(p) = opts.parent {
        Some((p, repo.load_snapshot(p)?))
    } else {
        let filter = SnapshotFilter { hosts: vec![host.clone()], ..Default::default() };
        repo.snapshots()?.into_iter().rev().find(|(_, s)| filter.matches(s) && s.paths == paths)
    };
    let old_root = match &parent {
        Some((_, s)) => repo.load_tree(&index, &s.tree).ok(),
        None => None,
    };

    let threads = if opts.threads == 0 {
        std::thread::available_parallelism().map_or(2, std::num::NonZero::get)
    } else {
        opts.threads
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("cairn-cpu-{i}"))
        .build()
        .map_err(|e| Error::Internal(format!("thread pool: {e}")))?;
    let salt = random_salt();
    let index_packs = index.packs().len();
    let session = Session {
        repo,
        index,
        pending: Mutex::new(HashSet::new()),
        key: repo.master().subkey(&salt),
        salt,
        level: repo.config().compression,
        cutter: repo.cutter()?,
        pool,
        counters: Counters::default(),
        failed: AtomicBool::new(false),
        fatal: Mutex::new(None),
        results: Results::default(),
        progress,
        reused_packs: (0..index_packs).map(|_| AtomicBool::new(false)).collect(),
        uploaded: Mutex::new(Vec::new()),
        start_indexes,
        own_indexes: Mutex::new(Vec::new()),
    };
    let indexed = Mutex::new(Vec::new());

    let walked: Result<(BlobId, Vec<String>)> = std::thread::scope(|scope| {
        let (job_tx, job_rx) = bounded::<FileJob>(JOBS);
        let (blob_tx, blob_rx) = bounded::<SealedBlob>(BLOB_QUEUE);
        let (pack_tx, pack_rx) = bounded::<FinishedPack>(PACK_QUEUE);
        let (spare_tx, spare_rx) = bounded::<Vec<u8>>(1);
        let s = &session;
        for _ in 0..threads {
            let (jobs, blobs) = (job_rx.clone(), blob_tx.clone());
            scope.spawn(move || s.worker(&jobs, &blobs));
        }
        drop(job_rx);
        scope.spawn(move || s.packer(&blob_rx, &pack_tx, &spare_rx));
        let uploaders = match opts.uploads {
            0 if s.repo.store().is_remote() => UPLOADERS_REMOTE,
            0 => UPLOADERS_LOCAL,
            n => n,
        };
        for _ in 0..uploaders {
            let (packs, indexed, spare) = (pack_rx.clone(), &indexed, spare_tx.clone());
            scope.spawn(move || s.uploader(&packs, indexed, &spare));
        }
        drop(spare_tx);
        drop(pack_rx);
        let result = walk(s, job_tx, blob_tx, opts, &args, old_root.as_ref(), excludes);
        if result.is_err() {
            s.failed.store(true, Ordering::SeqCst);
            s.results.ready.notify_all();
        }
        result
    });
    // Name every uploaded pack in an index object, even when the backup failed: the next
    // backup then reuses them instead of uploading again (no snapshot refers to them yet).
    let rest = std::mem::take(&mut *lock(&indexed)?);
    let indexed_rest = if rest.is_empty() {
        Ok(())
    } else {
        repo.save_index(&IndexFile { supersedes: vec![], packs: rest })
            .and_then(|id| lock(&session.own_indexes).map(|mut own| own.push(id)))
    };
    let fatal = lock(&session.fatal)?.take();
    if let Some(e) = fatal {
        return Err(e);
    }
    let (root, errors) = walked?;
    indexed_rest?;
    session.check_dependencies()?;
    let c = &session.counters;
    let summary = Summary {
        files_new: c.files_new.load(Ordering::Relaxed),
        files_changed: c.files_changed.load(Ordering::Relaxed),
        files_unmodified: c.files_unmodified.load(Ordering::Relaxed),
        dirs: c.dirs.load(Ordering::Relaxed),
        others: c.others.load(Ordering::Relaxed),
        total_bytes: c.total_bytes.load(Ordering::Relaxed),
        bytes_read: c.bytes_read.load(Ordering::Relaxed),
        blobs_new: c.blobs_new.load(Ordering::Relaxed),
        bytes_new: c.bytes_new.load(Ordering::Relaxed),
        bytes_stored: c.bytes_stored.load(Ordering::Relaxed),
        seconds: started.elapsed().as_secs_f64(),
        errors,
    };
    let snapshot = Snapshot {
        version: SNAPSHOT_VERSION,
        time: opts.time.unwrap_or_else(jiff::Timestamp::now),
        host,
        user,
        paths,
        tags: opts.tags.clone(),
        parent: parent.as_ref().map(|(id, _)| *id),
        tree: root,
        summary: summary.clone(),
        original: None,
        program: format!("cairn {}", env!("CARGO_PKG_VERSION")),
    };
    let id = repo.save_snapshot(&snapshot)?;
    Ok(BackupResult { snapshot: id, parent: parent.map(|(id, _)| id), summary })
}

/// Saves a stream as the only file of the root tree.
fn store_stream(
    session: &Session<'_>,
    source: &StreamSource,
    name: &str,
    blobs: &Sender<SealedBlob>,
) -> Result<BlobId> {
    if name.is_empty() || name.contains('/') {
        return Err(Error::InvalidArgument(format!("--stdin-filename `{name}` must be a plain file name")));
    }
    let mut stream = source.start()?;
    let mut batcher = StreamBatcher::new(session.cutter.clone(), &mut stream, None);
    let stored = match session.store_chunks(&mut batcher, STREAM_BATCH_BYTES, blobs) {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            stream.abort();
            return Err(Error::io(format!("<{name}>"), e));
        }
        Err(e) => {
            stream.abort();
            return Err(e);
        }
    };
    // The producer's exit status decides whether this becomes a snapshot at all.
    stream.finish()?;
    let (content, hash, size) = stored;
    let now = jiff::Timestamp::now();
    let time = Time { secs: now.as_second(), nanos: u32::try_from(now.subsec_nanosecond()).unwrap_or(0) };
    // Our own uid and gid, without unsafe libc calls: /proc/self belongs to us.
    let (uid, gid) = std::fs::metadata("/proc/self").map(|m| (m.uid(), m.gid())).unwrap_or((0, 0));
    session.counters.files_new.fetch_add(1, Ordering::Relaxed);
    session.counters.total_bytes.fetch_add(size, Ordering::Relaxed);
    let node = Node {
        name: name.as_bytes().to_vec(),
        kind: NodeKind::File,
        mode: 0o100_600,
        uid,
        gid,
        mtime: time,
        atime: time,
        ctime: time,
        inode: 0,
        dev: 0,
        nlink: 1,
        size,
        rdev: 0,
        content,
        hash: Some(hash),
        subtree: None,
        target: None,
        link: None,
    };
    session.store_tree(&Tree::new(vec![node]), blobs)
}
