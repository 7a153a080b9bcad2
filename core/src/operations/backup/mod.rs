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

use crate::format::blob::{BlobKind, MAX_BLOB_LEN};
use crate::format::snapshot::{AttributesRead, SNAPSHOT_VERSION, Snapshot, Summary};
use crate::format::tree::{Node, NodeKind, Time, Tree};
use crate::foundation::chunk::{Batch, Cutter, StreamBatcher};
use crate::foundation::error::{Error, IoContext, Result};
use crate::foundation::fsmeta::XattrFilter;
use crate::foundation::id::{BlobId, Digest, SnapshotId};
use crate::foundation::identity::{host_and_user, running_as_root};
use crate::foundation::pattern::PathPatterns;
use crate::foundation::progress::Progress;
use crate::repository::Repository;
use crate::repository::index::Index;
use crate::repository::select::SnapshotFilter;
use crate::repository::writer::{BlobWriter, WriteOptions};

#[cfg(test)]
mod change_tests;
mod files;
mod record;
pub mod source;
mod walk;

use files::{FileJob, FileOutcome, Results};
pub use source::BackupSource;
use source::RunningStream;
use walk::{Walked, absolute_args, walk};

const JOBS: usize = 64;
/// Bytes per batch of a file: each file worker holds two batches.
const FILE_BATCH_BYTES: usize = 2 << 20;
/// Bytes per batch of a stream: large enough that [`Cutter::cut_batch`] cuts it on two threads.
const STREAM_BATCH_BYTES: usize = 8 << 20;

/// How to back up (what to back up is a [`BackupSource`]).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct BackupOptions {
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
    /// Where a write-only key keeps its record of its own last backups, the parents it
    /// compares against (FORMAT.md §5.6); without it a write-only key reads every file. A
    /// full key compares against the repository's snapshots and ignores it.
    pub own_record: Option<std::path::PathBuf>,
    /// Read every file, comparing against no parent.
    pub force: bool,
    /// Do not compare ctime in change detection.
    pub ignore_ctime: bool,
    /// Do not compare inode numbers in change detection.
    pub ignore_inode: bool,
    /// Do not record extended attributes (other than ACLs).
    pub no_xattrs: bool,
    /// Do not record POSIX ACLs.
    pub no_acls: bool,
    /// Leave out entries with the no-dump inode flag (`chattr +d`), as `borg --exclude-nodump`.
    pub exclude_nodump: bool,
    /// Worker threads for CPU stages (0 = number of cores).
    pub threads: usize,
    /// Pack uploads in flight (0 = default: 4 to a remote store, 1 to a local one).
    pub uploads: usize,
    /// For a PostgreSQL base backup: filled by its source by the time the stream ends, and
    /// recorded in the snapshot (`cairn pg backup`). No snapshot is written if it is empty then.
    pub postgres: Option<std::sync::Arc<std::sync::OnceLock<crate::format::snapshot::BaseBackup>>>,
}

/// An entry that could not be read and is not in the snapshot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Unreadable {
    /// Where it is.
    #[serde(serialize_with = "crate::foundation::path::serialize_path")]
    pub path: PathBuf,
    /// What the operating system said.
    pub reason: String,
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

/// What a backup produced.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BackupResult {
    /// The new snapshot.
    pub snapshot: SnapshotId,
    /// Its parent.
    pub parent: Option<SnapshotId>,
    /// What was done (as stored in the snapshot).
    pub summary: Summary,
    /// Entries that could not be read and are not in the snapshot (the backup still
    /// succeeded; the CLI exits 3).
    pub unreadable: Vec<Unreadable>,
    /// Files that kept changing while they were read, each time they were read: stored as the
    /// last read saw them, which may mix versions (recorded in the snapshot's summary; the CLI
    /// exits 3).
    pub changed: Vec<PathBuf>,
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
    bytes_in_holes: AtomicU64,
}

/// State shared by the walker and the file workers of one backup. Blobs go to the
/// repository's one writer ([`BlobWriter`]), which deduplicates, seals, packs and uploads.
struct Session<'a> {
    repo: &'a Repository,
    /// The committed index the backup loaded (parent trees are read through it).
    index: &'a Index,
    writer: &'a BlobWriter<'a, 'a>,
    cutter: Cutter,
    pool: rayon::ThreadPool,
    counters: &'a Counters,
    /// Set on the first fatal error; every stage winds down.
    failed: AtomicBool,
    fatal: Mutex<Option<Error>>,
    results: Results,
    progress: &'a dyn Progress,
    /// The extended attributes to record.
    xattrs: XattrFilter,
    /// A write-only key's record of its own backups: where parent trees come from, and where
    /// this backup's trees go.
    record: Option<&'a record::OwnRecord>,
}

