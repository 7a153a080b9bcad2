//! Restore fetching and writing: trees a level at a time, then data blobs grouped by pack in
//! coalesced ranged requests, downloaded side by side and decrypted and written by the pool's
//! threads.

use super::*;
use crate::foundation::crypto::SealKey;
use crate::repository::store::batch::{self, Flow};

/// Ranges of one pack closer than this are fetched in one request.
pub(super) const COALESCE_GAP: u64 = 1 << 20;
/// Largest ranged request for trees from a remote store, and the bytes fetched with the root
/// tree ([`fetch_window`]): half a default pack (16 MiB) and the overshoot of its last chunk.
/// Trees are fetched a level at a time and each level waits for its slowest request, so few
/// large requests beat many small ones.
pub(super) const REMOTE_TREE_REQUEST: u64 = 9 << 20;
/// Largest ranged request to a local store, where a request costs no round trip: each restore
/// thread holds a buffer this large.
pub(super) const LOCAL_MAX_REQUEST: u64 = 2 << 20;

/// The largest ranged request for trees worth making to `repo`'s store.
pub(super) fn tree_request(repo: &Repository) -> u64 {
    if repo.store().is_remote() { REMOTE_TREE_REQUEST } else { LOCAL_MAX_REQUEST }
}

/// Loads every tree below `root` before planning. The trees just before the root in its pack
/// come with the root's own request ([`fetch_window`]); for a new snapshot that is most of
/// them. The others are fetched a level of the hierarchy at a time, as data blobs are:
/// grouped by pack, neighbours coalesced into one ranged request, the requests side by side.
/// A restore from a distant store then waits a round trip per level at most, never one per
/// directory (a 45 000-file tree has 2 250 directories in 7 levels). (The trees are held until
/// the plan is made; the plan itself holds every file's node, so this does not change how
/// memory grows.) A tree that fails to load is left out, and the planner's own load reports
/// it where it is needed.
pub(super) fn prefetch_trees(
    repo: &Repository,
    index: &Index,
    root: Option<BlobId>,
    pool: &rayon::ThreadPool,
) -> HashMap<BlobId, Tree> {
    let mut trees: HashMap<BlobId, Tree> = HashMap::new();
    let window = root.and_then(|id| fetch_window(repo, index, &id));
    let mut level: Vec<BlobId> = root.into_iter().collect();
    while !level.is_empty() {
        let loaded = pool.install(|| load_trees(repo, index, &level, window.as_ref()));
        let mut next = Vec::new();
        for (id, tree) in loaded {
            next.extend(tree.nodes.iter().filter(|n| n.kind == NodeKind::Dir).filter_map(|n| n.subtree));
            trees.insert(id, tree);
        }
        next.sort_unstable();
        next.dedup();
        next.retain(|id| !trees.contains_key(id));
        level = next;
    }
    trees
}

/// Bytes of a pack fetched ahead: the [`tree_request`] bytes that end with the root tree.
pub(super) struct Window {
    pub(super) pack: u32,
    pub(super) start: u64,
    pub(super) data: bytes::Bytes,
}

impl Window {
    /// The sealed bytes of `e`, if the window holds them.
    pub(super) fn get(&self, e: &IndexEntry) -> Option<&[u8]> {
        if e.pack() != self.pack {
            return None;
        }
        let from = usize::try_from(u64::from(e.offset).checked_sub(self.start)?).ok()?;
        self.data.get(from..from.checked_add(e.length as usize)?)
    }
}

/// Fetches the root tree with the bytes before it in its pack. A backup writes a directory's
/// trees before the directory's own (the root last), so the trees of a snapshot's new and
/// changed directories sit just before its root: with them in hand, the levels below wait for
/// no round trip at all (a 45 000-file tree's 5 MiB of trees arrive in one request). `None` if
/// the root is not in the index or the read fails (the levels are then fetched as usual).
pub(super) fn fetch_window(repo: &Repository, index: &Index, root: &BlobId) -> Option<Window> {
    let e = index.get(root)?;
    let end = u64::from(e.offset) + u64::from(e.length);
    let start = end.saturating_sub(tree_request(repo)).min(u64::from(e.offset));
    let key = ObjectKey::new(ObjectKind::Pack, index.pack(e).id.0);
    let data = repo.store().get_range_cacheable(&key, start..end).ok()?;
    Some(Window { pack: e.pack(), start, data })
}

