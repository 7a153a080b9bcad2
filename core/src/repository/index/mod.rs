//! The in-memory blob index: which pack holds each blob, and where.
//!
//! The index is a compact table: one fixed-size [`IndexEntry`] per blob (48 bytes) in 256
//! vectors split on the id's first byte, each sorted by id; a directory of where each second
//! byte starts in them (so a lookup binary-searches a handful of entries); and a table of packs
//! the entries point into by number. No boxed entries and no per-blob map nodes: ten million
//! blobs take 480 MB.
//!
//! [`Index::load`] builds it from many index objects at once (their format is
//! [`crate::format::index`]): objects are opened side by side under a memory budget and decoded
//! straight into the reserved buckets, which are then sorted in place on all cores.
//!
//! With a local cache, [`Index::load_cached`] keeps the finalized table in a file there and maps
//! it (`cached.rs`, the file layout in `table.rs`): a later open decodes only the index objects written since, into the same
//! in-memory form beside the mapped table, and memory holds the pack table and those new
//! entries, not 48 bytes for every blob.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::{Condvar, Mutex, PoisonError};

use rayon::prelude::*;

use crate::format::blob::BlobKind;
use crate::format::index::{IndexFile, check_index_version, check_public_listed, pack_head};
use crate::format::pack::{ENTRY_LEN, PackEntry, PackSeal};

mod cached;
mod table;

use crate::foundation::codec::Cursor;
use crate::foundation::error::{Error, Result};
use crate::foundation::id::{BlobId, IndexId, PackId};
use crate::repository::store::batch::{self, Flow};
use table::{BUCKETS, DIRECTORY_WORDS, PACK_MASK, Table};
pub use table::{IndexEntry, PackRef};

/// Bytes of index objects being fetched, opened or decoded at once while loading (each object
/// counts twice until it is opened: its stored bytes and its plaintext). One object is always
/// allowed, whatever its size.
const LOAD_BUDGET: u64 = 64 << 20;

/// Index objects loaded side by side (through the store's [`batch`] mechanism): enough to hide
/// a remote store's latency; the budget above, not this, bounds the memory.
const LOAD_THREADS: usize = 8;

/// The in-memory index.
#[derive(Debug, Default, Clone)]
pub struct Index {
    packs: Vec<PackRef>,
    pack_numbers: HashMap<PackId, u32>,
    /// The entries, by the first byte of their id ([`BUCKETS`] vectors once any was added):
    /// ids are keyed BLAKE3, so each holds about 1/256 of them. Entries go straight into their
    /// bucket as they are decoded; sorting is then 256 small sorts, side by side, each mostly
    /// in cache, with no pass over the whole table to partition it.
    buckets: Vec<Vec<IndexEntry>>,
    /// After [`Index::finalize`]: `directory[257·b + s]` is where, in bucket `b`, the ids whose
    /// second byte is `s` start (`257·b + 256`: the bucket's length), so a lookup
    /// binary-searches about len/65 536 entries.
    directory: Vec<u32>,
    sorted: bool,
    /// The index objects the table was built from (empty for a table built by hand): what a
    /// writer compares with the objects stored later, to tell whether a prune rewrote the
    /// index meanwhile.
    loaded_from: Vec<IndexId>,
    /// After [`Index::finalize`]: the other copies of tree blobs stored more than once (each
    /// tree is written to two packs), for readers to fall back on when the first is damaged.
    /// Data blobs stored twice (by racing backups) are not kept here: the table stays one
    /// entry per blob. Sorted by id: 48 bytes a copy, no map overhead.
    alternates: Vec<IndexEntry>,
    /// The mapped table of the local cache, if the index was opened from one: its packs are the
    /// first of `packs`, and the buckets above hold only blobs it does not (after
    /// [`Index::finalize`]).
    base: Option<Arc<Table>>,
}

