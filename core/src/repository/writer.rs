//! [`BlobWriter`]: stores blobs one at a time (seal, pack, upload, index), for the operations
//! that write outside the parallel backup pipeline: prune's repacking and `copy`.
//!
//! Ordering is the repository's: a pack is uploaded before any index object names it, and
//! [`BlobWriter::finish`] writes the index object, returning a token the caller needs before it
//! may write a snapshot that uses the blobs.

use std::collections::{HashMap, HashSet};

use crate::format::blob::{self, BlobKind};
use crate::format::index::{IndexFile, IndexedPack};
use crate::format::pack::{FinishedPack, PackWriter};
use crate::foundation::crypto::{SALT_LEN, SealKey, random_salt};
use crate::foundation::error::{Error, Result};
use crate::foundation::id::{BlobId, IndexId};
use crate::repository::Repository;
use crate::repository::index::Index;
use crate::repository::store::{ObjectKey, ObjectKind, StoreError};

/// Proof that the index naming a writer's blobs was written.
#[must_use]
#[derive(Debug)]
pub struct IndexCommitted(pub Option<IndexId>);

/// Writes blobs into packs of one repository.
pub struct BlobWriter<'r> {
    repo: &'r Repository,
    salt: [u8; SALT_LEN],
    key: SealKey,
    writers: HashMap<BlobKind, PackWriter>,
    written: HashSet<BlobId>,
    packs: Vec<IndexedPack>,
    /// Bytes uploaded.
    pub bytes_uploaded: u64,
    /// Blobs stored.
    pub blobs_written: u64,
}

impl<'r> BlobWriter<'r> {
    /// A writer for `repo`.
    #[must_use]
    pub fn new(repo: &'r Repository) -> Self {
        let salt = random_salt();
        BlobWriter {
            repo,
            salt,
            key: repo.master().subkey(&salt),
            writers: HashMap::new(),
            written: HashSet::new(),
            packs: Vec::new(),
            bytes_uploaded: 0,
            blobs_written: 0,
        }
    }

    /// Stores a blob unless `index` or this writer already has it; returns its id.
    ///
    /// # Errors
    /// Store errors uploading a full pack.
    pub fn add(&mut self, index: &Index, kind: BlobKind, plain: &[u8]) -> Result<BlobId> {
        let id = self.repo.master().blob_id(plain);
        self.add_with_id(index, kind, id, plain)?;
        Ok(id)
    }

    /// As [`BlobWriter::add`] when the caller already knows the id.
    ///
    /// # Errors
    /// Store errors uploading a full pack.
    pub fn add_with_id(&mut self, index: &Index, kind: BlobKind, id: BlobId, plain: &[u8]) -> Result<()> {
        if index.contains(&id) || !self.written.insert(id) {
            return Ok(());
        }
        let target = self.repo.config().pack_size as usize;
        let sealed = blob::seal(&self.key, kind, id, plain, self.repo.config().compression);
        self.blobs_written += 1;
        let salt = self.salt;
        let w = self.writers.entry(kind).or_insert_with(|| PackWriter::new(salt, target));
        w.add(sealed);
        if w.is_full(target) {
            let full = std::mem::replace(w, PackWriter::new(salt, target));
            let finished = full.finish(&self.key);
            self.upload(finished)?;
        }
        Ok(())
    }

    fn upload(&mut self, pack: FinishedPack) -> Result<()> {
        let key = ObjectKey::new(ObjectKind::Pack, pack.id.0);
        self.bytes_uploaded += pack.bytes.len() as u64;
        match self.repo.store().put(&key, pack.bytes) {
            Ok(()) | Err(StoreError::AlreadyExists) => {}
            Err(cause) => return Err(Error::Store { key, cause }),
        }
        self.packs.push(IndexedPack { id: pack.id, salt: pack.salt, entries: pack.entries });
        Ok(())
    }

    /// Whether this writer stored the blob.
    #[must_use]
    pub fn has(&self, id: &BlobId) -> bool {
        self.written.contains(id)
    }

    /// Uploads what is left and returns the packs written, without writing an index object
    /// (for callers that write their own, such as prune).
    ///
    /// # Errors
    /// Store errors.
    pub fn finish_packs(mut self) -> Result<Vec<IndexedPack>> {
        self.flush()?;
        Ok(self.packs)
    }

    fn flush(&mut self) -> Result<()> {
        let writers: Vec<PackWriter> = self.writers.drain().map(|(_, w)| w).collect();
        for w in writers {
            if !w.is_empty() {
                let finished = w.finish(&self.key);
                self.upload(finished)?;
            }
        }
        Ok(())
    }

    /// As [`BlobWriter::finish`], also returning the bytes uploaded in all.
    ///
    /// # Errors
    /// Store errors.
    pub fn finish_counted(mut self) -> Result<(IndexCommitted, u64)> {
        let repo = self.repo;
        self.flush()?;
        let bytes = self.bytes_uploaded;
        let packs = std::mem::take(&mut self.packs);
        if packs.is_empty() {
            return Ok((IndexCommitted(None), bytes));
        }
        Ok((IndexCommitted(Some(repo.save_index(&IndexFile { supersedes: vec![], packs })?)), bytes))
    }

    /// Uploads what is left and writes the index object naming every pack written.
    ///
    /// # Errors
    /// Store errors.
    pub fn finish(self) -> Result<IndexCommitted> {
        Ok(self.finish_counted()?.0)
    }
}
