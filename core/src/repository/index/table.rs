//! The index table in the local cache: a finalized [`super::Index`] written to one file and
//! mapped back, so a repository of a hundred million blobs opens without decoding its index
//! objects again or holding 48 bytes a blob in memory (FORMAT.md §11a).
//!
//! The file belongs to this machine only (native byte order, this build's entry layout) and is
//! never changed once written: a new table is written beside it and renamed over it. That is
//! what makes mapping it sound. A mapped file truncated under the mapping kills the process
//! (SIGBUS) and one changed under it changes bytes already checked; the engine's own
//! write-once file suffers neither, so long as no one else edits the cache. Source files are
//! read, never mapped, for exactly that reason: someone else writes them while they are read.
//!
//! Layout (integers in the machine's byte order, checked by the marker):
//!
//! ```text
//! header   88 bytes: "CAIRNIT1", u32 0x01020304, u32 entry size (48),
//!          u64 objects, u64 packs, u64 entries, u64 alternates, u64 directory words,
//!          BLAKE3 of the header's first 56 bytes ‖ objects ‖ packs ‖ starts ‖ directory
//! objects  32 bytes each: the index objects the table holds
//! packs    84 bytes each: id, salt, public flag, public key, generation, 2 zero bytes
//! starts   257 u64: where each first-byte bucket starts in the entries
//! directory  u32 words: per bucket, where each second byte starts, then the bucket's length
//! (zeros to a 4096-byte boundary)
//! entries  48 bytes each ([`IndexEntry`]), sorted by id, one per blob
//! alternates  48 bytes each: second copies of trees, sorted by id
//! ```
//!
//! The checksum covers everything but the entries and alternates, which are most of the file:
//! checking them would read the whole table at every open. A damaged entry cannot return wrong
//! data: a blob is read by its id, its authenticated encryption binds that id, and its
//! plaintext must hash to it. It can only miss (the blob is stored again), point at a pack the
//! table does not have (treated as a miss), or fail that read with a clear error.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use memmap2::Mmap;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::format::blob::BlobKind;
use crate::format::pack::{PackEntry, PackSeal};
use crate::foundation::compress::Codec;
use crate::foundation::crypto::{PUBLIC_LEN, SALT_LEN};
use crate::foundation::error::{Error, Result};
use crate::foundation::id::{BlobId, Digest, IndexId, PackId};

/// Where one blob is, in 48 bytes: the id, four `u32`s, and the blob's kind and codec kept in
/// the top bits of the pack number (an index holds fewer than 2^29 packs). The same 48 bytes in
/// memory and in the table file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct IndexEntry {
    /// The blob.
    pub id: BlobId,
    /// Pack number in [`super::Index::packs`] (low 29 bits), tree flag (bit 31), zstd flag
    /// (bit 30), padded flag (bit 29).
    pack_and_flags: u32,
    /// Offset in the pack.
    pub offset: u32,
    /// Sealed length.
    pub length: u32,
    /// Plaintext length.
    pub raw_len: u32,
}

const TREE_FLAG: u32 = 1 << 31;
const ZSTD_FLAG: u32 = 1 << 30;
const PADDED_FLAG: u32 = 1 << 29;
/// Pack numbers are below this.
pub(super) const PACK_MASK: u32 = PADDED_FLAG - 1;

impl IndexEntry {
    pub(super) fn new(e: &PackEntry, pack: u32) -> Self {
        let mut flags = pack & PACK_MASK;
        if e.kind == BlobKind::Tree {
            flags |= TREE_FLAG;
        }
        if e.codec.is_zstd() {
            flags |= ZSTD_FLAG;
        }
        if e.codec.is_padded() {
            flags |= PADDED_FLAG;
        }
        IndexEntry { id: e.id, pack_and_flags: flags, offset: e.offset, length: e.length, raw_len: e.raw_len }
    }

    /// Number of its pack in [`super::Index::packs`].
    #[must_use]
    pub fn pack(&self) -> u32 {
        self.pack_and_flags & PACK_MASK
    }

    /// Data or tree.
    #[must_use]
    pub fn kind(&self) -> BlobKind {
        if self.pack_and_flags & TREE_FLAG != 0 { BlobKind::Tree } else { BlobKind::Data }
    }

    /// Encoding.
    #[must_use]
    pub fn codec(&self) -> Codec {
        let codec = if self.pack_and_flags & ZSTD_FLAG != 0 { Codec::Zstd } else { Codec::None };
        if self.pack_and_flags & PADDED_FLAG != 0 { codec.padded() } else { codec }
    }
}