/// Opens and decodes one tree from its sealed bytes.
pub(super) fn open_tree(repo: &Repository, index: &Index, e: &IndexEntry, sealed: &[u8]) -> Option<(BlobId, Tree)> {
    let plain = repo.open_entry(index, e, sealed).ok()?;
    Some((e.id, Tree::decode(&e.id, &plain).ok()?))
}

/// Fetches and decodes the trees `ids` (distinct): those in `window` from it, the others in as
/// few ranged requests as [`coalesce`] allows, side by side. Trees that cannot be read are left
/// out.
pub(super) fn load_trees(
    repo: &Repository,
    index: &Index,
    ids: &[BlobId],
    window: Option<&Window>,
) -> Vec<(BlobId, Tree)> {
    let mut by_pack: HashMap<u32, Vec<&IndexEntry>> = HashMap::new();
    let mut held: Vec<(&IndexEntry, &[u8])> = Vec::new();
    for e in ids.iter().filter_map(|id| index.get(id)) {
        match window.and_then(|w| w.get(e)) {
            Some(sealed) => held.push((e, sealed)),
            None => by_pack.entry(e.pack()).or_default().push(e),
        }
    }
    let mut out: Vec<(BlobId, Tree)> =
        held.par_iter().filter_map(|(e, sealed)| open_tree(repo, index, e, sealed)).collect();
    if let Some(w) = window
        && out.len() < held.len()
    {
        // A cached window that fails is dropped; its trees are read one by one below.
        let key = ObjectKey::new(ObjectKind::Pack, index.packs()[w.pack as usize].id.0);
        repo.store().uncache_range(&key, w.start..w.start + w.data.len() as u64);
    }
    let mut groups = Vec::new();
    for entries in by_pack.values_mut() {
        entries.sort_by_key(|e| e.offset);
        groups.extend(coalesce(entries, tree_request(repo)));
    }
    let fetched: Mutex<Vec<(BlobId, Tree)>> = Mutex::new(Vec::new());
    let fetch = |group: &&[&IndexEntry]| -> Vec<(BlobId, Tree)> {
        let Some(first) = group.first() else { return Vec::new() };
        let key = ObjectKey::new(ObjectKind::Pack, index.pack(first).id.0);
        let range = span(group);
        let start = range.start;
        let Ok(data) = repo.store().get_range_cacheable(&key, range.clone()) else { return Vec::new() };
        let trees: Vec<(BlobId, Tree)> = group
            .iter()
            .filter_map(|e| {
                let from = usize::try_from(u64::from(e.offset) - start).ok()?;
                let sealed = data.get(from..from.checked_add(e.length as usize)?)?;
                open_tree(repo, index, e, sealed)
            })
            .collect();
        if trees.len() < group.len() {
            // Trees left out are read one by one later; a cached copy that failed goes.
            repo.store().uncache_range(&key, range);
        }
        trees
    };
    batch::for_each(&groups, batch::in_flight(repo.store().as_ref(), 0), fetch, |_, trees| {
        if let Ok(mut all) = fetched.lock() {
            all.extend(trees);
        }
        Flow::Continue
    });
    let mut fetched = fetched.into_inner().unwrap_or_default();
    out.append(&mut fetched);
    out
}

