//! The uploader threads: each stores finished packs (a data pack's parity first), and names
//! them in index objects: a checkpoint every [`CHECKPOINT_PACKS`] packs, the rest at the end.

use std::sync::atomic::Ordering;

use crossbeam_channel::{Receiver, Sender};

use super::{CHECKPOINT_PACKS, Indexing, Shared, lock};
use crate::format::blob::BlobKind;
use crate::format::index::{IndexFile, IndexedPack};
use crate::format::pack::FinishedPack;
use crate::foundation::error::{Error, Result, StoreError};
use crate::foundation::id::{ObjectKey, ObjectKind};
use crate::repository::store::PutHints;

impl Shared<'_> {
    /// Uploads packs; writes an index checkpoint every [`CHECKPOINT_PACKS`] packs.
    pub(super) fn uploader(&self, packs: &Receiver<FinishedPack>, spare: &Sender<Vec<u8>>) {
        for pack in packs {
            if self.failed.load(Ordering::SeqCst) {
                continue; // drain, so the packer never blocks
            }
            let key = ObjectKey::new(ObjectKind::Pack, pack.id.0);
            let len = pack.bytes.len() as u64;
            // A data pack's parity goes first: every pack an index names then has its parity
            // (trees are stored twice instead). Data packs go in the data storage class; tree
            // packs stay in the default one, so listing and browsing never touch cold objects.
            let data = pack.entries.first().is_some_and(|e| e.kind == BlobKind::Data);
            if data && let Err(e) = self.repo.put_parity(&pack.id, &pack.bytes) {
                self.fail(e);
                continue;
            }
            let class = if data { self.repo.config().data_storage_class.as_deref() } else { None };
            let put = self.repo.store().put_with(&key, pack.bytes.clone(), PutHints::storage_class(class));
            // The packer reuses the buffer when the store kept no reference to it.
            if let Ok(buf) = pack.bytes.try_into_mut() {
                let _ = spare.try_send(buf.into());
            }
            match put {
                // The same bytes uploaded before (by an interrupted run): a content address.
                Ok(()) | Err(StoreError::AlreadyExists) => {}
                Err(cause) => {
                    self.fail(Error::Store { key, cause });
                    continue;
                }
            }
            self.packs_uploaded.fetch_add(1, Ordering::Relaxed);
            self.bytes_uploaded.fetch_add(len, Ordering::Relaxed);
            let indexed = IndexedPack { id: pack.id, seal: pack.seal, entries: pack.entries };
            if let Err(e) = self.uploaded_one(indexed) {
                self.fail(e);
            }
        }
    }

    fn uploaded_one(&self, pack: IndexedPack) -> Result<()> {
        lock(&self.uploaded)?.push(pack.clone());
        let checkpoint = {
            let mut waiting = lock(&self.unindexed)?;
            waiting.push(pack);
            (self.indexing == Indexing::Writer && waiting.len() >= CHECKPOINT_PACKS)
                .then(|| std::mem::take(&mut *waiting))
        };
        if let Some(packs) = checkpoint {
            let id = self.repo.save_index(&IndexFile { supersedes: vec![], packs })?;
            lock(&self.own_indexes)?.push(id);
        }
        Ok(())
    }

    /// Names the packs not yet in an index object of this writer in one.
    pub(super) fn index_the_rest(&self) -> Result<()> {
        let rest = std::mem::take(&mut *lock(&self.unindexed)?);
        if !rest.is_empty() {
            let id = self.repo.save_index(&IndexFile { supersedes: vec![], packs: rest })?;
            lock(&self.own_indexes)?.push(id);
        }
        Ok(())
    }
}
