//! Garbage lists (FORMAT.md §Prune): the packs one prune took out of the index, waiting out the
//! grace period before a later prune deletes them. Each pack is listed with its salt, size and
//! index entries, so a pack a newer snapshot turns out to need is put back into the index
//! without reading its header.
//!
//! Stored as sealed CBOR of [`GarbageList`] (associated data `cairn garbage v1`), named by the
//! BLAKE3 of the stored bytes.

use serde::{Deserialize, Serialize};

use crate::format::index::IndexedPack;
use crate::format::pack::{ENTRY_LEN, PackEntry, PackSeal};
use crate::foundation::crypto::{MasterKey, PUBLIC_LEN, SALT_LEN};
use crate::foundation::error::Result;
use crate::foundation::id::{ObjectKey, PackId};

const GARBAGE_AAD: &[u8] = b"cairn garbage v1";
/// Version of the garbage list encoding.
pub const GARBAGE_VERSION: u32 = 1;

/// A garbage list: packs waiting for deletion, with their entries so they can be resurrected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GarbageList {
    /// [`GARBAGE_VERSION`].
    pub version: u32,
    /// The packs.
    pub packs: Vec<GarbagePack>,
}

/// One pack on a garbage list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GarbagePack {
    /// The pack.
    pub id: PackId,
    /// Its salt (all zero for a pack no index named, whose header was never read), followed
    /// for a pack sealed to the repository's public key by that pack's ephemeral public key,
    /// and for a pack of a key generation after the first by that generation (one byte).
    #[serde(with = "serde_bytes")]
    pub salt: Vec<u8>,
    /// Its size in bytes.
    pub size: u64,
    /// Entries as in index objects (46 bytes each), so a resurrected pack needs no header read.
    #[serde(with = "serde_bytes")]
    pub entries: Vec<u8>,
}

impl GarbagePack {
    /// The listing of an indexed pack of `size` bytes.
    #[must_use]
    pub fn from_indexed(p: &IndexedPack, size: u64) -> Self {
        let mut entries = Vec::with_capacity(p.entries.len() * ENTRY_LEN);
        for e in &p.entries {
            e.encode_into(&mut entries);
        }
        let mut salt = p.seal.salt.to_vec();
        if let Some(public) = &p.seal.public {
            salt.extend_from_slice(public);
        }
        if p.seal.generation > 0 {
            salt.push(p.seal.generation);
        }
        GarbagePack { id: p.id, salt, size, entries }
    }

    /// The listing of a pack no index names (left by an interrupted backup).
    #[must_use]
    pub fn unindexed(id: PackId, size: u64) -> Self {
        GarbagePack { id, salt: vec![0; SALT_LEN], size, entries: Vec::new() }
    }

    /// The pack as an index object would list it; `None` when the salt or an entry is
    /// malformed.
    #[must_use]
    pub fn to_indexed(&self) -> Option<IndexedPack> {
        // salt ‖ [public] ‖ [generation], told apart by length.
        let (fields, generation) = match self.salt.len() {
            n if n == SALT_LEN + 1 || n == SALT_LEN + PUBLIC_LEN + 1 => (&self.salt[..n - 1], self.salt[n - 1]),
            _ => (&self.salt[..], 0),
        };
        let seal = match fields.len() {
            SALT_LEN => PackSeal { generation, ..PackSeal::salted(fields.try_into().ok()?) },
            n if n == SALT_LEN + PUBLIC_LEN => PackSeal {
                salt: fields[..SALT_LEN].try_into().ok()?,
                public: Some(fields[SALT_LEN..].try_into().ok()?),
                generation,
            },
            _ => return None,
        };
        let entries = self.entries.chunks(ENTRY_LEN).map(PackEntry::decode).collect::<Result<Vec<_>, _>>().ok()?;
        Some(IndexedPack { id: self.id, seal, entries })
    }
}

impl GarbageList {
    /// A list of `packs`.
    #[must_use]
    pub fn new(packs: Vec<GarbagePack>) -> Self {
        GarbageList { version: GARBAGE_VERSION, packs }
    }

    /// Encodes and seals the list for storage.
    #[must_use]
    pub fn seal(&self, master: &MasterKey) -> Vec<u8> {
        super::seal_cbor(master, self, GARBAGE_AAD)
    }

    /// Opens the stored list `key`.
    ///
    /// # Errors
    /// [`Error::Corrupt`](crate::Error::Corrupt) naming it when it fails authentication or decoding.
    pub fn open(master: &MasterKey, key: &ObjectKey, sealed: &[u8]) -> Result<Self> {
        let plain = super::open_sealed(master, key, sealed, GARBAGE_AAD)?;
        super::decode_cbor(key, &plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::foundation::id::{Digest, ObjectKind};

    #[test]
    fn round_trip_and_tamper() {
        let m = MasterKey::generate();
        let list = GarbageList::new(vec![GarbagePack::unindexed(PackId(Digest::of(b"p")), 42)]);
        let key = ObjectKey::new(ObjectKind::Garbage, Digest::of(b"g"));
        let sealed = list.seal(&m);
        assert_eq!(GarbageList::open(&m, &key, &sealed).unwrap(), list);
        let mut bad = sealed.clone();
        bad[20] ^= 1;
        assert!(GarbageList::open(&m, &key, &bad).unwrap_err().to_string().contains("garbage list"));
        assert!(list.packs[0].to_indexed().is_some_and(|p| p.entries.is_empty()));
    }
}