/// The blobs to fetch, grouped by pack number and sorted by offset.
pub(super) fn group_by_pack<'i>(
    index: &'i Index,
    blobs: &HashMap<BlobId, Vec<Target>>,
) -> Vec<(u32, Vec<&'i IndexEntry>)> {
    let mut by_pack: HashMap<u32, Vec<&IndexEntry>> = HashMap::new();
    for id in blobs.keys() {
        if let Some(e) = index.get(id) {
            by_pack.entry(e.pack()).or_default().push(e);
        }
    }
    let mut out: Vec<_> = by_pack.into_iter().collect();
    for (_, v) in &mut out {
        v.sort_by_key(|e| e.offset);
    }
    // Biggest packs first, so the last ones to finish are small.
    out.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
    out
}

thread_local! {
    /// A thread's buffer for the requests it reads and decodes itself (from a local store).
    static READ_BUFFER: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
    /// A decoding thread's decompression scratch, reused from blob to blob.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Splits one pack's entries (sorted by offset) into runs close enough together to be fetched
/// in one ranged request each, no larger than `max` (a blob larger than that is a run of its
/// own).
pub(super) fn coalesce<'e, 'i>(entries: &'e [&'i IndexEntry], max: u64) -> Vec<&'e [&'i IndexEntry]> {
    let mut groups = Vec::new();
    let mut i = 0;
    while i < entries.len() {
        let start = u64::from(entries[i].offset);
        let mut end = start + u64::from(entries[i].length);
        let mut j = i + 1;
        while j < entries.len() {
            let e = entries[j];
            let e_end = u64::from(e.offset) + u64::from(e.length);
            if u64::from(e.offset) > end + COALESCE_GAP || e_end - start > max {
                break;
            }
            end = end.max(e_end);
            j += 1;
        }
        groups.push(&entries[i..j]);
        i = j;
    }
    groups
}

/// The bytes of the pack a run of entries (sorted by offset) covers.
pub(super) fn span(group: &[&IndexEntry]) -> std::ops::Range<u64> {
    let start = group.first().map_or(0, |e| u64::from(e.offset));
    let end = group.iter().map(|e| u64::from(e.offset) + u64::from(e.length)).max().unwrap_or(start);
    start..end
}

/// What the restore threads share to write files.
pub(super) struct FileWriter<'a> {
    pub(super) plan: &'a Plan,
    pub(super) written: &'a AtomicU64,
    pub(super) progress: &'a dyn Progress,
    /// Set each file's metadata as soon as its content is written; `None` with --verify,
    /// which checks the content first.
    pub(super) metadata: Option<&'a Meta>,
    /// Extended attributes that could not be set.
    pub(super) warnings: &'a Mutex<Vec<Warning>>,
}

/// The open files of one pack's restore, by file number.
pub(super) type OpenFiles = HashMap<usize, File>;

impl FileWriter<'_> {
    /// Writes one blob's plaintext to every place it goes, leaving all-zero blocks as holes,
    /// and finishes each file it completes. On failure, returns why.
    pub(super) fn place(&self, files: &mut OpenFiles, id: &BlobId, plain: &[u8]) -> std::result::Result<(), String> {
        let mut failure = None;
        for t in self.plan.blobs.get(id).into_iter().flatten() {
            let f = &self.plan.files[t.file];
            let mut written = 0;
            for run in data_runs(plain, t.offset) {
                let file = match files.entry(t.file) {
                    std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                    std::collections::hash_map::Entry::Vacant(v) => match open_for_writing(&f.path) {
                        Ok(file) => v.insert(file),
                        Err(err) => {
                            failure = Some(format!("{}: {err}", f.path.display()));
                            break;
                        }
                    },
                };
                if let Err(err) = file.write_all_at(&plain[run.clone()], t.offset + run.start as u64) {
                    failure = Some(format!("{}: {err}", f.path.display()));
                    break;
                }
                written += run.len();
            }
            if written < plain.len() {
                // Holes (or a failed write, which fails the file anyway): `finish_file` sizes it.
                f.state.hole.store(true, Ordering::Relaxed);
            }
            self.written.fetch_add(written as u64, Ordering::Relaxed);
            self.progress.bytes_restored(written as u64);
            // The thread that places a file's last blob finishes it; the others' writes are
            // done by then (each counts down after its write).
            if f.state.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                let open = files.remove(&t.file);
                let finished = finish_file(&f.path, open, &f.node, &f.state, self.metadata);
                if finished.is_ok() {
                    self.progress.file_done(&f.path, f.node.size);
                }
                match finished {
                    Ok(None) => {}
                    Ok(Some(warning)) => {
                        if let Ok(mut w) = self.warnings.lock() {
                            w.push(Warning::at(&f.path, warning));
                        }
                    }
                    Err(err) => failure = Some(format!("{}: {err}", f.path.display())),
                }
            }
        }
        failure.map_or(Ok(()), Err)
    }
}

