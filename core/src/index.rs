//! The blob index: which pack holds each blob, and where (FORMAT.md §Index objects).
//!
//! In memory the index is a compact table: one fixed-size [`IndexEntry`] per blob (52 bytes)
//! in a vector sorted by id, searched by binary search, and a table of packs the entries point
//! into by number. No boxed entries and no per-blob map nodes, so ten million blobs fit in about
//! half a gigabyte and load with one sort.
//!
//! On storage, index objects list packs and their entries. A backup writes one index object
//! every few packs (checkpoints) and one at the end; prune writes combined ones that name the
//! objects they supersede.

use std::collections::HashMap;

use crate::blob::BlobKind;
use crate::compress::Codec;
use crate::crypto::{MasterKey, SALT_LEN};
use crate::error::{Error, Result};
use crate::id::{BlobId, IndexId, PackId};
use crate::pack::{Cursor, ENTRY_LEN, MAX_ENTRIES, PackEntry};

/// Version byte of an index object's plaintext.
pub const INDEX_VERSION: u8 = 1;
/// Associated data of index objects.
pub const INDEX_AAD: &[u8] = b"cairn index v1";

/// One pack as an index object lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedPack {
    /// The pack.
    pub id: PackId,
    /// The salt its blobs are sealed under.
    pub salt: [u8; SALT_LEN],
    /// Its blobs.
    pub entries: Vec<PackEntry>,
}

/// The decoded content of one index object.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IndexFile {
    /// Index objects this one replaces (written by prune).
    pub supersedes: Vec<IndexId>,
    /// Packs and their blobs.
    pub packs: Vec<IndexedPack>,
}

impl IndexFile {
    /// Encodes the plaintext.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let n: usize = self.packs.iter().map(|p| 52 + p.entries.len() * ENTRY_LEN).sum();
        let mut out = Vec::with_capacity(9 + self.supersedes.len() * 32 + n);
        out.push(INDEX_VERSION);
        out.extend_from_slice(&(self.supersedes.len() as u32).to_le_bytes());
        for s in &self.supersedes {
            out.extend_from_slice(&s.0.0);
        }
        out.extend_from_slice(&(self.packs.len() as u32).to_le_bytes());
        for p in &self.packs {
            out.extend_from_slice(&p.id.0.0);
            out.extend_from_slice(&p.salt);
            out.extend_from_slice(&(p.entries.len() as u32).to_le_bytes());
            for e in &p.entries {
                e.encode_into(&mut out);
            }
        }
        out
    }

    /// Decodes the plaintext.
    ///
    /// # Errors
    /// A reason for any malformed field.
    pub fn decode(plain: &[u8]) -> Result<Self, &'static str> {
        let mut c = Cursor::new(plain);
        if c.u8()? != INDEX_VERSION {
            return Err("unknown index version");
        }
        let ns = c.u32()?;
        if ns as usize > c.remaining() / 32 {
            return Err("supersedes count exceeds the object");
        }
        let supersedes = (0..ns).map(|_| c.digest().map(IndexId)).collect::<Result<Vec<_>, _>>()?;
        let np = c.u32()?;
        if np as usize > c.remaining() / 52 {
            return Err("pack count exceeds the object");
        }
        let mut packs = Vec::with_capacity(np as usize);
        for _ in 0..np {
            let id = PackId(c.digest()?);
            let mut salt = [0u8; SALT_LEN];
            salt.copy_from_slice(c.take(SALT_LEN)?);
            let ne = c.u32()?;
            if ne > MAX_ENTRIES || ne as usize > c.remaining() / ENTRY_LEN {
                return Err("entry count exceeds the object");
            }
            let entries = (0..ne).map(|_| PackEntry::decode(c.take(ENTRY_LEN)?)).collect::<Result<Vec<_>, _>>()?;
            packs.push(IndexedPack { id, salt, entries });
        }
        if c.remaining() != 0 {
            return Err("trailing bytes");
        }
        Ok(IndexFile { supersedes, packs })
    }

    /// Seals for storage.
    #[must_use]
    pub fn seal(&self, master: &MasterKey) -> Vec<u8> {
        master.seal_object(&self.encode(), INDEX_AAD)
    }

    /// Opens a stored index object.
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming the object.
    pub fn open(master: &MasterKey, id: &IndexId, sealed: &[u8]) -> Result<Self> {
        let plain =
            master.open_object(sealed, INDEX_AAD).map_err(|e| Error::corrupt(format!("index {id}"), e.to_string()))?;
        Self::decode(&plain).map_err(|r| Error::corrupt(format!("index {id}"), r))
    }
}

/// Where one blob is, in 48 bytes: the id, four `u32`s, and the blob's kind and codec kept in
/// the top bits of the pack number (an index holds fewer than 2^30 packs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    /// The blob.
    pub id: BlobId,
    /// Pack number in [`Index::packs`] (low 30 bits), tree flag (bit 31), zstd flag (bit 30).
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
const PACK_MASK: u32 = ZSTD_FLAG - 1;

