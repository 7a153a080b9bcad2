//! [`CachedStore`]: a local disk cache of repository metadata for remote stores.
//!
//! Index objects, snapshots, key files, the config and ranges of tree blobs are kept in a
//! directory per repository, so listing snapshots or planning a restore on a remote repository
//! does not download the whole index every time. Objects are content-addressed: every cached
//! object is checked against its name (BLAKE3) when read, and everything is authenticated again
//! when opened, so a damaged cache is detected and refetched, never trusted. Entries of objects
//! the store no longer lists are removed when the kind is listed.

use std::ops::Range;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::{ObjectInfo, ObjectKey, ObjectKind, Store, StoreError};
use crate::id::Digest;

/// A store with a local metadata cache in front.
pub struct CachedStore<S> {
    inner: S,
    dir: PathBuf,
}

impl<S: Store> CachedStore<S> {
    /// Caches `inner` in `dir` (created when needed).
    pub fn new(inner: S, dir: PathBuf) -> Self {
        CachedStore { inner, dir }
    }

    fn cacheable(kind: ObjectKind) -> bool {
        matches!(kind, ObjectKind::Index | ObjectKind::Snapshot | ObjectKind::Key)
    }

    fn path(&self, key: &ObjectKey) -> PathBuf {
        self.dir.join(key.path())
    }

    fn range_path(&self, key: &ObjectKey, range: &Range<u64>) -> PathBuf {
        self.dir.join("trees").join(format!("{}-{}-{}", key.id, range.start, range.end))
    }

    fn read(path: &Path) -> Option<Bytes> {
        std::fs::read(path).ok().map(Bytes::from)
    }

    fn write(path: &Path, data: &[u8]) {
        // A cache that cannot be written only costs speed.
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, data).is_ok() {
            let _ = std::fs::rename(&tmp, path);
        }
    }
}

impl<S: Store> Store for CachedStore<S> {
    fn put(&self, key: &ObjectKey, data: Bytes) -> Result<(), StoreError> {
        self.inner.put(key, data.clone())?;
        if Self::cacheable(key.kind) {
            Self::write(&self.path(key), &data);
        }
        Ok(())
    }

    fn get(&self, key: &ObjectKey) -> Result<Bytes, StoreError> {
        if Self::cacheable(key.kind) {
            let path = self.path(key);
            if let Some(data) = Self::read(&path) {
                if Digest::of(&data) == key.id {
                    return Ok(data);
                }
                let _ = std::fs::remove_file(&path);
            }
            let data = self.inner.get(key)?;
            if Digest::of(&data) == key.id {
                Self::write(&path, &data);
            }
            return Ok(data);
        }
        self.inner.get(key)
    }

    fn get_range(&self, key: &ObjectKey, range: Range<u64>) -> Result<Bytes, StoreError> {
        self.inner.get_range(key, range)
    }

    fn get_range_into(&self, key: &ObjectKey, range: Range<u64>, buf: &mut Vec<u8>) -> Result<(), StoreError> {
        self.inner.get_range_into(key, range, buf)
    }

    fn get_range_cacheable(&self, key: &ObjectKey, range: Range<u64>) -> Result<Bytes, StoreError> {
        let path = self.range_path(key, &range);
        if let Some(data) = Self::read(&path)
            && data.len() as u64 == range.end - range.start
        {
            // The blob inside is authenticated by the caller; a damaged entry fails there and
            // is not worse than a damaged download.
            return Ok(data);
        }
        let data = self.inner.get_range(key, range)?;
        Self::write(&path, &data);
        Ok(data)
    }

    fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectInfo>, StoreError> {
        let listed = self.inner.list(kind)?;
        if Self::cacheable(kind)
            && let Ok(entries) = std::fs::read_dir(self.dir.join(kind.dir()))
        {
            let live: std::collections::HashSet<String> = listed.iter().map(|i| i.key.id.to_hex()).collect();
            for e in entries.flatten() {
                if !live.contains(&*e.file_name().to_string_lossy()) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Ok(listed)
    }

    fn delete(&self, key: &ObjectKey) -> Result<(), StoreError> {
        if Self::cacheable(key.kind) {
            let _ = std::fs::remove_file(self.path(key));
        }
        self.inner.delete(key)
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn is_remote(&self) -> bool {
        self.inner.is_remote()
    }
}