/// The file system block size holes are made of: a block of zeros in a restored file is left
/// unwritten (a hole) instead of written.
const HOLE_BLOCK: u64 = 4096;

/// The byte ranges of `plain`, which goes at `offset` in its file, that hold more than zeros:
/// the blob is cut at file offsets that are multiples of [`HOLE_BLOCK`], pieces of zeros are
/// left out and neighbouring pieces of data joined, so a blob without zeros is one write.
/// Skipping zeros is exact because every file is written fresh (what was in the way is removed
/// first) and unwritten ranges read as zeros.
fn data_runs(plain: &[u8], offset: u64) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        let piece_end = |start: usize| {
            let to_boundary = HOLE_BLOCK - (offset + start as u64) % HOLE_BLOCK;
            (start + usize::try_from(to_boundary).unwrap_or(usize::MAX)).min(plain.len())
        };
        // Skip pieces of zeros, then take pieces of data up to the next piece of zeros.
        while at < plain.len() {
            let end = piece_end(at);
            if plain[at..end].iter().any(|&b| b != 0) {
                break;
            }
            at = end;
        }
        if at >= plain.len() {
            return None;
        }
        let start = at;
        while at < plain.len() {
            let end = piece_end(at);
            if plain[at..end].iter().all(|&b| b == 0) {
                break;
            }
            at = end;
        }
        Some(start..at)
    })
}

/// Opens (creating when needed) a file to restore into, never following a symbolic link put
/// in its place.
pub(super) fn open_for_writing(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new().write(true).create(true).custom_flags(nix::libc::O_NOFOLLOW).open(path)
}

/// Completes a file whose content is all written: creates it if no blob was written (empty or
/// all holes), sizes it if it may end in a hole, and sets its metadata through the open file
/// (unless `metadata` is `None`), then closes it. Returns the extended attributes that could
/// not be set, as a warning.
pub(super) fn finish_file(
    path: &Path,
    open: Option<File>,
    node: &Node,
    state: &FileState,
    metadata: Option<&Meta>,
) -> std::io::Result<Option<String>> {
    let file = match open {
        Some(f) => f,
        None => open_for_writing(path)?,
    };
    if state.hole.load(Ordering::Relaxed) || node.content.is_empty() {
        file.set_len(node.size)?;
    }
    let mut warning = None;
    if let Some(meta) = metadata {
        // Ownership first: chown clears the set-id bits chmod then sets.
        if meta.is_root {
            std::os::unix::fs::fchown(&file, Some(node.uid), Some(node.gid))?;
        }
        file.set_permissions(std::fs::Permissions::from_mode(node.mode & 0o7777))?;
        warning = meta.set_xattrs(crate::foundation::fsmeta::Entry::Open(&file), node);
        filetime::set_file_handle_times(&file, Some(to_filetime(node.atime)), Some(to_filetime(node.mtime)))?;
    }
    state.finished.store(true, Ordering::Release);
    Ok(warning)
}

/// How the data phase fetches: ranged requests in flight, their largest size, and the threads
/// that decrypt, decompress and write what arrives.
#[derive(Debug, Clone, Copy)]
pub(super) struct Fetching {
    /// Download threads, each keeping one request in flight; 0: each decoding thread reads
    /// its own requests (a local store, where a read is a copy with no wait).
    pub(super) in_flight: usize,
    pub(super) max_request: u64,
    pub(super) decoders: usize,
}