/// A lookup in one sorted bucket with its directory (empty: search the whole bucket).
fn find<'a>(bucket: &'a [IndexEntry], directory: &[u32], id: &BlobId) -> Option<&'a IndexEntry> {
    let second = usize::from(id.0.0[1]);
    let run = match (directory.get(second), directory.get(second + 1)) {
        (Some(&lo), Some(&hi)) => bucket.get(lo as usize..hi as usize)?,
        _ => bucket,
    };
    run.binary_search_by(|e| e.id.cmp(id)).ok().map(|i| &run[i])
}

/// Sorts a bucket and drops duplicate entries, and those of blobs already in `base` (a mapped
/// table's bucket and its directory), keeping of several the one in the pack numbered first;
/// hands back the dropped entries of trees in other packs (second copies).
fn sort_bucket(bucket: &mut Vec<IndexEntry>, base: Option<(&[IndexEntry], &[u32])>) -> Vec<IndexEntry> {
    let order = |a: &IndexEntry, b: &IndexEntry| {
        prefix(&a.id).cmp(&prefix(&b.id)).then_with(|| a.id.cmp(&b.id)).then(a.pack().cmp(&b.pack()))
    };
    // A bucket sorted alone (building a table through spill files) is large: on all cores.
    if bucket.len() > 1 << 16 {
        bucket.par_sort_unstable_by(order)
    } else {
        bucket.sort_unstable_by(order)
    }
    let mut copies = Vec::new();
    bucket.dedup_by(|later, first| {
        let same = later.id == first.id;
        if same && later.kind() == BlobKind::Tree && later.pack() != first.pack() {
            copies.push(*later);
        }
        same
    });
    if let Some((old, directory)) = base {
        bucket.retain(|e| match find(old, directory, &e.id) {
            None => true,
            Some(first) => {
                if e.kind() == BlobKind::Tree && first.pack() != e.pack() {
                    copies.push(*e);
                }
                false
            }
        });
    }
    copies
}

/// Fetches and opens `objects` side by side, largest first, with at most [`LOAD_BUDGET`] bytes
/// of them in memory at once, handing each plaintext to `decode` (called one at a time per
/// object, from several threads) and freeing it after.
///
/// # Errors
/// The first error of `open` or `decode`.
fn for_each_object<F, D>(objects: &[(IndexId, u64)], open: &F, decode: D) -> Result<()>
where
    F: Fn(&IndexId) -> Result<Vec<u8>> + Sync,
    D: Fn(&IndexId, &[u8]) -> Result<()> + Sync,
{
    let mut order: Vec<(IndexId, u64)> = objects.to_vec();
    // Largest first: their plaintexts are in memory while the table is still small.
    order.sort_by_key(|o| std::cmp::Reverse(o.1));
    let budget = Budget { used: Mutex::new(0), freed: Condvar::new(), limit: LOAD_BUDGET };
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    let load_one = |&(id, size): &(IndexId, u64)| -> Result<()> {
        let mut held = budget.acquire(size.saturating_mul(2));
        let plain = open(&id)?;
        held.keep(size);
        decode(&id, &plain)
    };
    batch::for_each(&order, LOAD_THREADS, load_one, |_, loaded| match loaded {
        Ok(()) => Flow::Continue,
        Err(e) => {
            failure.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert(e);
            Flow::Stop
        }
    });
    match failure.into_inner().unwrap_or_else(PoisonError::into_inner) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The run of `id`'s entries in `alternates` (sorted by id).
fn copies_of<'a>(alternates: &'a [IndexEntry], id: &BlobId) -> &'a [IndexEntry] {
    let from = alternates.partition_point(|e| e.id < *id);
    let to = from + alternates[from..].partition_point(|e| e.id == *id);
    &alternates[from..to]
}