impl Session<'_> {
    /// A tree of the parent snapshot, from the repository or a write-only key's record.
    fn parent_tree(&self, id: &BlobId) -> Option<Tree> {
        match self.record {
            Some(r) => r.tree(id),
            None => self.repo.load_tree(self.index, id).ok(),
        }
    }

    /// Whether the committed index has the blob (its pack is then one the snapshot depends on).
    fn known(&self, id: &BlobId) -> bool {
        self.writer.known(id)
    }

    /// Whether the backup is winding down after an error here or in the writer.
    fn is_failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst) || self.writer.failed()
    }

    fn fail(&self, e: Error) {
        if let Ok(mut f) = self.fatal.lock() {
            f.get_or_insert(e);
        }
        self.failed.store(true, Ordering::SeqCst);
        self.results.ready.notify_all();
    }

    /// Hashes, deduplicates, compresses and seals one batch in parallel; returns the ids in
    /// order.
    fn store_batch(&self, batch: &Batch) -> Result<Vec<BlobId>> {
        let bytes = batch.bytes();
        batch
            .ranges()
            .par_iter()
            .map(|range| {
                let chunk = &bytes[range.clone()];
                let id = self.repo.master().blob_id(chunk);
                self.writer.add_with_id(BlobKind::Data, id, chunk)?;
                Ok(id)
            })
            .collect()
    }

    /// Stores one input, batch by batch. Reading and cutting the next batch overlaps with
    /// hashing, compressing and sealing the last one and with the whole-file hash; all of it
    /// runs in the session's pool, so a thread that runs out of work takes some of another's.
    fn store_chunks<R: Read + Send>(
        &self,
        batcher: &mut StreamBatcher<R>,
        batch_bytes: usize,
    ) -> Result<std::io::Result<(Vec<BlobId>, Digest, u64)>> {
        let mut hasher = blake3::Hasher::new();
        let mut size = 0u64;
        let mut content = Vec::new();
        let mut current = match self.pool.install(|| batcher.next_batch(batch_bytes)) {
            Ok(b) => b,
            Err(e) => return Ok(Err(e)),
        };
        while let Some(batch) = current {
            if self.is_failed() {
                return Err(Error::Internal("backup aborted".into()));
            }
            let read = batch.bytes().len() as u64;
            size += read;
            self.counters.bytes_read.fetch_add(read, Ordering::Relaxed);
            self.progress.bytes_read(read);
            let (stored, next) = self.pool.join(
                || {
                    let (ids, _) = rayon::join(|| self.store_batch(&batch), || hasher.update(batch.bytes()));
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

    /// Stores a tree blob unless the repository has it.
    fn store_tree(&self, tree: &Tree) -> Result<BlobId> {
        let plain = tree.encode();
        if plain.len() > MAX_BLOB_LEN as usize {
            return Err(Error::InvalidArgument(format!(
                "a directory with {} entries encodes to {} bytes, over the {MAX_BLOB_LEN}-byte limit of a tree blob",
                tree.nodes.len(),
                plain.len(),
            )));
        }
        let id = self.writer.add(BlobKind::Tree, &plain)?;
        if let Some(r) = self.record {
            r.add_tree(&id, &plain)?;
        }
        Ok(id)
    }
}

/// Runs a backup of `source` into `repo`.
///
/// # Errors
/// Fatal errors only (store failures, a failing source command, bad options); unreadable files
/// are listed in [`BackupResult::unreadable`] instead.
pub fn run(
    repo: &Repository,
    source: BackupSource<'_>,
    opts: &BackupOptions,
    progress: &dyn Progress,
) -> Result<BackupResult> {
    let started = Instant::now();
    let (host_default, user) = host_and_user();
    let host = opts.host.clone().unwrap_or(host_default);
    let args = match &source {
        BackupSource::Paths(paths) => {
            let args = absolute_args(paths)?;
            if args.is_empty() {
                return Err(Error::InvalidArgument("nothing to back up: give at least one path".into()));
            }
            args
        }
        BackupSource::Reader { name, .. } | BackupSource::Command { name, .. } => {
            if name.is_empty() || name.contains('/') {
                return Err(Error::InvalidArgument(format!("stream name `{name}` must be a plain file name")));
            }
            Vec::new()
        }
    };
    let paths: Vec<String> = match &source {
        BackupSource::Reader { name, .. } | BackupSource::Command { name, .. } => vec![format!("/{name}")],
        BackupSource::Paths(_) => args.iter().map(|p| p.to_string_lossy().into_owned()).collect(),
    };
    let excludes = PathPatterns::new(&opts.excludes)?;

    // Announced before the index is loaded, held until the snapshot is written and checked:
    // a prune's sweep keeps what this backup may reuse (FORMAT.md §14a).
    let _session = repo.begin_session()?;
    let index = repo.load_index()?;
    let write_only = repo.master().is_write_only();
    let record = match opts.own_record.as_deref().or(repo.own_records()) {
        Some(dir) if write_only => Some(record::OwnRecord::open(dir, repo.master(), &host, &paths)?),
        _ => None,
    };
    let parent = if opts.force {
        None
    } else if let Some(p) = opts.parent {
        Some((p, repo.load_snapshot(p)?))
    } else if write_only {
        record.as_ref().and_then(record::OwnRecord::last)
    } else {
        let filter = SnapshotFilter { hosts: vec![host.clone()], ..Default::default() };
        repo.snapshots()?.into_iter().rev().find(|(_, s)| filter.matches(s) && s.paths == paths)
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
    let cutter = repo.cutter()?;
    let counters = Counters::default();
    let xattrs = XattrFilter { xattrs: !opts.no_xattrs, acls: !opts.no_acls, privileged: running_as_root() };
    let (Walked { root, subdirs, unreadable, changed, attributes_complete }, written, committed) =
        repo.write_blobs(&index, WriteOptions::with_uploads(opts.uploads), |writer| {
            let session = Session {
                repo,
                index: &index,
                writer,
                cutter,
                pool,
                counters: &counters,
                failed: AtomicBool::new(false),
                fatal: Mutex::new(None),
                results: Results::default(),
                progress,
                xattrs,
                record: record.as_ref(),
            };
            let old_root = parent.as_ref().and_then(|(_, s)| session.parent_tree(&s.tree));
            let walked = match source {
                BackupSource::Paths(_) => std::thread::scope(|scope| {
                    let (job_tx, job_rx) = bounded::<FileJob>(JOBS);
                    let s = &session;
                    for _ in 0..threads {
                        let jobs = job_rx.clone();
                        scope.spawn(move || s.worker(&jobs));
                    }
                    drop(job_rx);
                    let old = parent.as_ref().map(|(_, p)| p);
                    let result = walk(s, job_tx, opts, &args, old, old_root.as_ref(), excludes);
                    if result.is_err() {
                        s.failed.store(true, Ordering::SeqCst);
                        s.results.ready.notify_all();
                    }
                    result
                }),
                BackupSource::Reader { name, reader } => {
                    store_stream(&session, RunningStream::Reader(reader), &name).map(Walked::stream)
                }
                BackupSource::Command { name, argv } => {
                    store_stream(&session, RunningStream::start(&argv)?, &name).map(Walked::stream)
                }
            };
            let fatal = lock(&session.fatal)?.take();
            match fatal {
                Some(e) => Err(e),
                None => walked,
            }
        })?;
    let c = &counters;
    let summary = Summary {
        files_new: c.files_new.load(Ordering::Relaxed),
        files_changed: c.files_changed.load(Ordering::Relaxed),
        files_unmodified: c.files_unmodified.load(Ordering::Relaxed),
        dirs: c.dirs.load(Ordering::Relaxed),
        others: c.others.load(Ordering::Relaxed),
        total_bytes: c.total_bytes.load(Ordering::Relaxed),
        bytes_read: c.bytes_read.load(Ordering::Relaxed),
        bytes_in_holes: c.bytes_in_holes.load(Ordering::Relaxed),
        blobs_new: written.blobs_new,
        bytes_new: written.bytes_new,
        bytes_stored: written.bytes_uploaded,
        seconds: started.elapsed().as_secs_f64(),
        errors: unreadable.iter().map(ToString::to_string).collect(),
        changed: changed.iter().map(|p| p.to_string_lossy().into_owned()).collect(),
    };
    let postgres = match &opts.postgres {
        None => None,
        Some(cell) => Some(cell.get().cloned().ok_or_else(|| Error::SourceUnreadable {
            name: paths.first().cloned().unwrap_or_default(),
            cause: std::io::Error::other("the stream ended without the base backup's WAL positions"),
        })?),
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
        created: Some(jiff::Timestamp::now()),
        program: format!("cairn {}", env!("CARGO_PKG_VERSION")),
        postgres,
        subdirs,
        attributes: attributes_complete.then_some(AttributesRead::from(xattrs)),
    };
    let id = repo.save_snapshot(&snapshot, &committed)?;
    if let Some(r) = record {
        // The snapshot is stored: a record that cannot be written costs the next backup its
        // change detection, not this backup its success.
        let _ = r.commit(&id, &snapshot);
    }
    Ok(BackupResult { snapshot: id, parent: parent.map(|(id, _)| id), summary, unreadable, changed })
}

/// Saves a stream as the only file, `name`, of the root tree.
fn store_stream(session: &Session<'_>, mut stream: RunningStream<'_>, name: &str) -> Result<BlobId> {
    let mut batcher = StreamBatcher::new(session.cutter.clone(), &mut stream, None);
    let stored = match session.store_chunks(&mut batcher, STREAM_BATCH_BYTES) {
        Ok(Ok(s)) => s,
        Ok(Err(cause)) => {
            stream.abort();
            return Err(Error::SourceUnreadable { name: name.to_string(), cause });
        }
        Err(e) => {
            stream.abort();
            return Err(e);
        }
    };
    // The producer's exit status decides whether this becomes a snapshot at all.
    stream.finish()?;
    let (content, hash, size) = stored;
    let time = Time::from(jiff::Timestamp::now());
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
        xattrs: vec![],
        flags: 0,
        subdirs: Vec::new(),
    };
    session.store_tree(&Tree::new(vec![node]))
}