/// Requests in flight by default from a remote store. A request waits a round trip before its
/// first byte, so keeping a distant store's throughput up takes the bytes of several side by
/// side: 8 × 16.5 MiB per 80 ms round trip is 1.7 GB/s, about what two cores decode.
const REMOTE_IN_FLIGHT: usize = 8;
/// Largest ranged request to a remote store: a default pack (16 MiB) and the overshoot of its
/// last chunk, so a restore reading whole packs makes one request per pack. For the same bytes
/// in flight, fewer and larger requests cost the server less: SeaweedFS spent 2.0 CPU-s serving
/// a 1 GiB restore in 4.5 MiB requests, 1.55 in 8.5 MiB and 1.25 in whole packs (and an S3
/// bill counts requests). Memory in flight is this times the requests in flight and the decoding
/// buffers (one per core, at most as many as the requests).
const REMOTE_MAX_REQUEST: u64 = (16 << 20) + (1 << 19);
/// Threads that read and decode by default for a local store: reads there are copies out of
/// the page cache or waits on a disk, which a second thread per core overlaps.
const LOCAL_THREADS: usize = 4;

impl Fetching {
    /// The defaults for `repo`'s store; `connections`, when not 0, sets the requests in flight
    /// (for a local store, the threads that each read and decode).
    pub(super) fn for_repo(repo: &Repository, connections: usize) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        let pick = |default| if connections == 0 { default } else { connections };
        if repo.store().is_remote() {
            Fetching { in_flight: pick(REMOTE_IN_FLIGHT), max_request: REMOTE_MAX_REQUEST, decoders: cores }
        } else {
            Fetching { in_flight: 0, max_request: LOCAL_MAX_REQUEST, decoders: pick(LOCAL_THREADS.max(cores)) }
        }
    }

    /// The buffers of a remote restore: one per download in flight and one per decoder, the
    /// decoders sharing no more than there are downloads. More decoding buffers than downloads
    /// pay only where decoding a pack takes longer than downloading one, and each may be
    /// `max_request` bytes (on 64 cores 16 buffers, not 72).
    fn buffers(self) -> usize {
        self.in_flight + self.decoders.clamp(1, self.in_flight.max(1))
    }
}

/// One pack's bytes, fetched and waiting for a decoder.
struct Fetched<'e, 'i> {
    /// Which of the packs (a position in the restore's list of them).
    pack: usize,
    /// The entries the bytes cover, sorted by offset.
    group: &'e [&'i IndexEntry],
    /// The bytes of the pack from the first entry's offset.
    buf: Vec<u8>,
}