/// A pack the index knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackRef {
    /// The pack.
    pub id: PackId,
    /// What its blobs' key comes from.
    pub seal: PackSeal,
}

const MAGIC: &[u8; 8] = b"CAIRNIT1";
const ENDIAN: u32 = 0x0102_0304;
const HEADER_LEN: usize = 88;
const CHECKED_HEADER: usize = 56;
const PACK_LEN: usize = 84;
const ENTRY_SIZE: usize = std::mem::size_of::<IndexEntry>();
/// The entries start on a page boundary.
const ALIGN: usize = 4096;
/// Buckets: an id's first byte.
pub(super) const BUCKETS: usize = 256;
/// Words of a bucket's directory: where each second byte starts, and the bucket's length.
pub(super) const DIRECTORY_WORDS: usize = 257;

/// What a table holds, for [`write`]: the finalized index, bucket by bucket.
pub(super) struct Contents<'a, B> {
    /// The index objects it was built from.
    pub objects: &'a [IndexId],
    /// All packs.
    pub packs: &'a [PackRef],
    /// Called once for each bucket `b`, in order: hands its entries (sorted, one per blob) to
    /// the emitter, once, and returns its second copies of trees, sorted by id.
    pub bucket: B,
}

/// Writes a table to `path`: to a temporary file beside it, flushed to disk, then renamed
/// over it (so a reader maps either the old table or the new one, whole). Private to its owner.
///
/// # Errors
/// I/O.
pub(super) fn write<'a, B>(path: &Path, contents: Contents<'a, B>) -> Result<()>
where
    B: FnMut(usize, &mut dyn FnMut(&[IndexEntry]) -> Result<()>) -> Result<Vec<IndexEntry>>,
{
    let Contents { objects, packs, mut bucket } = contents;
    let dir = path.parent().ok_or_else(|| Error::Internal(format!("{} has no directory", path.display())))?;
    crate::foundation::private::create_dir_all(dir, 0o700).map_err(|e| io_error(dir, e))?;
    let mut tmp = tempfile::Builder::new().prefix(".table-").tempfile_in(dir).map_err(|e| io_error(dir, e))?;
    let io = |e: std::io::Error| io_error(path, e);
    let mut head = Vec::with_capacity(HEADER_LEN + objects.len() * 32 + packs.len() * PACK_LEN);
    head.extend_from_slice(MAGIC);
    head.extend_from_slice(&ENDIAN.to_ne_bytes());
    head.extend_from_slice(&(ENTRY_SIZE as u32).to_ne_bytes());
    // Entries and alternates are counted as they are written.
    for n in [objects.len() as u64, packs.len() as u64, 0, 0] {
        head.extend_from_slice(&n.to_ne_bytes());
    }
    // The directory is filled in as the buckets are written; its size is known now.
    let directory_words = (BUCKETS * DIRECTORY_WORDS) as u64;
    head.extend_from_slice(&directory_words.to_ne_bytes());
    head.extend_from_slice(&[0; 32]);
    for o in objects {
        head.extend_from_slice(&o.0.0);
    }
    for p in packs {
        head.extend_from_slice(&p.id.0.0);
        head.extend_from_slice(&p.seal.salt);
        head.push(u8::from(p.seal.public.is_some()));
        head.extend_from_slice(&p.seal.public.unwrap_or([0; PUBLIC_LEN]));
        head.push(p.seal.generation);
        head.extend_from_slice(&[0, 0]);
    }
    let starts_at = head.len();
    let directory_at = starts_at + 257 * 8;
    let entries_at = (directory_at + BUCKETS * DIRECTORY_WORDS * 4).next_multiple_of(ALIGN);
    // Header, objects and packs first; starts and directory once the buckets are written.
    let mut out = BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
    out.write_all(&vec![0; entries_at]).map_err(io)?;
    let mut starts: Vec<u64> = Vec::with_capacity(257);
    let mut directory: Vec<u32> = Vec::with_capacity(BUCKETS * DIRECTORY_WORDS);
    let mut written = 0u64;
    let mut alternates: Vec<IndexEntry> = Vec::new();
    for b in 0..BUCKETS {
        starts.push(written);
        let mut emit = |run: &[IndexEntry]| -> Result<()> {
            if u32::try_from(run.len()).is_err() {
                return Err(Error::Internal("an index bucket past 2^32 entries".into()));
            }
            directory_of(run, &mut directory);
            written += run.len() as u64;
            out.write_all(run.as_bytes()).map_err(io)
        };
        let copies = bucket(b, &mut emit)?;
        if directory.len() != (b + 1) * DIRECTORY_WORDS {
            return Err(Error::Internal("an index bucket written other than once".into()));
        }
        // Buckets come in id order, so the alternates stay sorted.
        alternates.extend(copies);
    }
    starts.push(written);
    out.write_all(alternates.as_bytes()).map_err(io)?;
    out.flush().map_err(io)?;
    drop(out);
    let mut tail = Vec::with_capacity(entries_at - starts_at);
    for s in &starts {
        tail.extend_from_slice(&s.to_ne_bytes());
    }
    tail.extend_from_slice(directory.as_bytes());
    head[32..40].copy_from_slice(&written.to_ne_bytes());
    head[40..48].copy_from_slice(&(alternates.len() as u64).to_ne_bytes());
    let checksum = checksum(&head[..CHECKED_HEADER], &head[HEADER_LEN..], &tail);
    head[CHECKED_HEADER..HEADER_LEN].copy_from_slice(&checksum.0);
    use std::os::unix::fs::FileExt;
    let file = tmp.as_file();
    file.write_all_at(&head, 0).map_err(io)?;
    file.write_all_at(&tail, starts_at as u64).map_err(io)?;
    file.sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

/// Appends the [`DIRECTORY_WORDS`] words of a sorted bucket (of fewer than 2^32 entries):
/// where each second byte's ids start in it, then its length.
pub(super) fn directory_of(bucket: &[IndexEntry], out: &mut Vec<u32>) {
    let mut start = 0;
    for second in 0..256 {
        start += bucket[start..].partition_point(|e| usize::from(e.id.0.0[1]) < second);
        out.push(start as u32);
    }
    out.push(bucket.len() as u32);
}

fn checksum(header: &[u8], objects_and_packs: &[u8], starts_and_directory: &[u8]) -> Digest {
    let mut h = blake3::Hasher::new();
    h.update(header);
    h.update(objects_and_packs);
    h.update(starts_and_directory);
    Digest(*h.finalize().as_bytes())
}

fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::Internal(format!("index table {}: {e}", path.display()))
}

