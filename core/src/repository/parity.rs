//! Data packs' parity in the store (FORMAT.md §10a): written beside each new data pack when the
//! config asks for it, and used to rebuild a pack whose bytes no longer match its name.

use bytes::Bytes;

use crate::format::parity;
use crate::foundation::error::{Error, Result};
use crate::foundation::id::{Digest, PackId};
use crate::repository::Repository;
use crate::repository::store::{ObjectKey, ObjectKind, PutHints, StoreError};

/// What [`Repository::rebuild_pack`] found.
#[derive(Debug)]
pub enum Rebuilt {
    /// The pack's bytes are right as stored.
    Intact(Bytes),
    /// The pack was damaged, missing or cut short, and its parity rebuilt it (checked against
    /// its name).
    Repaired {
        /// The rebuilt bytes.
        pack: Vec<u8>,
        /// What was wrong with the stored pack.
        damage: String,
    },
}

impl Repository {
    /// Stores the parity of data pack `id` (whose bytes are `pack`), when the config asks for
    /// parity. An existing parity object of the same pack is kept: it covers the same bytes.
    ///
    /// # Errors
    /// Store errors.
    pub fn put_parity(&self, id: &PackId, pack: &[u8]) -> Result<()> {
        let percent = self.config().data_parity;
        if percent == 0 {
            return Ok(());
        }
        let key = ObjectKey::new(ObjectKind::Parity, id.0);
        let bytes = parity::encode(pack, percent)?;
        let hints = PutHints::storage_class(self.config().data_storage_class.as_deref());
        match self.store().put_with(&key, Bytes::from(bytes), hints) {
            Ok(()) | Err(StoreError::AlreadyExists) => Ok(()),
            Err(cause) => Err(Error::Store { key, cause }),
        }
    }

    /// Reads pack `id` whole, rebuilding it from its parity when its bytes do not match its
    /// name (or it is missing) and a parity object exists.
    ///
    /// # Errors
    /// Store errors reading it; [`Error::Corrupt`] when it is damaged and has no parity, or
    /// more is damaged than the parity covers.
    pub fn rebuild_pack(&self, id: &PackId) -> Result<Rebuilt> {
        let key = ObjectKey::new(ObjectKind::Pack, id.0);
        let stored = match self.store().get(&key) {
            Ok(data) if Digest::of(&data) == id.0 => return Ok(Rebuilt::Intact(data)),
            Ok(data) => Ok(data),
            Err(StoreError::NotFound(_)) => Err("missing from storage".to_string()),
            Err(cause) => return Err(Error::Store { key, cause }),
        };
        let damage = match &stored {
            Ok(_) => "content does not match its name".to_string(),
            Err(why) => why.clone(),
        };
        let stored = stored.unwrap_or_default();
        self.repair_from_parity(id, &stored).map(|pack| Rebuilt::Repaired { pack, damage })
    }

    /// Rebuilds pack `id` from `damaged` (what is left of its bytes) and its parity object.
    ///
    /// # Errors
    /// Store errors; [`Error::Corrupt`] when there is no parity object, or it does not rebuild
    /// bytes matching the pack's name.
    pub fn repair_from_parity(&self, id: &PackId, damaged: &[u8]) -> Result<Vec<u8>> {
        let key = ObjectKey::new(ObjectKind::Parity, id.0);
        let pack_key = ObjectKey::new(ObjectKind::Pack, id.0);
        let stored = match self.store().get(&key) {
            Ok(data) => data,
            Err(StoreError::NotFound(_)) => return Err(Error::corrupt(pack_key, "damaged, and it has no parity")),
            Err(cause) => return Err(Error::Store { key, cause }),
        };
        let repaired = parity::repair(&stored, damaged)
            .map_err(|e| Error::corrupt(pack_key, format!("damaged, and its parity cannot rebuild it: {e}")))?;
        if Digest::of(&repaired.pack) != id.0 {
            return Err(Error::corrupt(pack_key, "damaged, and its parity rebuilds other bytes"));
        }
        Ok(repaired.pack)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InitOptions;
    use crate::format::blob::BlobKind;
    use crate::repository::testing::memory_repo_with;
    use crate::repository::writer::WriteOptions;

    #[test]
    fn data_packs_get_parity_that_rebuilds_them() {
        let options = InitOptions { data_parity: 10, ..Default::default() };
        let repo = memory_repo_with("parity-rebuilds", &options);
        let index = repo.load_index().unwrap();
        let data: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let _ = repo.write_blobs(&index, WriteOptions::default(), |w| w.add(BlobKind::Data, &data)).unwrap();
        let packs = repo.store().list(ObjectKind::Pack).unwrap();
        let parities = repo.store().list(ObjectKind::Parity).unwrap();
        assert_eq!(packs.len(), 1, "one data pack");
        assert_eq!(parities.len(), 1, "and its parity");
        assert_eq!(parities[0].key.id, packs[0].key.id);

        let id = PackId(packs[0].key.id);
        let mut bytes = repo.store().get(&packs[0].key).unwrap().to_vec();
        let original = bytes.clone();
        bytes[100] ^= 0x40;
        repo.store().delete(&packs[0].key).unwrap();
        repo.store().put(&packs[0].key, Bytes::from(bytes)).unwrap();
        match repo.rebuild_pack(&id).unwrap() {
            Rebuilt::Repaired { pack, damage } => {
                assert_eq!(pack, original);
                assert!(damage.contains("does not match"), "{damage}");
            }
            Rebuilt::Intact(_) => panic!("the damage was not seen"),
        }
        repo.store().delete(&parities[0].key).unwrap();
        let err = repo.rebuild_pack(&id).unwrap_err().to_string();
        assert!(err.contains("no parity"), "{err}");
    }

    #[test]
    fn without_the_setting_no_parity_is_written() {
        let repo = memory_repo_with("parity-none", &InitOptions::default());
        let index = repo.load_index().unwrap();
        let _ = repo.write_blobs(&index, WriteOptions::default(), |w| w.add(BlobKind::Data, b"some data")).unwrap();
        assert_eq!(repo.store().list(ObjectKind::Pack).unwrap().len(), 1);
        assert!(repo.store().list(ObjectKind::Parity).unwrap().is_empty());
    }
}