/// Fetches the blobs `by_pack` lists (grouped by pack, sorted by offset) and writes them out.
///
/// From a remote store, downloads and decoding are separate stages: `fetching.in_flight`
/// threads each keep one coalesced ranged request going, into one of a fixed set of buffers,
/// and hand the bytes to `fetching.decoders` tasks on `pool`, which authenticate, decompress
/// and write them and give the buffer back. Round trips then overlap with decoding instead of
/// idling a thread that could decode, and memory is the buffers: `in_flight + decoders` of at
/// most `fetching.max_request` bytes. From a local store, each decoding task reads its own
/// requests, and the bytes it decodes are the ones it just read.
///
/// Blobs that cannot be fetched or opened are reported to `fail` with the reason; every other
/// blob is written.
pub(super) fn restore_data<'b, 'i>(
    repo: &Repository,
    index: &Index,
    by_pack: &'b [(u32, Vec<&'i IndexEntry>)],
    writer: &FileWriter<'_>,
    pool: &rayon::ThreadPool,
    fetching: Fetching,
    fail: &(dyn Fn(String, &[&IndexEntry]) + Sync),
) {
    // The packs' first requests, then their second ones, and so on: requests side by side
    // are then for different packs, mostly different files, and their writes do not queue on
    // one file's lock.
    let mut requests: Vec<(usize, usize, &[&IndexEntry])> = by_pack
        .iter()
        .enumerate()
        .flat_map(|(n, (_, entries))| {
            coalesce(entries, fetching.max_request).into_iter().enumerate().map(move |(k, g)| (k, n, g))
        })
        .collect();
    requests.sort_by_key(|&(k, n, _)| (k, n));
    let requests: Vec<(usize, &'b [&'i IndexEntry])> = requests.into_iter().map(|(_, n, g)| (n, g)).collect();
    // Every pack's key, or why it has none (a write-only key opens no pack): its blobs fail.
    let keys: Vec<(ObjectKey, std::result::Result<SealKey, String>)> = by_pack
        .iter()
        .filter_map(|(_, entries)| entries.first())
        .map(|e| {
            let pack = index.pack(e);
            let key =
                pack.seal.key(repo.master()).map_err(|e| Error::crypto(format!("pack {}", pack.id), e).to_string());
            (ObjectKey::new(ObjectKind::Pack, pack.id.0), key)
        })
        .collect();
    let keys = &keys;
    let decode_fetched = |mut f: Fetched<'_, '_>| {
        decode(repo, &keys[f.pack], f.group, &mut f.buf, writer, fail);
        f.buf
    };
    if fetching.in_flight == 0 {
        // Each thread reads its own requests into a buffer it keeps, and decodes what it read.
        batch::for_each(
            &requests,
            fetching.decoders,
            |&(pack, group)| {
                READ_BUFFER.with(|cell| {
                    let taken = cell.take();
                    cell.set(download(repo, &keys[pack].0, pack, group, taken, &mut |f| decode_fetched(f), fail));
                });
            },
            |_, ()| Flow::Continue,
        );
        return;
    }
    // The buffers ([`Fetching::buffers`]), all free at first. A download takes a free one, hands
    // it over full and takes another; a decoder gives each back. Either channel can hold them
    // all, so no send waits.
    let buffers = fetching.buffers();
    let (free_tx, free_rx) = crossbeam_channel::bounded::<Vec<u8>>(buffers);
    for _ in 0..buffers {
        let _ = free_tx.send(Vec::new());
    }
    let (full_tx, full_rx) = crossbeam_channel::bounded::<Fetched<'b, 'i>>(buffers);
    std::thread::scope(|s| {
        let free = (free_tx.clone(), free_rx.clone());
        s.spawn(move || {
            let (free_tx, free_rx) = free;
            let fetch = |&(pack, group): &(usize, &'b [&'i IndexEntry])| {
                let buf = free_rx.recv().unwrap_or_default();
                let mut deliver = |f: Fetched<'b, 'i>| {
                    let _ = full_tx.send(f);
                    free_rx.recv().unwrap_or_default()
                };
                let left = download(repo, &keys[pack].0, pack, group, buf, &mut deliver, fail);
                let _ = free_tx.send(left);
            };
            batch::for_each(&requests, fetching.in_flight, fetch, |_, ()| Flow::Continue);
            // The decoders stop when the downloads are done and the queue is empty.
            drop(full_tx);
        });
        pool.scope(|s| {
            for _ in 0..fetching.decoders.max(1) {
                let (full_rx, free_tx) = (full_rx.clone(), free_tx.clone());
                s.spawn(move |_| {
                    for fetched in full_rx {
                        let _ = free_tx.send(decode_fetched(fetched));
                    }
                });
            }
        });
    });
}

/// Fetches one coalesced run of a pack's entries into `buf` and hands it to `deliver`, which
/// gives back a buffer for the next request. A merged request can fail for one bad part (a
/// truncated pack): it is then retried blob by blob, so the intact ones are still restored.
fn download<'e, 'i>(
    repo: &Repository,
    key: &ObjectKey,
    pack: usize,
    group: &'e [&'i IndexEntry],
    mut buf: Vec<u8>,
    deliver: &mut dyn FnMut(Fetched<'e, 'i>) -> Vec<u8>,
    fail: &(dyn Fn(String, &[&IndexEntry]) + Sync),
) -> Vec<u8> {
    match repo.store().get_range_into(key, span(group), &mut buf) {
        Ok(()) => deliver(Fetched { pack, group, buf }),
        Err(_) if group.len() > 1 => {
            for single in group.chunks(1) {
                buf = download(repo, key, pack, single, buf, deliver, fail);
            }
            buf
        }
        Err(e) => {
            fail(format!("{key}: {e}"), group);
            buf
        }
    }
}