/// A table, mapped.
#[derive(Debug)]
pub(super) struct Table {
    map: Mmap,
    objects: Vec<IndexId>,
    packs: Vec<PackRef>,
    starts: Vec<usize>,
    directory: std::ops::Range<usize>,
    entries: std::ops::Range<usize>,
    alternates: std::ops::Range<usize>,
}

impl Table {
    /// Maps the table at `path`. `None` when there is none, or it is from another build or
    /// machine, or damaged (the caller builds a new one): the cache is never an error.
    pub(super) fn open(path: &Path) -> Option<Table> {
        let file = File::open(path).ok()?;
        // SAFETY: the table is this engine's own file in its private cache directory, written
        // whole to a temporary file and renamed into place, never opened for writing again:
        // a newer table replaces the directory entry, not these bytes, so the mapping can be
        // neither truncated nor changed under it by this engine. (Source files are never
        // mapped: their owners may truncate them at any time, FORMAT.md §11a.)
        #[allow(unsafe_code)]
        let map = unsafe { Mmap::map(&file) }.ok()?;
        #[cfg(unix)]
        let _ = map.advise(memmap2::Advice::Random);
        Table::parse(map)
    }

    fn parse(map: Mmap) -> Option<Table> {
        let bytes: &[u8] = &map;
        let head = bytes.get(..HEADER_LEN)?;
        let u32_at = |at: usize| u32::from_ne_bytes(head[at..at + 4].try_into().unwrap_or_default());
        let u64_at = |at: usize| usize::try_from(u64::from_ne_bytes(head[at..at + 8].try_into().unwrap_or_default()));
        if &head[..8] != MAGIC || u32_at(8) != ENDIAN || u32_at(12) as usize != ENTRY_SIZE {
            return None;
        }
        let (n_objects, n_packs, n_entries, n_alternates, n_directory) =
            (u64_at(16).ok()?, u64_at(24).ok()?, u64_at(32).ok()?, u64_at(40).ok()?, u64_at(48).ok()?);
        if n_directory != BUCKETS * DIRECTORY_WORDS {
            return None;
        }
        let packs_at = HEADER_LEN.checked_add(n_objects.checked_mul(32)?)?;
        let starts_at = packs_at.checked_add(n_packs.checked_mul(PACK_LEN)?)?;
        let directory_at = starts_at + 257 * 8;
        let entries_at = (directory_at + n_directory * 4).next_multiple_of(ALIGN);
        let alternates_at = entries_at.checked_add(n_entries.checked_mul(ENTRY_SIZE)?)?;
        let end = alternates_at.checked_add(n_alternates.checked_mul(ENTRY_SIZE)?)?;
        if bytes.len() != end {
            return None;
        }
        let sum = checksum(
            &head[..CHECKED_HEADER],
            &bytes[HEADER_LEN..starts_at],
            &bytes[starts_at..directory_at + n_directory * 4],
        );
        if sum.0 != head[CHECKED_HEADER..HEADER_LEN] {
            return None;
        }
        let objects = bytes[HEADER_LEN..packs_at]
            .chunks_exact(32)
            .map(|c| IndexId(Digest(c.try_into().unwrap_or_default())))
            .collect();
        let mut packs = Vec::with_capacity(n_packs);
        for p in bytes[packs_at..starts_at].chunks_exact(PACK_LEN) {
            let id = PackId(Digest(p[..32].try_into().ok()?));
            let salt: [u8; SALT_LEN] = p[32..48].try_into().ok()?;
            let public: [u8; PUBLIC_LEN] = p[49..81].try_into().ok()?;
            let seal = PackSeal { salt, public: (p[48] == 1).then_some(public), generation: p[81] };
            packs.push(PackRef { id, seal });
        }
        let mut starts = Vec::with_capacity(257);
        for s in bytes[starts_at..directory_at].chunks_exact(8) {
            starts.push(usize::try_from(u64::from_ne_bytes(s.try_into().ok()?)).ok()?);
        }
        if starts[0] != 0 || starts[256] != n_entries || starts.windows(2).any(|w| w[0] > w[1]) {
            return None;
        }
        let table = Table {
            objects,
            packs,
            starts,
            directory: directory_at..directory_at + n_directory * 4,
            entries: entries_at..alternates_at,
            alternates: alternates_at..end,
            map,
        };
        // Every bucket's directory must lie within it and rise: lookups then stay in bounds.
        let directory = table.directory_words()?;
        for b in 0..BUCKETS {
            let words = &directory[b * DIRECTORY_WORDS..(b + 1) * DIRECTORY_WORDS];
            if words[256] as usize != table.starts[b + 1] - table.starts[b] || words.windows(2).any(|w| w[0] > w[1]) {
                return None;
            }
        }
        table.all_entries()?;
        // The alternates are few: each must name a pack (lookups check the entries).
        if table.all_alternates()?.iter().any(|e| e.pack() as usize >= n_packs) {
            return None;
        }
        Some(table)
    }