impl IndexEntry {
    fn new(e: &PackEntry, pack: u32) -> Self {
        let mut flags = pack & PACK_MASK;
        if e.kind == BlobKind::Tree {
            flags |= TREE_FLAG;
        }
        if e.codec == Codec::Zstd {
            flags |= ZSTD_FLAG;
        }
        IndexEntry { id: e.id, pack_and_flags: flags, offset: e.offset, length: e.length, raw_len: e.raw_len }
    }

    /// Number of its pack in [`Index::packs`].
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
        if self.pack_and_flags & ZSTD_FLAG != 0 { Codec::Zstd } else { Codec::None }
    }
}

/// A pack the index knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackRef {
    /// The pack.
    pub id: PackId,
    /// Its salt.
    pub salt: [u8; SALT_LEN],
}

/// The in-memory index.
#[derive(Debug, Default, Clone)]
pub struct Index {
    packs: Vec<PackRef>,
    pack_numbers: HashMap<PackId, u32>,
    entries: Vec<IndexEntry>,
    sorted: bool,
}

impl Index {
    /// Adds a pack and its entries. Call [`Index::finalize`] before lookups.
    pub fn add_pack(&mut self, id: PackId, salt: [u8; SALT_LEN], entries: &[PackEntry]) {
        let n = match self.pack_numbers.get(&id) {
            Some(&n) => n,
            None => {
                // More than 2^30 packs (16 PiB at the default pack size) would not fit the
                // entry encoding; such an index is beyond any repository this build handles.
                let n = (self.packs.len() as u32).min(PACK_MASK);
                self.packs.push(PackRef { id, salt });
                self.pack_numbers.insert(id, n);
                n
            }
        };
        self.entries.extend(entries.iter().map(|e| IndexEntry::new(e, n)));
        self.sorted = false;
    }

    /// Makes room for `n` more entries (one allocation instead of repeated doubling).
    pub fn reserve(&mut self, n: usize) {
        self.entries.reserve_exact(n);
    }

    /// Adds everything an index object lists.
    pub fn add_file(&mut self, file: &IndexFile) {
        for p in &file.packs {
            self.add_pack(p.id, p.salt, &p.entries);
        }
    }

    /// Sorts for lookups, keeping one entry per blob (the first added wins).
    pub fn finalize(&mut self) {
        if !self.sorted {
            self.entries.sort_unstable_by_key(|e| e.id);
            self.entries.dedup_by(|a, b| a.id == b.id);
            // Shrinking copies the table; worth it only for a large excess (duplicates).
            if self.entries.capacity() > self.entries.len() + self.entries.len() / 4 {
                self.entries.shrink_to_fit();
            }
            self.sorted = true;
        }
    }

    /// Where a blob is.
    #[must_use]
    pub fn get(&self, id: &BlobId) -> Option<&IndexEntry> {
        debug_assert!(self.sorted);
        self.entries.binary_search_by(|e| e.id.cmp(id)).ok().map(|i| &self.entries[i])
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

    /// All entries (sorted by id after [`Index::finalize`]).
    #[must_use]
    pub fn entries(&self) -> &[IndexEntry] {
        &self.entries
    }

    /// Number of distinct blobs.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No blobs.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Digest;
    use proptest::prelude::*;

    fn entry(i: u32) -> PackEntry {
        PackEntry {
            kind: if i.is_multiple_of(2) { BlobKind::Data } else { BlobKind::Tree },
            codec: if i.is_multiple_of(3) { Codec::Zstd } else { Codec::None },
            id: BlobId(Digest::of(&i.to_le_bytes())),
            offset: 16 + i,
            length: 28 + i,
            raw_len: i,
        }
    }

    proptest! {
        #[test]
        fn file_round_trip(sizes in proptest::collection::vec(0u32..50, 0..8), sup in 0u32..3) {
            let file = IndexFile {
                supersedes: (0..sup).map(|i| IndexId(Digest::of(&[i as u8]))).collect(),
                packs: sizes.iter().enumerate().map(|(p, &n)| IndexedPack {
                    id: PackId(Digest::of(&[p as u8, 1])),
                    salt: [p as u8; 16],
                    entries: (0..n).map(|i| entry(i + p as u32 * 100)).collect(),
                }).collect(),
            };
            let enc = file.encode();
            prop_assert_eq!(IndexFile::decode(&enc).unwrap(), file.clone());
            for cut in [0, enc.len() / 2, enc.len().saturating_sub(1)] {
                if cut < enc.len() { prop_assert!(IndexFile::decode(&enc[..cut]).is_err()); }
            }
            let m = MasterKey::generate();
            let id = IndexId::default();
            prop_assert_eq!(IndexFile::open(&m, &id, &file.seal(&m)).unwrap(), file);
        }
    }

    #[test]
    fn lookups() {
        let mut idx = Index::default();
        let p = PackId(Digest::of(b"p"));
        let entries: Vec<_> = (0..1000).map(entry).collect();
        idx.add_pack(p, [1; 16], &entries);
        idx.add_pack(p, [1; 16], &entries[..10]);
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
}
