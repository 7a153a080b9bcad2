//! Index objects: which pack holds each blob, and where (FORMAT.md §Index objects).
//!
//! On storage, index objects list packs and their entries. A backup writes one index object
//! every few packs (checkpoints) and one at the end; prune writes combined ones that name the
//! objects they supersede. The in-memory table built from them is
//! [`crate::repository::index::Index`].

use crate::format::pack::{ENTRY_LEN, MAX_ENTRIES, PackEntry, PackSeal};
use crate::foundation::codec::Cursor;
use crate::foundation::crypto::{MasterKey, PUBLIC_LEN, SALT_LEN};
use crate::foundation::error::{Error, Result};
use crate::foundation::id::{IndexId, PackId};

/// Version byte of an index object's plaintext whose packs are all sealed under their salt's
/// subkey.
pub const INDEX_VERSION: u8 = 1;
/// Version byte of an index object's plaintext that lists a pack sealed to the repository's
/// public key or under a master key generation after the first: each pack's salt is followed
/// by a form byte (bit 0: a public key follows; bits 1–7: the generation).
pub const INDEX_VERSION_PUBLIC: u8 = 2;
/// Associated data of index objects.
pub const INDEX_AAD: &[u8] = b"cairn index v1";

/// One pack as an index object lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedPack {
    /// The pack.
    pub id: PackId,
    /// What its blobs' key comes from.
    pub seal: PackSeal,
    /// Its blobs.
    pub entries: Vec<PackEntry>,
}

/// Adds `packs` to `into`: several index objects may name one pack, each with all or some of
/// its entries, and what they say together is the union (entries told apart by offset).
pub fn union_packs<'a>(
    into: &mut std::collections::BTreeMap<PackId, IndexedPack>,
    packs: impl IntoIterator<Item = &'a IndexedPack>,
) {
    for p in packs {
        let known = into.entry(p.id).or_insert_with(|| IndexedPack { id: p.id, seal: p.seal, entries: vec![] });
        for e in &p.entries {
            if !known.entries.iter().any(|k| k.offset == e.offset) {
                known.entries.push(*e);
            }
        }
    }
}

/// The decoded content of one index object.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IndexFile {
    /// Index objects this one replaces (written by prune).
    pub supersedes: Vec<IndexId>,
    /// Packs and their blobs.
    pub packs: Vec<IndexedPack>,
}

/// Reads one pack's head in an index object of plaintext `version`: its id, seal and entry
/// count (checked against the bytes left, so a hostile count cannot make the reader reserve
/// memory).
pub(crate) fn pack_head(c: &mut Cursor<'_>, version: u8) -> Result<(PackId, PackSeal, u32), &'static str> {
    let id = PackId(c.digest()?);
    let mut seal = PackSeal::salted([0u8; SALT_LEN]);
    seal.salt.copy_from_slice(c.take(SALT_LEN)?);
    if version == INDEX_VERSION_PUBLIC {
        let form = c.u8()?;
        seal.generation = form >> 1;
        if form & 1 == 1 {
            let mut public = [0u8; PUBLIC_LEN];
            public.copy_from_slice(c.take(PUBLIC_LEN)?);
            seal.public = Some(public);
        }
    }
    let ne = c.u32()?;
    if ne > MAX_ENTRIES || ne as usize > c.remaining() / ENTRY_LEN {
        return Err("entry count exceeds the object");
    }
    Ok((id, seal, ne))
}

/// Version 2 is written only for an object listing a pack with a public key or a key
/// generation: one without is not the canonical encoding (version 1 is), and is refused.
pub(crate) fn check_public_listed(version: u8, any_extended: bool) -> Result<(), &'static str> {
    if version == INDEX_VERSION_PUBLIC && !any_extended {
        return Err("index version 2 lists no pack with a public key or a key generation");
    }
    Ok(())
}

/// Checks the version byte at the start of an index object's plaintext.
pub(crate) fn check_index_version(version: u8) -> Result<u8, &'static str> {
    match version {
        INDEX_VERSION | INDEX_VERSION_PUBLIC => Ok(version),
        _ => Err("unknown index version"),
    }
}