    fn directory_words(&self) -> Option<&[u32]> {
        <[u32]>::ref_from_bytes(self.map.get(self.directory.clone())?).ok()
    }

    fn all_entries(&self) -> Option<&[IndexEntry]> {
        <[IndexEntry]>::ref_from_bytes(self.map.get(self.entries.clone())?).ok()
    }

    fn all_alternates(&self) -> Option<&[IndexEntry]> {
        <[IndexEntry]>::ref_from_bytes(self.map.get(self.alternates.clone())?).ok()
    }

    /// The index objects the table holds.
    pub(super) fn objects(&self) -> &[IndexId] {
        &self.objects
    }

    /// Its packs, numbered as its entries number them, handed over (the index keeps them; a
    /// second copy here would double the largest thing an open holds).
    pub(super) fn take_packs(&mut self) -> Vec<PackRef> {
        std::mem::take(&mut self.packs)
    }

    /// All entries, in id order.
    pub(super) fn entries(&self) -> &[IndexEntry] {
        self.all_entries().unwrap_or_default()
    }

    /// Entries whose id starts with byte `b`.
    pub(super) fn bucket(&self, b: usize) -> &[IndexEntry] {
        let all = self.entries();
        match (self.starts.get(b), self.starts.get(b + 1)) {
            (Some(&from), Some(&to)) => all.get(from..to).unwrap_or_default(),
            _ => &[],
        }
    }

    /// Bucket `b`'s directory ([`DIRECTORY_WORDS`] words).
    pub(super) fn directory(&self, b: usize) -> &[u32] {
        let all = self.directory_words().unwrap_or_default();
        all.get(b * DIRECTORY_WORDS..(b + 1) * DIRECTORY_WORDS).unwrap_or_default()
    }

    /// Second copies of trees, sorted by id.
    pub(super) fn alternates(&self) -> &[IndexEntry] {
        self.all_alternates().unwrap_or_default()
    }
}