/// The first 8 bytes of an id as a big-endian number: the same order as the whole id's.
fn prefix(id: &BlobId) -> u64 {
    let b = &id.0.0;
    u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

impl Index {
    /// Loads index objects into one index: `open` fetches, verifies and decrypts one object
    /// and returns its plaintext; `objects` names them with their stored sizes.
    ///
    /// Several objects are opened side by side, largest first, with at most 64 MiB
    /// bytes of them in memory at once; each is decoded straight into the table as soon as it
    /// is open, and its plaintext freed. The table is reserved once from the stored sizes (an
    /// entry takes 46 bytes there, so that bound is never short), then sorted in place. So
    /// memory peaks at the table plus one or two objects.
    ///
    /// # Errors
    /// The first error `open` returns, as it returned it; [`Error::Corrupt`] naming a
    /// malformed object.
    pub fn load<F>(objects: &[(IndexId, u64)], open: F) -> Result<Index>
    where
        F: Fn(&IndexId) -> Result<Vec<u8>> + Sync,
    {
        let mut index = Index::default().load_more(objects, open)?;
        index.loaded_from = objects.iter().map(|o| o.0).collect();
        Ok(index)
    }

    /// Loads `objects` into this index (beside its table, if it has one) and finalizes it.
    fn load_more<F>(self, objects: &[(IndexId, u64)], open: F) -> Result<Index>
    where
        F: Fn(&IndexId) -> Result<Vec<u8>> + Sync,
    {
        let mut index = self;
        let bound: u64 = objects.iter().map(|o| o.1 / ENTRY_LEN as u64).sum();
        index.reserve(usize::try_from(bound).unwrap_or(usize::MAX));
        let table = Mutex::new(index);
        for_each_object(objects, &open, |id, plain| {
            let mut table = table.lock().map_err(|_| Error::Internal("index table lock poisoned".into()))?;
            table.append_object(plain).map_err(|r| Error::corrupt(format!("index {id}"), r))
        })?;
        let mut index = table.into_inner().map_err(|_| Error::Internal("index table lock poisoned".into()))?;
        index.finalize();
        Ok(index)
    }

    /// Decodes one index object's plaintext straight into the table (the same checks as
    /// [`IndexFile::decode`], without building one). On an error, part of the object may have
    /// been added.
    fn append_object(&mut self, plain: &[u8]) -> Result<(), &'static str> {
        let mut buckets = std::mem::take(&mut self.buckets);
        if buckets.is_empty() {
            buckets = vec![Vec::new(); BUCKETS];
        }
        let decoded = self.decode_object(plain, &mut |e| {
            buckets[usize::from(e.id.0.0[0])].push(e);
            Ok(())
        });
        self.buckets = buckets;
        self.sorted = false;
        decoded
    }

    /// Decodes one index object's plaintext, numbering its packs in this index and handing each
    /// entry to `push`.
    fn decode_object(
        &mut self,
        plain: &[u8],
        push: &mut dyn FnMut(IndexEntry) -> Result<(), &'static str>,
    ) -> Result<(), &'static str> {
        let mut c = Cursor::new(plain);
        let version = check_index_version(c.u8()?)?;
        let ns = c.u32()? as usize;
        if ns > c.remaining() / 32 {
            return Err("supersedes count exceeds the object");
        }
        c.take(ns * 32)?;
        let np = c.u32()?;
        if np as usize > c.remaining() / 52 {
            return Err("pack count exceeds the object");
        }
        let mut any_public = false;
        for _ in 0..np {
            let (id, seal, ne) = pack_head(&mut c, version)?;
            any_public |= seal.is_extended();
            let pack = self.pack_number(id, seal).ok_or("more packs than the index can number")?;
            let raw = c.take(ne as usize * ENTRY_LEN)?;
            for e in raw.chunks_exact(ENTRY_LEN) {
                push(IndexEntry::new(&PackEntry::decode(e)?, pack))?;
            }
        }
        if c.remaining() != 0 {
            return Err("trailing bytes");
        }
        check_public_listed(version, any_public)
    }

    /// The number of pack `id`, added with `seal` if new; `None` past 2^29 - 1 packs.
    fn pack_number(&mut self, id: PackId, seal: PackSeal) -> Option<u32> {
        if let Some(&n) = self.pack_numbers.get(&id) {
            return Some(n);
        }
        let n = u32::try_from(self.packs.len()).ok().filter(|&n| n < PACK_MASK)?;
        self.packs.push(PackRef { id, seal });
        self.pack_numbers.insert(id, n);
        Some(n)
    }

    /// Adds a pack and its entries. Call [`Index::finalize`] before lookups.
    pub fn add_pack(&mut self, id: PackId, seal: PackSeal, entries: &[PackEntry]) {
        // More than 2^29 packs (8 PiB at the default pack size, 24 GiB of pack table) would
        // not fit the entry encoding: their entries are left out rather than misnumbered.
        let Some(n) = self.pack_number(id, seal) else { return };
        let buckets = self.buckets_mut();
        for e in entries {
            buckets[usize::from(e.id.0.0[0])].push(IndexEntry::new(e, n));
        }
        self.sorted = false;
    }

    /// The buckets, created on first use.
    fn buckets_mut(&mut self) -> &mut [Vec<IndexEntry>] {
        if self.buckets.is_empty() {
            self.buckets = vec![Vec::new(); BUCKETS];
        }
        &mut self.buckets
    }

    /// Makes room for about `n` more entries: each bucket its share and a margin (1/32 and
    /// 64 entries, many standard deviations for evenly spread ids). Room never used is
    /// address space, not memory; a bucket that fills anyway grows.
    pub fn reserve(&mut self, n: usize) {
        let share = n / BUCKETS;
        let room = share.saturating_add(share / 32).saturating_add(64);
        for b in self.buckets_mut() {
            // Only a bound: if the allocator refuses, the bucket grows as entries come.
            let _ = b.try_reserve_exact(room);
        }
    }

    /// Adds everything an index object lists.
    pub fn add_file(&mut self, file: &IndexFile) {
        for p in &file.packs {
            self.add_pack(p.id, p.seal, &p.entries);
        }
    }

    /// Sorts for lookups, keeping one entry per blob: of several, the one in the pack the
    /// index met first. Sorts in place on all cores; no second copy of the table.
    pub fn finalize(&mut self) {
        if self.sorted {
            return;
        }
        let base = self.base.as_deref();
        let sort = |(b, bucket): (usize, &mut Vec<IndexEntry>)| {
            let copies = sort_bucket(bucket, base.map(|t| (t.bucket(b), t.directory(b))));
            // Shrinking may copy the bucket; worth it only for a large excess (duplicates).
            if bucket.capacity() > bucket.len() + bucket.len() / 4 + 64 {
                bucket.shrink_to_fit();
            }
            copies
        };
        let copies: Vec<Vec<IndexEntry>> = self.buckets.par_iter_mut().enumerate().map(sort).collect();
        // Buckets go in id order and each is sorted: so is their concatenation. Copies found
        // by an earlier finalize are no longer in the buckets: they are kept, merged in.
        let found = copies.into_iter().flatten();
        if self.alternates.is_empty() {
            self.alternates = found.collect();
        } else {
            self.alternates.extend(found);
            self.alternates.sort_unstable_by(|a, b| a.id.cmp(&b.id).then(a.pack().cmp(&b.pack())));
            self.alternates.dedup_by(|later, first| later.id == first.id && later.pack() == first.pack());
        }
        self.directory.clear();
        // Offsets are u32: a bucket past 4 billion entries is searched whole.
        if self.buckets.iter().all(|b| u32::try_from(b.len()).is_ok()) {
            self.directory.reserve_exact(self.buckets.len() * DIRECTORY_WORDS);
            for bucket in &self.buckets {
                table::directory_of(bucket, &mut self.directory);
            }
        }
        self.sorted = true;
    }

    /// The index objects this table was built from ([`Index::load`], or as noted with
    /// [`Index::note_loaded_from`]).
    #[must_use]
    pub fn loaded_from(&self) -> &[IndexId] {
        &self.loaded_from
    }

    /// Records that a table built by hand holds the index objects `ids`.
    pub fn note_loaded_from(&mut self, ids: impl IntoIterator<Item = IndexId>) {
        self.loaded_from.extend(ids);
    }

    /// Where a blob is.
    #[must_use]
    pub fn get(&self, id: &BlobId) -> Option<&IndexEntry> {
        debug_assert!(self.sorted || self.is_empty());
        let first = usize::from(id.0.0[0]);
        if let Some(base) = &self.base
            && let Some(e) = find(base.bucket(first), base.directory(first), id)
        {
            // A damaged table's entry naming no pack is not there.
            return self.names_a_pack(e).then_some(e);
        }
        let bucket = self.buckets.get(first)?;
        let directory = self.directory.get(first * DIRECTORY_WORDS..(first + 1) * DIRECTORY_WORDS).unwrap_or_default();
        find(bucket, directory, id)
    }

    fn names_a_pack(&self, e: &IndexEntry) -> bool {
        (e.pack() as usize) < self.packs.len()
    }

    /// The other stored copies of a tree blob besides [`Index::get`]'s (none for data blobs).
    #[must_use]
    pub fn alternates(&self, id: &BlobId) -> &[IndexEntry] {
        let mapped = self.base.as_deref().map(|b| copies_of(b.alternates(), id)).unwrap_or_default();
        if !mapped.is_empty() { mapped } else { copies_of(&self.alternates, id) }
    }

    /// Whether the index holds a blob.
    #[must_use]
    pub fn contains(&self, id: &BlobId) -> bool {
        self.get(id).is_some()
    }

    /// The pack an entry points into.
    #[must_use]
    pub fn pack(&self, entry: &IndexEntry) -> PackRef {
        self.packs[entry.pack() as usize]
    }

    /// All packs.
    #[must_use]
    pub fn packs(&self) -> &[PackRef] {
        &self.packs
    }

    /// All entries, one per blob after [`Index::finalize`]: in id order, or with a mapped
    /// table, the table's in id order and then the others in id order.
    pub fn entries(&self) -> impl Iterator<Item = &IndexEntry> {
        let mapped = self.base.as_deref().map(Table::entries).unwrap_or_default();
        mapped.iter().filter(|e| self.names_a_pack(e)).chain(self.buckets.iter().flatten())
    }

    /// Number of distinct blobs (after [`Index::finalize`]).
    #[must_use]
    pub fn len(&self) -> usize {
        self.base.as_deref().map_or(0, |b| b.entries().len()) + self.buckets.iter().map(Vec::len).sum::<usize>()
    }

    /// No blobs.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the index is the local cache's mapped table (and what was decoded beside it).
    #[must_use]
    pub fn is_mapped(&self) -> bool {
        self.base.is_some()
    }
}