impl IndexFile {
    /// Encodes the plaintext.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let n: usize = self.packs.iter().map(|p| 85 + p.entries.len() * ENTRY_LEN).sum();
        let mut out = Vec::with_capacity(9 + self.supersedes.len() * 32 + n);
        // Version 1 while it can be, so a repository without write-only keys writes what
        // it always wrote.
        let public = self.packs.iter().any(|p| p.seal.is_extended());
        out.push(if public { INDEX_VERSION_PUBLIC } else { INDEX_VERSION });
        out.extend_from_slice(&(self.supersedes.len() as u32).to_le_bytes());
        for s in &self.supersedes {
            out.extend_from_slice(&s.0.0);
        }
        out.extend_from_slice(&(self.packs.len() as u32).to_le_bytes());
        for p in &self.packs {
            out.extend_from_slice(&p.id.0.0);
            out.extend_from_slice(&p.seal.salt);
            if public {
                out.push(u8::from(p.seal.public.is_some()) | p.seal.generation << 1);
                if let Some(key) = &p.seal.public {
                    out.extend_from_slice(key);
                }
            }
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
        let version = check_index_version(c.u8()?)?;
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
            let (id, seal, ne) = pack_head(&mut c, version)?;
            let entries = (0..ne).map(|_| PackEntry::decode(c.take(ENTRY_LEN)?)).collect::<Result<Vec<_>, _>>()?;
            packs.push(IndexedPack { id, seal, entries });
        }
        if c.remaining() != 0 {
            return Err("trailing bytes");
        }
        check_public_listed(version, packs.iter().any(|p| p.seal.is_extended()))?;
        Ok(IndexFile { supersedes, packs })
    }

    /// Seals for storage.
    #[must_use]
    pub fn seal(&self, master: &MasterKey) -> Vec<u8> {
        master.seal_meta(&self.encode(), INDEX_AAD)
    }

    /// Opens a stored index object.
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming the object.
    pub fn open(master: &MasterKey, id: &IndexId, sealed: &[u8]) -> Result<Self> {
        let plain =
            master.open_meta(sealed, INDEX_AAD).map_err(|e| Error::corrupt(format!("index {id}"), e.to_string()))?;
        Self::decode(&plain).map_err(|r| Error::corrupt(format!("index {id}"), r))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::format::blob::BlobKind;
    use crate::foundation::compress::Codec;
    use crate::foundation::id::{BlobId, Digest};
    use proptest::prelude::*;

    /// A made-up entry: kinds, codecs, ids and lengths varying with `i` (the index's tests use
    /// it too).
    pub(crate) fn entry(i: u32) -> PackEntry {
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
        fn file_round_trip(sizes in proptest::collection::vec(0u32..50, 0..8), sup in 0u32..3, public in proptest::collection::vec(any::<bool>(), 8)) {
            let file = IndexFile {
                supersedes: (0..sup).map(|i| IndexId(Digest::of(&[i as u8]))).collect(),
                packs: sizes.iter().enumerate().map(|(p, &n)| IndexedPack {
                    id: PackId(Digest::of(&[p as u8, 1])),
                    seal: PackSeal { salt: [p as u8; 16], public: public[p].then_some([p as u8 + 1; 32]), generation: (p % 3) as u8 * u8::from(public[(p + 1) % 8]) },
                    entries: (0..n).map(|i| entry(i + p as u32 * 100)).collect(),
                }).collect(),
            };
            let enc = file.encode();
            prop_assert_eq!(IndexFile::decode(&enc).unwrap(), file.clone());
            for cut in [0, enc.len() / 2, enc.len().saturating_sub(1)] {
                if cut < enc.len() { prop_assert!(IndexFile::decode(&enc[..cut]).is_err()); }
            }
            let any_public = file.packs.iter().any(|p| p.seal.is_extended());
            prop_assert_eq!(enc[0], if any_public { INDEX_VERSION_PUBLIC } else { INDEX_VERSION });
            // Version 2 without a public key is not canonical, and refused.
            if !any_public {
                let mut v2 = vec![INDEX_VERSION_PUBLIC];
                v2.extend_from_slice(&enc[1..]);
                prop_assert!(IndexFile::decode(&v2).is_err());
            }
            let id = IndexId::default();
            for version in [2, 3] {
                let m = MasterKey::generate().for_version(version);
                prop_assert_eq!(IndexFile::open(&m, &id, &file.seal(&m)).unwrap(), file.clone());
                // From version 3 on a write-only key reads (and writes) the index.
                let w = m.write_only();
                prop_assert_eq!(IndexFile::open(&w, &id, &file.seal(&m)).is_ok(), version == 3);
                prop_assert_eq!(IndexFile::open(&m, &id, &file.seal(&w)).unwrap(), file.clone());
            }
        }
    }
}
