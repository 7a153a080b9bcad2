//! The file workers: each takes changed or new files from the walker, stores a small one whole
//! on its own thread and a larger one batch by batch through the session's pool, and hands the
//! outcome back through [`Results`].

use super::*;
use crate::format::tree::Xattr;
use crate::foundation::{fsmeta, sparse};

/// The outcome of one file job.
#[derive(Debug, Clone)]
pub(super) enum FileOutcome {
    Done {
        content: Vec<BlobId>,
        hash: Digest,
        /// The size, times of what was read: those of the file when the read ended.
        stat: Stat,
        /// The file changed while it was read, every time it was read: what is stored is
        /// what the last read saw, which may mix two versions.
        changed: bool,
        /// Extended attributes and inode flags, read through the open file.
        extended: Extended,
    },
    Unreadable(String),
}

/// A file's extended attributes and inode flags, and why the attributes could not be read
/// (the file is stored without them).
#[derive(Debug, Clone, Default)]
pub(super) struct Extended {
    pub(super) xattrs: Vec<Xattr>,
    pub(super) flags: u32,
    pub(super) problem: Option<String>,
}

impl Extended {
    /// Reads what `filter` wants of `entry`; `flags` as already known.
    pub(super) fn read<Fd: std::os::fd::AsFd>(entry: fsmeta::Entry<'_, Fd>, filter: XattrFilter, flags: u32) -> Self {
        match fsmeta::read_xattrs(entry, filter) {
            Ok(pairs) => Extended {
                xattrs: pairs.into_iter().map(|(name, value)| Xattr { name, value }).collect(),
                flags,
                problem: None,
            },
            Err(e) => {
                Extended { xattrs: Vec::new(), flags, problem: Some(format!("extended attributes not read: {e}")) }
            }
        }
    }
}

/// What says whether a file changed: its size, modification and status-change times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stat {
    pub(super) size: u64,
    pub(super) mtime: Time,
    pub(super) ctime: Time,
}

impl Stat {
    fn of_open(st: &fsmeta::OpenStat) -> Self {
        let time = |(secs, nanos): (i64, u32)| Time { secs, nanos };
        Stat { size: st.size, mtime: time(st.mtime), ctime: time(st.ctime) }
    }