/// Bytes allowed in memory at once, shared by the loading threads.
struct Budget {
    used: Mutex<u64>,
    freed: Condvar,
    limit: u64,
}

/// Bytes taken from a [`Budget`], given back when dropped.
struct Held<'a> {
    budget: &'a Budget,
    bytes: u64,
}

impl Budget {
    /// Waits until `bytes` fit (or nothing else is held), then takes them.
    fn acquire(&self, bytes: u64) -> Held<'_> {
        let mut used = self.used.lock().unwrap_or_else(PoisonError::into_inner);
        while *used > 0 && used.saturating_add(bytes) > self.limit {
            used = self.freed.wait(used).unwrap_or_else(PoisonError::into_inner);
        }
        *used += bytes;
        Held { budget: self, bytes }
    }

    fn give_back(&self, bytes: u64) {
        let mut used = self.used.lock().unwrap_or_else(PoisonError::into_inner);
        *used = used.saturating_sub(bytes);
        self.freed.notify_all();
    }
}

impl Held<'_> {
    /// Keeps only `bytes`, giving the rest back.
    fn keep(&mut self, bytes: u64) {
        let extra = self.bytes.saturating_sub(bytes);
        self.bytes -= extra;
        self.budget.give_back(extra);
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    pub(super) use crate::format::index::tests::entry;
    use crate::format::index::{IndexFile, IndexedPack};
    use crate::foundation::id::Digest;
    use proptest::prelude::*;

    #[test]
    fn lookups() {
        let mut idx = Index::default();
        let p = PackId(Digest::of(b"p"));
        let entries: Vec<_> = (0..1000).map(entry).collect();
        idx.add_pack(p, PackSeal::salted([1; 16]), &entries);
        idx.add_pack(p, PackSeal::salted([1; 16]), &entries[..10]);
        idx.finalize();
        assert_eq!(idx.len(), 1000);
        for e in &entries {
            let got = idx.get(&e.id).unwrap();
            assert_eq!((got.offset, got.length, got.raw_len), (e.offset, e.length, e.raw_len));
            assert_eq!(idx.pack(got).id, p);
        }
        assert!(!idx.contains(&BlobId(Digest::of(b"missing"))));
        assert_eq!(std::mem::size_of::<IndexEntry>(), 48);
        let got = idx.get(&entries[3].id).unwrap();
        assert_eq!((got.kind(), got.codec()), (entries[3].kind, entries[3].codec));
    }

    /// Index objects with blobs spread over packs; `dup` of each object's blobs also appear in
    /// the next object, in another pack, and every third object repeats a pack of the previous.
    pub(super) fn objects(n: usize, per_object: u32, dup: u32) -> Vec<(IndexId, IndexFile)> {
        let mut out: Vec<(IndexId, IndexFile)> = Vec::new();
        for k in 0..n as u32 {
            let mut packs: Vec<IndexedPack> = (0..(per_object / 40 + 1))
                .map(|p| IndexedPack {
                    id: PackId(Digest::of(&[k.to_le_bytes(), p.to_le_bytes()].concat())),
                    seal: PackSeal::salted([k as u8; 16]),
                    entries: (0..40.min(per_object)).map(|i| entry(k * 1_000_000 + p * 40 + i)).collect(),
                })
                .collect();
            if let Some((_, prev)) = out.last() {
                packs.push(IndexedPack {
                    id: PackId(Digest::of(&k.to_le_bytes())),
                    seal: PackSeal::salted([9; 16]),
                    entries: prev.packs[0]
                        .entries
                        .iter()
                        .take(dup as usize)
                        .map(|e| PackEntry { offset: e.offset + 7, ..*e })
                        .collect(),
                });
                if k % 3 == 0 {
                    packs.push(prev.packs[0].clone());
                }
            }
            let file = IndexFile { supersedes: out.iter().map(|(id, _)| *id).take(k as usize % 2).collect(), packs };
            out.push((IndexId(Digest::of(&file.encode())), file));
        }
        out
    }

    fn load_plain(files: &[(IndexId, IndexFile)]) -> Result<Index> {
        let plain: HashMap<IndexId, Vec<u8>> = files.iter().map(|(id, f)| (*id, f.encode())).collect();
        let sizes: Vec<(IndexId, u64)> = files.iter().map(|(id, f)| (*id, f.encode().len() as u64 + 44)).collect();
        Index::load(&sizes, |id| plain.get(id).cloned().ok_or_else(|| Error::NotFound(format!("index {id}"))))
    }

    /// Every blob the files name is found, in a pack that lists it with exactly those
    /// coordinates; nothing else is found; each pack is in the table once.
    pub(super) fn check_union(idx: &Index, files: &[(IndexId, IndexFile)]) {
        let mut listed: HashMap<BlobId, Vec<(PackId, PackSeal, PackEntry)>> = HashMap::new();
        let mut packs: HashMap<PackId, PackSeal> = HashMap::new();
        for (_, f) in files {
            for p in &f.packs {
                packs.entry(p.id).or_insert(p.seal);
                for e in &p.entries {
                    listed.entry(e.id).or_default().push((p.id, p.seal, *e));
                }
            }
        }
        assert_eq!(idx.len(), listed.len());
        assert_eq!(idx.packs().len(), packs.len());
        for (id, places) in &listed {
            let got = idx.get(id).expect("a listed blob is missing");
            let pack = idx.pack(got);
            let found = PackEntry {
                kind: got.kind(),
                codec: got.codec(),
                id: got.id,
                offset: got.offset,
                length: got.length,
                raw_len: got.raw_len,
            };
            assert!(
                places.iter().any(|(p, _, e)| *p == pack.id && *e == found),
                "{id}: {found:?} in {} is not a place the index objects name",
                pack.id
            );
            assert_eq!(pack.seal, packs[&pack.id], "a pack keeps the salt it was first met with");
        }
        for i in 0..2000u32 {
            assert!(!idx.contains(&BlobId(Digest::of(&[b"absent".as_slice(), &i.to_le_bytes()].concat()))));
        }
        let mut ids: Vec<BlobId> = idx.entries().map(|e| e.id).collect();
        if !idx.is_mapped() {
            assert!(ids.windows(2).all(|w| w[0] < w[1]), "sorted");
        }
        ids.sort_unstable();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "one entry per blob");
        assert_eq!(ids.len(), idx.len());
    }

    #[test]
    fn load_takes_the_union_of_many_objects() {
        for (n, per, dup) in [(0, 0, 0), (1, 1, 0), (3, 100, 5), (40, 1000, 30), (5, 20_000, 40)] {
            let files = objects(n, per, dup);
            let idx = load_plain(&files).unwrap();
            check_union(&idx, &files);
            let mut reference = Index::default();
            files.iter().for_each(|(_, f)| reference.add_file(f));
            reference.finalize();
            assert_eq!(reference.len(), idx.len());
            check_union(&reference, &files);
        }
    }

    #[test]
    fn duplicates_keep_the_first_pack_met() {
        let a = PackId(Digest::of(b"a"));
        let b = PackId(Digest::of(b"b"));
        let e = entry(5);
        let mut idx = Index::default();
        idx.add_pack(a, PackSeal::salted([1; 16]), &[entry(1)]);
        idx.add_pack(b, PackSeal::salted([2; 16]), &[PackEntry { offset: 99, ..e }]);
        idx.add_pack(a, PackSeal::salted([1; 16]), &[e]);
        idx.finalize();
        let got = idx.get(&e.id).unwrap();
        assert_eq!((idx.pack(got).id, got.offset), (a, e.offset));
        assert_eq!(idx.len(), 2);
        // Adding after finalize and finalizing again keeps lookups right.
        idx.add_pack(b, PackSeal::salted([2; 16]), &[entry(7), entry(1)]);
        idx.finalize();
        assert_eq!(idx.len(), 3);
        assert_eq!(idx.pack(idx.get(&entry(7).id).unwrap()).id, b);
        assert_eq!(idx.pack(idx.get(&entry(1).id).unwrap()).id, a);
    }

    #[test]
    fn a_second_finalize_keeps_the_copies_of_trees_the_first_found() {
        let (a, b, c) = (PackId(Digest::of(b"a")), PackId(Digest::of(b"b")), PackId(Digest::of(b"c")));
        let tree = entry(5);
        assert_eq!(tree.kind, BlobKind::Tree);
        let mut idx = Index::default();
        idx.add_pack(a, PackSeal::salted([1; 16]), &[tree]);
        idx.add_pack(b, PackSeal::salted([2; 16]), &[PackEntry { offset: 99, ..tree }]);
        idx.finalize();
        assert_eq!(idx.alternates(&tree.id).len(), 1);
        // More packs later (prune adds the garbage-listed ones to a finalized index): the copy
        // in b stays a fallback, and a third copy joins it.
        idx.add_pack(c, PackSeal::salted([3; 16]), &[entry(7), PackEntry { offset: 7, ..tree }]);
        idx.finalize();
        let copies: Vec<PackId> = idx.alternates(&tree.id).iter().map(|e| idx.pack(e).id).collect();
        assert_eq!(copies, [b, c]);
        assert_eq!(idx.pack(idx.get(&tree.id).unwrap()).id, a);
    }

    #[test]
    fn lookups_at_every_size_and_edge_ids() {
        let p = PackId(Digest::of(b"p"));
        for n in [0u32, 1, 2, 7, 8, 63, 64, 65, 500, 4096, 70_000, 600_000] {
            let mut entries: Vec<PackEntry> = (0..n).map(entry).collect();
            for (i, b) in [[0u8; 32], [0xff; 32]].into_iter().enumerate() {
                entries.push(PackEntry { id: BlobId(Digest(b)), ..entry(n + i as u32) });
            }
            let mut idx = Index::default();
            idx.add_pack(p, PackSeal::salted([0; 16]), &entries);
            idx.finalize();
            assert_eq!(idx.len(), entries.len());
            for e in &entries {
                assert_eq!(idx.get(&e.id).map(|g| (g.offset, g.raw_len)), Some((e.offset, e.raw_len)), "n = {n}");
            }
            for i in 0..300u32 {
                let mut id = Digest::of(&[b"no".as_slice(), &i.to_le_bytes()].concat()).0;
                if i % 2 == 0 {
                    // Next to an existing id: same bucket, same prefix.
                    id = entries[i as usize % entries.len()].id.0.0;
                    id[31] ^= 1;
                }
                assert!(!idx.contains(&BlobId(Digest(id))), "n = {n}");
            }
        }
        assert!(!Index::default().contains(&BlobId(Digest([0; 32]))));
    }

    #[test]
    fn load_reports_errors_naming_the_object() {
        let files = objects(5, 200, 3);
        let bad = files[2].0;
        let plain: HashMap<IndexId, Vec<u8>> = files.iter().map(|(id, f)| (*id, f.encode())).collect();
        let sizes: Vec<(IndexId, u64)> = files.iter().map(|(id, _)| (*id, 1000)).collect();
        // The error `open` gives comes back as it was (the caller retries on NotFound).
        let err = Index::load(&sizes, |id| {
            if *id == bad { Err(Error::NotFound(format!("gone {id}"))) } else { Ok(plain[id].clone()) }
        })
        .unwrap_err();
        assert!(matches!(&err, Error::NotFound(m) if m == &format!("gone {bad}")), "{err:?}");
        // A malformed object is corrupt, named.
        for cut in [0, 1, 5, 50, plain[&bad].len() - 1] {
            let err =
                Index::load(&sizes, |id| Ok(if *id == bad { plain[id][..cut].to_vec() } else { plain[id].clone() }))
                    .unwrap_err();
            assert!(matches!(&err, Error::Corrupt { object, .. } if object == &format!("index {bad}")), "{err:?}");
        }
    }

    proptest! {
        /// The loader's decoder accepts exactly what `IndexFile::decode` accepts, with the
        /// same entries, whatever the bytes.
        #[test]
        fn append_object_agrees_with_decode(
            sizes in proptest::collection::vec(0u32..6, 0..4),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..3),
            cut in any::<usize>(),
            truncate in any::<bool>(),
        ) {
            let file = IndexFile {
                supersedes: vec![IndexId(Digest::of(b"s"))],
                packs: sizes.iter().enumerate().map(|(p, &n)| IndexedPack {
                    id: PackId(Digest::of(&[p as u8])),
                    seal: PackSeal::salted([p as u8; 16]),
                    entries: (0..n).map(|i| entry(i + 10 * p as u32)).collect(),
                }).collect(),
            };
            let mut bytes = file.encode();
            for (at, x) in flips {
                let n = bytes.len();
                bytes[at % n] ^= x;
            }
            if truncate {
                bytes.truncate(cut % (bytes.len() + 1));
            }
            let mut idx = Index::default();
            let fast = idx.append_object(&bytes);
            match IndexFile::decode(&bytes) {
                Ok(f) => {
                    prop_assert!(fast.is_ok());
                    let mut reference = Index::default();
                    reference.add_file(&f);
                    prop_assert!(reference.entries().eq(idx.entries()));
                    prop_assert_eq!(reference.packs(), idx.packs());
                }
                Err(_) => prop_assert!(fast.is_err()),
            }
        }
    }
}