/// The first second chance for blobs the first pass could not fetch or open (`failed`, with
/// why): each is read where the repository's index objects put it if the local cache's table
/// put it elsewhere ([`Repository::read_past_the_table`]), or else again from the store
/// ([`Repository::read_entry`], which reads a blob that fails authentication up to three more
/// times), pack by pack. Once one blob of a pack
/// fails again, the pack's bytes are taken to be damaged and its other blobs are not read
/// again. Returns what still fails.
pub(super) fn read_again(
    repo: &Repository,
    index: &Index,
    failed: Vec<(IndexEntry, String)>,
    writer: &FileWriter<'_>,
) -> Vec<(IndexEntry, String)> {
    let mut still = Vec::new();
    let mut damaged: std::collections::HashSet<u32> = std::collections::HashSet::new();
    let mut files = OpenFiles::new();
    for (e, why) in failed {
        // Where the repository's index objects put it, if the local cache's table put it
        // elsewhere (a damaged table).
        if let Some(plain) = repo.read_past_the_table(index, &e) {
            if let Err(reason) = writer.place(&mut files, &e.id, &plain) {
                still.push((e, reason));
            }
            continue;
        }
        if damaged.contains(&e.pack()) {
            still.push((e, why));
            continue;
        }
        match repo.read_entry(index, &e) {
            Ok(plain) => {
                if let Err(reason) = writer.place(&mut files, &e.id, &plain) {
                    still.push((e, reason));
                }
            }
            Err(_) => {
                damaged.insert(e.pack());
                still.push((e, why));
            }
        }
    }
    still
}

/// The second chance for blobs the first pass could not fetch or open (`failed`, with why): a
/// pack with parity (FORMAT.md §10a) is read whole, rebuilt if damaged, and the blobs are
/// opened from it. What still fails goes to `fail`, with the first reason and the parity's.
pub(super) fn restore_from_parity(
    repo: &Repository,
    index: &Index,
    failed: Vec<(IndexEntry, String)>,
    writer: &FileWriter<'_>,
    fail: &dyn Fn(String, &[&IndexEntry]),
) {
    let mut by_pack: HashMap<u32, Vec<(IndexEntry, String)>> = HashMap::new();
    for (e, why) in failed {
        by_pack.entry(e.pack()).or_default().push((e, why));
    }
    for group in by_pack.into_values() {
        let Some((first, _)) = group.first() else { continue };
        let pack = index.pack(first).id;
        let bytes = match repo.rebuild_pack(&pack) {
            Ok(crate::repository::parity::Rebuilt::Intact(b)) => b.to_vec(),
            Ok(crate::repository::parity::Rebuilt::Repaired { pack, .. }) => pack,
            Err(e) => {
                for (entry, why) in &group {
                    fail(format!("{why}; {e}"), &[entry]);
                }
                continue;
            }
        };
        let mut files = OpenFiles::new();
        for (e, why) in &group {
            let range = e.offset as usize..(e.offset as usize + e.length as usize);
            let placed = match bytes.get(range).map(|sealed| repo.open_entry(index, e, sealed)) {
                Some(Ok(plain)) => writer.place(&mut files, &e.id, &plain),
                Some(Err(err)) => Err(format!("{why}; rebuilt: {err}")),
                None => Err(format!("{why}; rebuilt pack too short")),
            };
            if let Err(reason) = placed {
                fail(reason, &[e]);
            }
        }
    }
}

