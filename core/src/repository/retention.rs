//! Deleting objects: whether the storage credentials may, and what object lock still retains
//! (FORMAT.md §7 `object_lock`).

use super::{Repository, store_err};
use crate::format::config::ObjectLock;
use crate::foundation::error::{Error, Result};
use crate::foundation::id::Digest;
use crate::repository::store::batch;
use crate::repository::store::{self, ObjectKey, ObjectKind, StoreError};

impl Repository {
    /// Makes sure the storage credentials may delete objects, before an operation that
    /// deletes (forget, prune) changes anything: deletes the name of a session marker no one
    /// wrote. Append-only credentials (a backup host's, docs/PERMISSIONS.md) are refused here,
    /// so such an operation fails cleanly instead of half done.
    ///
    /// # Errors
    /// [`Error::Storage`] with [`StoreError::PermissionDenied`] naming the operation, and other
    /// store errors.
    pub fn ensure_can_delete(&self, operation: &str) -> Result<()> {
        let mut id = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
        let key = ObjectKey::new(ObjectKind::Session, Digest(id));
        match self.store.delete(&key) {
            Ok(()) | Err(StoreError::NotFound(_)) => Ok(()),
            Err(StoreError::PermissionDenied(why)) => Err(Error::Storage(StoreError::PermissionDenied(format!(
                "{operation} deletes objects, and these storage credentials may not; nothing was changed. \
                 Run it with the operator's credentials (docs/PERMISSIONS.md). The store said: {why}"
            )))),
            Err(cause) => Err(Error::Store { key, cause }),
        }
    }

    /// Deletes `key` unless object lock still retains it: returns `None` once it is deleted,
    /// or the date it is retained until, without trying (FORMAT.md §7 `object_lock`).
    ///
    /// # Errors
    /// Store errors.
    pub fn delete_unless_held(&self, key: &ObjectKey) -> Result<Option<jiff::Timestamp>> {
        if self.config.object_lock.is_some() && store::lock::is_locked(key.kind) {
            match self.store.retained_until(key) {
                Ok(Some(until)) if until > jiff::Timestamp::now() => return Ok(Some(until)),
                Ok(_) => {}
                Err(StoreError::NotFound(_)) => return Ok(None),
                Err(cause) => return Err(Error::Store { key: *key, cause }),
            }
        }
        self.store.delete(key).map_err(store_err(*key))?;
        Ok(None)
    }

    /// Extends the retention of `keys` that object lock would release within half its period
    /// to a whole period from now, so what kept snapshots need stays locked while they are
    /// kept (prune calls it for everything it keeps). Returns how many were extended.
    ///
    /// # Errors
    /// Store errors.
    pub fn extend_retention(&self, keys: &[ObjectKey]) -> Result<u64> {
        let Some(lock) = self.config.object_lock else { return Ok(0) };
        let now = jiff::Timestamp::now();
        let half = ObjectLock { seconds: lock.seconds / 2, ..lock }.until(now);
        let keys: Vec<ObjectKey> = keys.iter().filter(|k| store::lock::is_locked(k.kind)).copied().collect();
        let extended = batch::try_map(&keys, batch::in_flight(self.store.as_ref(), 0), |key| {
            let extend = || match self.store.retained_until(key)? {
                Some(until) if until > half => Ok(false),
                _ => self.store.retain(key, lock.mode, lock.until(now)).map(|()| true),
            };
            match extend() {
                // Deleted since it was listed: nothing to keep.
                Err(StoreError::NotFound(_)) => Ok(false),
                other => other.map_err(store_err(*key)),
            }
        })?;
        Ok(extended.into_iter().filter(|&e| e).count() as u64)
    }
}
