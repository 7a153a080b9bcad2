//! [`LockingStore`]: every object a repository with object lock writes is retained (S3 Object
//! Lock, issue 15, item 3; FORMAT.md §7 `object_lock`).
//!
//! `object_store` cannot send S3's object-lock headers with a put, so the retention is set
//! right after it (`PutObjectRetention`), for every kind but session markers and garbage lists
//! (prune's own bookkeeping, which must come and go) and tenant keys (which erasure must be
//! able to destroy: a tenant's locked data then stays stored and unreadable). A put whose
//! retention cannot be set fails: an object the repository says is locked always is.

use std::ops::Range;

use bytes::Bytes;

use super::{LockMode, ObjectInfo, ObjectKey, ObjectKind, PutHints, Store, StoreError, WarmUp};
use crate::format::config::ObjectLock;

/// Whether objects of `kind` are retained in a repository with object lock.
#[must_use]
pub fn is_locked(kind: ObjectKind) -> bool {
    !matches!(kind, ObjectKind::Session | ObjectKind::Garbage | ObjectKind::Tenant)
}

/// A store that retains what it writes.
pub struct LockingStore<S> {
    inner: S,
    lock: ObjectLock,
}

impl<S: Store> LockingStore<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, lock: ObjectLock) -> Self {
        LockingStore { inner, lock }
    }

    fn retain_new(&self, key: &ObjectKey) -> Result<(), StoreError> {
        if !is_locked(key.kind) {
            return Ok(());
        }
        self.inner.retain(key, self.lock.mode, self.lock.until(jiff::Timestamp::now()))
    }
}

impl<S: Store> Store for LockingStore<S> {
    fn put_with(&self, key: &ObjectKey, data: Bytes, hints: PutHints<'_>) -> Result<(), StoreError> {
        self.inner.put_with(key, data, hints)?;
        self.retain_new(key)
    }
    fn replace(&self, key: &ObjectKey, data: Bytes) -> Result<(), StoreError> {
        self.inner.replace(key, data)?;
        self.retain_new(key)
    }
    fn get(&self, key: &ObjectKey) -> Result<Bytes, StoreError> {
        self.inner.get(key)
    }
    fn get_range(&self, key: &ObjectKey, range: Range<u64>) -> Result<Bytes, StoreError> {
        self.inner.get_range(key, range)
    }
    fn get_range_cacheable(&self, key: &ObjectKey, range: Range<u64>) -> Result<Bytes, StoreError> {
        self.inner.get_range_cacheable(key, range)
    }
    fn uncache_range(&self, key: &ObjectKey, range: Range<u64>) {
        self.inner.uncache_range(key, range);
    }
    fn get_range_into(&self, key: &ObjectKey, range: Range<u64>, buf: &mut Vec<u8>) -> Result<(), StoreError> {
        self.inner.get_range_into(key, range, buf)
    }
    fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectInfo>, StoreError> {
        self.inner.list(kind)
    }
    fn delete(&self, key: &ObjectKey) -> Result<(), StoreError> {
        self.inner.delete(key)
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn is_remote(&self) -> bool {
        self.inner.is_remote()
    }
    fn list_ahead(&self, kinds: &[ObjectKind]) {
        self.inner.list_ahead(kinds);
    }
    fn forget_listed_ahead(&self) {
        self.inner.forget_listed_ahead();
    }
    fn cached(&self, kind: ObjectKind) -> Vec<(ObjectKey, Bytes)> {
        self.inner.cached(kind)
    }
    fn local_root(&self) -> Option<&std::path::Path> {
        self.inner.local_root()
    }
    fn make_private(&self, group_readable: bool) -> Result<(), StoreError> {
        self.inner.make_private(group_readable)
    }
    fn nested(&self, dir: &str) -> Result<std::sync::Arc<dyn Store>, StoreError> {
        Ok(std::sync::Arc::new(LockingStore::new(self.inner.nested(dir)?, self.lock)))
    }
    fn is_warm(&self, key: &ObjectKey) -> Result<bool, StoreError> {
        self.inner.is_warm(key)
    }
    fn warm_up(&self, key: &ObjectKey, request: &WarmUp) -> Result<(), StoreError> {
        self.inner.warm_up(key, request)
    }
    fn retain(&self, key: &ObjectKey, mode: LockMode, until: jiff::Timestamp) -> Result<(), StoreError> {
        self.inner.retain(key, mode, until)
    }
    fn retained_until(&self, key: &ObjectKey) -> Result<Option<jiff::Timestamp>, StoreError> {
        self.inner.retained_until(key)
    }
}