/// Opens each blob of `group` from the fetched bytes `buf` and writes it where it goes.
fn decode(
    repo: &Repository,
    (key, subkey): &(ObjectKey, std::result::Result<SealKey, String>),
    group: &[&IndexEntry],
    buf: &mut [u8],
    writer: &FileWriter<'_>,
    fail: &(dyn Fn(String, &[&IndexEntry]) + Sync),
) {
    let Some(start) = group.first().map(|e| u64::from(e.offset)) else { return };
    let subkey = match subkey {
        Ok(k) => k,
        Err(reason) => return fail(reason.clone(), group),
    };
    let mut files = OpenFiles::new();
    SCRATCH.with(|cell| {
        let mut scratch = cell.borrow_mut();
        for e in group {
            let from = (u64::from(e.offset) - start) as usize;
            let Some(sealed) = buf.get_mut(from..from + e.length as usize) else {
                fail(format!("{key}: short read"), std::slice::from_ref(e));
                continue;
            };
            // The kind from the index: a chunk whose bytes equal a tree's encoding shares
            // its blob.
            let opened = crate::format::blob::open_in_place(
                repo.master(),
                subkey,
                e.kind(),
                e.id,
                e.codec(),
                e.raw_len,
                sealed,
                &mut scratch,
            );
            match opened {
                Ok(plain) => {
                    if let Err(why) = writer.place(&mut files, &e.id, plain) {
                        fail(why, std::slice::from_ref(e));
                    }
                }
                Err(err) => fail(format!("{key}: {err}"), std::slice::from_ref(e)),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoders_share_no_more_buffers_than_there_are_downloads() {
        let remote = |in_flight, decoders| Fetching { in_flight, max_request: REMOTE_MAX_REQUEST, decoders };
        assert_eq!(remote(8, 2).buffers(), 10, "two cores: a buffer per download and per decoder");
        assert_eq!(remote(8, 64).buffers(), 16, "many cores: no more decoding buffers than downloads");
        assert_eq!(remote(1, 0).buffers(), 2, "always one to decode into while the download refills");
    }

    fn runs(plain: &[u8], offset: u64) -> Vec<std::ops::Range<usize>> {
        data_runs(plain, offset).collect()
    }

    #[test]
    fn zero_blocks_are_left_out_and_data_joined() {
        let mut plain = vec![0u8; 5 * 4096];
        plain[4096 + 10] = 1; // block 1
        plain[2 * 4096] = 2; // block 2, joined to block 1
        plain[4 * 4096 + 4095] = 3; // block 4, after a block of zeros
        assert_eq!(runs(&plain, 0), vec![4096..3 * 4096, 4 * 4096..5 * 4096]);
        assert_eq!(runs(&vec![0u8; 3 * 4096], 0), Vec::<std::ops::Range<usize>>::new());
        assert_eq!(runs(b"data", 7), vec![0..4]);
    }

    #[test]
    fn blocks_follow_the_file_not_the_blob() {
        // The blob starts 100 bytes before a block boundary of the file: its first piece is
        // those 100 bytes, the zeros after them fill whole blocks of the file.
        let mut plain = vec![0u8; 100 + 2 * 4096 + 50];
        plain[0] = 9;
        plain[100 + 2 * 4096 + 49] = 9;
        assert_eq!(runs(&plain, 4096 - 100), vec![0..100, 100 + 2 * 4096..plain.len()]);
    }

    #[test]
    fn the_runs_rebuild_the_blob() {
        let mut rng = 0x1234_5678_u64;
        for _ in 0..200 {
            rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let len = (rng >> 40) as usize % 20_000;
            let offset = (rng >> 20) % 10_000;
            let plain: Vec<u8> = (0..len)
                .map(|i| if (i / 3000 + (rng as usize >> 5)).is_multiple_of(3) { (i % 251) as u8 | 1 } else { 0 })
                .collect();
            let mut rebuilt = vec![0u8; len];
            for r in data_runs(&plain, offset) {
                rebuilt[r.clone()].copy_from_slice(&plain[r]);
            }
            assert_eq!(rebuilt, plain);
        }
    }
}
