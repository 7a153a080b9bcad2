//! The index objects (FORMAT.md §11): loading them into one in-memory index, listing and
//! decoding them, and storing new ones.

use bytes::Bytes;

use super::{PACKS_PER_INDEX, Repository, store_err};
use crate::format::index::{INDEX_AAD, IndexFile, IndexedPack};
use crate::foundation::error::{Error, Result};
use crate::foundation::id::{Digest, IndexId};
use crate::repository::index::Index;
use crate::repository::store::{ObjectKey, ObjectKind, StoreError};

impl Repository {
    /// Loads every index object into one in-memory index.
    ///
    /// # Errors
    /// Store errors and damaged index objects.
    pub fn load_index(&self) -> Result<Index> {
        // A concurrent prune deletes the index objects it supersedes right after writing their
        // replacement: an object listed but gone by the time it is read means "list again".
        let mut attempt: u32 = 0;
        loop {
            match self.load_index_once() {
                Err(Error::Store { cause: StoreError::NotFound(_), .. }) if attempt < 20 => {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10 * u64::from(attempt)));
                }
                other => return other,
            }
        }
    }

    fn load_index_once(&self) -> Result<Index> {
        let infos = self.store.list(ObjectKind::Index).map_err(Error::Storage)?;
        let objects: Vec<(IndexId, u64)> = infos.iter().map(|i| (IndexId(i.key.id), i.size)).collect();
        match &self.index_cache {
            Some((dir, min_blobs)) => {
                Index::load_cached(&dir.join("table"), *min_blobs, &objects, |id| self.index_plaintext(id))
            }
            None => Index::load(&objects, |id| self.index_plaintext(id)),
        }
    }

    /// Fetches, verifies and decrypts one index object. The stored bytes are freed before it
    /// returns, so only the plaintext stays.
    pub(super) fn index_plaintext(&self, id: &IndexId) -> Result<Vec<u8>> {
        let key = ObjectKey::new(ObjectKind::Index, id.0);
        let data = self.store.get(&key).map_err(store_err(key))?;
        let open = || self.master.open_meta(&data, INDEX_AAD);
        // Hashing and decrypting each read the whole object: for a large one, on two cores.
        let (digest, plain) =
            if data.len() < 1 << 20 { (Digest::of(&data), open()) } else { rayon::join(|| Digest::of(&data), open) };
        if digest != key.id {
            return Err(Error::corrupt(key, "content does not match its name"));
        }
        plain.map_err(|e| Error::corrupt(format!("index {id}"), e.to_string()))
    }

    /// The names of the index objects in the store now.
    ///
    /// # Errors
    /// Store errors listing.
    pub fn index_ids(&self) -> Result<std::collections::HashSet<IndexId>> {
        Ok(self.store.list(ObjectKind::Index).map_err(Error::Storage)?.into_iter().map(|i| IndexId(i.key.id)).collect())
    }

    /// Every index object, decoded.
    ///
    /// # Errors
    /// Store errors and damaged index objects.
    pub fn index_files(&self) -> Result<Vec<(IndexId, IndexFile)>> {
        let mut attempt: u32 = 0;
        'list: loop {
            let infos = self.store.list(ObjectKind::Index).map_err(Error::Storage)?;
            let mut out = Vec::with_capacity(infos.len());
            for info in infos {
                let id = IndexId(info.key.id);
                match self.get_verified(info.key) {
                    Ok(data) => out.push((id, IndexFile::open(&self.master, &id, &data)?)),
                    // Superseded and deleted by a concurrent prune since the listing.
                    Err(Error::Store { cause: StoreError::NotFound(_), .. }) if attempt < 20 => {
                        attempt += 1;
                        std::thread::sleep(std::time::Duration::from_millis(10 * u64::from(attempt)));
                        continue 'list;
                    }
                    Err(e) => return Err(e),
                }
            }
            return Ok(out);
        }
    }

    /// Stores an index object.
    ///
    /// # Errors
    /// Store errors.
    pub fn save_index(&self, file: &IndexFile) -> Result<IndexId> {
        let bytes = file.seal(&self.master);
        let id = IndexId(Digest::of(&bytes));
        let key = ObjectKey::new(ObjectKind::Index, id.0);
        self.store.put(&key, Bytes::from(bytes)).map_err(store_err(key))?;
        Ok(id)
    }

    /// Stores `packs` as index objects of at most `PACKS_PER_INDEX` (4096) packs each, the first
    /// naming `supersedes` (one object with no pack when there are none, so the old objects are
    /// still superseded). Readers take the union of all objects, so an interruption between two
    /// writes leaves duplicates, never a gap.
    ///
    /// # Errors
    /// Store errors writing.
    pub fn save_index_objects(&self, supersedes: &[IndexId], packs: &[IndexedPack]) -> Result<()> {
        let mut supersedes = supersedes.to_vec();
        for chunk in packs.chunks(PACKS_PER_INDEX) {
            self.save_index(&IndexFile { supersedes: std::mem::take(&mut supersedes), packs: chunk.to_vec() })?;
        }
        if packs.is_empty() && !supersedes.is_empty() {
            self.save_index(&IndexFile { supersedes, packs: vec![] })?;
        }
        Ok(())
    }
}