    pub(super) fn of(meta: &std::fs::Metadata) -> Self {
        let time = |secs: i64, nanos: i64| Time { secs, nanos: u32::try_from(nanos).unwrap_or(0) };
        Stat {
            size: meta.len(),
            mtime: time(meta.mtime(), meta.mtime_nsec()),
            ctime: time(meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// Reads of a file that keeps changing while it is read, after the first, before what the
/// last read saw is stored and the file is named (as `tar` and `borg` warn).
pub(super) const CHANGED_RETRIES: u32 = 2;

/// Results of file jobs, collected by the walker. Workers finish jobs in any order; the walker
/// takes them per directory, usually without blocking (it only waits when it has nothing else
/// to do), so a worker wakes it only when it is actually waiting.
#[derive(Default)]
pub(super) struct Results {
    pub(super) state: Mutex<ResultsState>,
    pub(super) ready: Condvar,
}

#[derive(Default)]
pub(super) struct ResultsState {
    pub(super) outcomes: HashMap<u64, FileOutcome>,
    /// The walker sleeps on `ready`; a put must wake it.
    pub(super) waiting: bool,
}

impl Results {
    pub(super) fn put(&self, id: u64, outcome: FileOutcome) {
        let wake = match self.state.lock() {
            Ok(mut s) => {
                s.outcomes.insert(id, outcome);
                s.waiting
            }
            Err(_) => true,
        };
        if wake {
            self.ready.notify_all();
        }
    }

    /// Whether every job of `ids` has its result.
    pub(super) fn all_done(&self, mut ids: impl Iterator<Item = u64>) -> Result<bool> {
        let s = lock(&self.state)?;
        Ok(ids.all(|id| s.outcomes.contains_key(&id)))
    }

    /// Waits for job `id`; `keep` leaves the result for later waiters (hard links).
    pub(super) fn wait(&self, id: u64, keep: bool, failed: &dyn Fn() -> bool) -> Result<FileOutcome> {
        let mut s = lock(&self.state)?;
        loop {
            let found = if keep { s.outcomes.get(&id).cloned() } else { s.outcomes.remove(&id) };
            if let Some(o) = found {
                s.waiting = false;
                return Ok(o);
            }
            if failed() {
                s.waiting = false;
                return Err(Error::Internal("backup aborted".into()));
            }
            s.waiting = true;
            s = self
                .ready
                .wait_timeout(s, std::time::Duration::from_millis(200))
                .map_err(|_| Error::Internal("a backup thread panicked".into()))?
                .0;
        }
    }
}

/// A changed or new file for the workers.
pub(super) struct FileJob {
    pub(super) id: u64,
    pub(super) path: PathBuf,
    /// What the walker's `lstat` saw.
    pub(super) stat: Stat,
}

/// Files up to this size (by their `lstat`) are read with one `read` into the worker's own
/// buffer, then chunked, hashed, sealed and hashed whole on the worker's thread: handing a
/// file this small to the rayon pool costs more in thread wake-ups than its bytes cost to
/// store, and the workers already keep every core busy with different files. One maximal
/// chunk, so at most a few chunks per file; larger files go through [`StreamBatcher`].
pub(super) const INLINE_MAX: u64 = 1 << 20;

/// A worker's reusable buffers.
#[derive(Default)]
pub(super) struct WorkerBuffers {
    /// For files up to [`INLINE_MAX`]: grows to the largest such file plus one byte, once.
    pub(super) small: Vec<u8>,
    /// A batch buffer of [`StreamBatcher`], for larger files.
    pub(super) batches: Vec<Vec<u8>>,
}

impl WorkerBuffers {
    /// Keeps the largest of a batcher's buffers for the next file. A second one (up to a whole
    /// batch plus a maximal chunk) is needed only while a file longer than a batch is read;
    /// two held idle by every worker between such files cost more memory than allocating the
    /// second again costs time.
    pub(super) fn keep_batch_buffer(batches: &mut Vec<Vec<u8>>, mut buffers: Vec<Vec<u8>>) {
        buffers.sort_unstable_by_key(|b| std::cmp::Reverse(b.capacity()));
        buffers.truncate(1);
        *batches = buffers;
    }
}

/// Reads `file`, expected to hold `size` bytes, into `buf` with as few reads as it takes to see
/// its end: one of `size + 1` bytes and one more that returns nothing. Returns the bytes read
/// and whether that was the whole file (false when it holds more than `size + 1` bytes now).
pub(super) fn read_small(file: &mut impl Read, buf: &mut Vec<u8>, size: u64) -> std::io::Result<(usize, bool)> {
    let want = usize::try_from(size).map_or(usize::MAX, |s| s.saturating_add(1));
    if buf.len() < want {
        // Exactly the size needed (no doubling), zeroing only the new part.
        buf.reserve_exact(want - buf.len());
        buf.resize(want, 0);
    }
    let mut len = 0;
    while len < want {
        match file.read(&mut buf[len..want]) {
            Ok(0) => return Ok((len, true)),
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((len, false))
}

impl Session<'_> {
    /// Reads and stores one file, checking it did not change while it was read: its size and
    /// times when the read ends must be those it had when the read began (at first, what the
    /// walker saw). A file that changed is read again, up to [`CHANGED_RETRIES`] times; if it
    /// keeps changing, what the last read saw is stored and the outcome says so.
    pub(super) fn store_file(&self, path: &Path, walked: Stat, buffers: &mut WorkerBuffers) -> Result<FileOutcome> {
        let unreadable = |e: std::io::Error| Ok(FileOutcome::Unreadable(e.to_string()));
        let mut before = walked;
        let mut attempt = 0;
        loop {
            let file = match std::fs::File::open(path) {
                Ok(f) => f,
                Err(e) => return unreadable(e),
            };
            let (content, hash, read) = match self.read_once(&file, before.size, buffers)? {
                Ok(r) => r,
                Err(e) => return unreadable(e),
            };
            // One statx for both the change check and the inode flags.
            let (after, flags) = match fsmeta::stat_open(&file) {
                Ok(st) => (Stat::of_open(&st), st.flags),
                Err(e) => return unreadable(e),
            };
            let consistent = after == before && read == after.size;
            if consistent || attempt == CHANGED_RETRIES {
                return Ok(FileOutcome::Done {
                    content,
                    hash,
                    stat: Stat { size: read, ..after },
                    changed: !consistent,
                    extended: Extended::read(fsmeta::Entry::Open(&file), self.xattrs, flags),
                });
            }
            attempt += 1;
            before = after;
        }
    }

    /// Reads and stores one file once: a small one whole and on this thread ([`INLINE_MAX`]),
    /// a larger one batch by batch through the rayon pool ([`Session::store_chunks`]).
    fn read_once(
        &self,
        mut file: &std::fs::File,
        size: u64,
        buffers: &mut WorkerBuffers,
    ) -> Result<std::io::Result<(Vec<BlobId>, Digest, u64)>> {
        if size <= INLINE_MAX {
            let (len, whole) = match read_small(&mut file, &mut buffers.small, size) {
                Ok(r) => r,
                Err(e) => return Ok(Err(e)),
            };
            let data = &buffers.small[..len];
            if whole {
                let (content, hash) = self.store_inline(data)?;
                return Ok(Ok((content, hash, len as u64)));
            }
            // The file grew since its size was taken: what was read starts the stream.
            self.store_read(data.chain(file), None, &mut buffers.batches)
        } else {
            match sparse::has_holes(file, size) {
                Ok(true) => {}
                Ok(false) => return self.store_read(file, Some(size), &mut buffers.batches),
                Err(e) => return Ok(Err(e)),
            }
            // Holes are chunked as the zeros they read as, without reading them.
            let mut reader = sparse::SparseReader::new(file);
            let outcome = self.store_read(&mut reader, Some(size), &mut buffers.batches);
            let holes = reader.hole_bytes();
            self.counters.bytes_read.fetch_sub(holes, Ordering::Relaxed);
            self.counters.bytes_in_holes.fetch_add(holes, Ordering::Relaxed);
            outcome
        }
    }

    /// Stores what `source` holds (`size` bytes, when known) batch by batch through the pool,
    /// with a file worker's batch buffers.
    pub(super) fn store_read<R: Read + Send>(
        &self,
        source: R,
        size: Option<u64>,
        batches: &mut Vec<Vec<u8>>,
    ) -> Result<std::io::Result<(Vec<BlobId>, Digest, u64)>> {
        let mut batcher = StreamBatcher::with_buffers(self.cutter.clone(), source, size, std::mem::take(batches));
        let outcome = self.store_chunks(&mut batcher, FILE_BATCH_BYTES);
        WorkerBuffers::keep_batch_buffer(batches, batcher.into_buffers());
        outcome
    }

    /// Stores a whole small file held in memory, sequentially on the calling thread: the same
    /// chunks, ids and whole-file hash [`Session::store_chunks`] computes, without the pool.
    pub(super) fn store_inline(&self, data: &[u8]) -> Result<(Vec<BlobId>, Digest)> {
        let read = data.len() as u64;
        self.counters.bytes_read.fetch_add(read, Ordering::Relaxed);
        self.progress.bytes_read(read);
        let mut content = Vec::with_capacity(1);
        for (offset, len) in self.cutter.split(data) {
            let chunk = &data[offset..offset + len];
            let id = self.repo.master().blob_id(chunk);
            self.writer.add_with_id(BlobKind::Data, id, chunk)?;
            content.push(id);
        }
        Ok((content, Digest(*blake3::hash(data).as_bytes())))
    }

    pub(super) fn worker(&self, jobs: &Receiver<FileJob>) {
        let mut buffers = WorkerBuffers::default();
        for job in jobs {
            if self.is_failed() {
                self.results.put(job.id, FileOutcome::Unreadable("backup aborted".into()));
                continue;
            }
            match self.store_file(&job.path, job.stat, &mut buffers) {
                Ok(outcome) => {
                    if let FileOutcome::Done { stat, .. } = &outcome {
                        self.progress.file_done(&job.path, stat.size);
                    }
                    self.results.put(job.id, outcome);
                }
                Err(e) => {
                    self.fail(e);
                    self.results.put(job.id, FileOutcome::Unreadable("backup aborted".into()));
                }
            }
        }
    }
}
