//! [`CachedStore`]: a local disk cache of repository metadata for remote stores.
//!
//! Index objects, snapshots, key files, run records, the config and ranges of tree blobs are
//! kept in a directory per repository, so listing snapshots or planning a restore on a remote
//! repository does not download the whole index every time (nor `cairn run` every record). Objects are content-addressed: every cached
//! object is checked against its name (BLAKE3) when read, and everything is authenticated again
//! when opened, so a damaged cache is detected and refetched, never trusted. Entries of objects
//! the store no longer lists are removed when the kind is listed.
//!
//! It also holds listings taken ahead of need ([`Store::list_ahead`]): a repository being
//! opened lists its snapshots and index while the password's key is derived, and the first
//! listing of each kind that follows uses that one instead of waiting another round trip.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{ObjectInfo, ObjectKey, ObjectKind, PutHints, Store, StoreError};
use crate::foundation::id::Digest;
use crate::foundation::private::{self, Modes};

/// A store with a local metadata cache in front.
pub struct CachedStore<S> {
    inner: S,
    dir: PathBuf,
    /// Listings taken ahead, by kind, with when they were asked for.
    primed: Mutex<HashMap<ObjectKind, (Instant, Vec<ObjectInfo>)>>,
    /// Puts and deletes so far: a listing taken ahead while one ran may miss it.
    changes: AtomicU64,
}

/// How long a listing taken ahead stands in for a new one: long enough to span a slow key
/// derivation, short enough that it is as fresh as one taken when the command started.
const PRIMED_FOR: Duration = Duration::from_secs(10);

impl<S: Store> CachedStore<S> {
    /// Caches `inner` in `dir` (created when needed).
    pub fn new(inner: S, dir: PathBuf) -> Self {
        // The cache's directories are created for the owner alone (a cache root that exists
        // keeps its mode; this repository's directory in it is made private).
        let _ = private::create_dir_all(&dir, Modes::PRIVATE.dir);
        CachedStore { inner, dir, primed: Mutex::new(HashMap::new()), changes: AtomicU64::new(0) }
    }

    /// The listing of `kind` taken ahead, if there is a fresh one; it serves once.
    fn take_primed(&self, kind: ObjectKind) -> Option<Vec<ObjectInfo>> {
        let (at, listing) = self.primed.lock().ok()?.remove(&kind)?;
        (at.elapsed() < PRIMED_FOR).then_some(listing)
    }

    /// Lists `kind` in the store, dropping cache entries of objects no longer there.
    fn list_now(&self, kind: ObjectKind) -> Result<Vec<ObjectInfo>, StoreError> {
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

    /// Forgets the listing of `kind` taken ahead: this store changes that kind (called before
    /// and after the change, so a listing taken ahead meanwhile is not kept either).
    fn unprime(&self, kind: ObjectKind) {
        self.changes.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut primed) = self.primed.lock() {
            primed.remove(&kind);
        }
    }

    fn cacheable(kind: ObjectKind) -> bool {
        matches!(kind, ObjectKind::Index | ObjectKind::Snapshot | ObjectKind::Key | ObjectKind::Record)
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
        // A cache that cannot be written only costs speed. What it holds (key files, the config,
        // index objects) is the owner's alone.
        if let Some(parent) = path.parent() {
            let _ = private::create_dir_all(parent, Modes::PRIVATE.dir);
        }
        let _ = private::write_file(path, data, Modes::PRIVATE.file);
    }
}

impl<S: Store> Store for CachedStore<S> {
    fn put_with(&self, key: &ObjectKey, data: Bytes, hints: PutHints<'_>) -> Result<(), StoreError> {
        self.unprime(key.kind);
        let put = self.inner.put_with(key, data.clone(), hints);
        self.unprime(key.kind);
        put?;
        if Self::cacheable(key.kind) {
            Self::write(&self.path(key), &data);
        }
        Ok(())
    }

    fn replace(&self, key: &ObjectKey, data: Bytes) -> Result<(), StoreError> {
        self.unprime(key.kind);
        let _ = std::fs::remove_file(self.path(key));
        let replaced = self.inner.replace(key, data);
        self.unprime(key.kind);
        replaced
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
            // The blobs inside are authenticated by the caller, which drops a damaged entry
            // (`uncache_range`) and reads again.
            return Ok(data);
        }
        let data = self.inner.get_range(key, range)?;
        Self::write(&path, &data);
        Ok(data)
    }

    fn uncache_range(&self, key: &ObjectKey, range: Range<u64>) {
        let _ = std::fs::remove_file(self.range_path(key, &range));
    }

    fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectInfo>, StoreError> {
        match self.take_primed(kind) {
            Some(listed) => Ok(listed),
            None => self.list_now(kind),
        }
    }

    fn delete(&self, key: &ObjectKey) -> Result<(), StoreError> {
        self.unprime(key.kind);
        if Self::cacheable(key.kind) {
            let _ = std::fs::remove_file(self.path(key));
        }
        let deleted = self.inner.delete(key);
        self.unprime(key.kind);
        deleted
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn nested(&self, dir: &str) -> Result<std::sync::Arc<dyn Store>, StoreError> {
        // Not cached: see `Store::nested`.
        self.inner.nested(dir)
    }
    fn is_warm(&self, key: &ObjectKey) -> Result<bool, StoreError> {
        self.inner.is_warm(key)
    }
    fn warm_up(&self, key: &ObjectKey, request: &super::WarmUp) -> Result<(), StoreError> {
        self.inner.warm_up(key, request)
    }
    fn retain(&self, key: &ObjectKey, mode: super::LockMode, until: jiff::Timestamp) -> Result<(), StoreError> {
        self.inner.retain(key, mode, until)
    }
    fn retained_until(&self, key: &ObjectKey) -> Result<Option<jiff::Timestamp>, StoreError> {
        self.inner.retained_until(key)
    }
    fn local_root(&self) -> Option<&std::path::Path> {
        self.inner.local_root()
    }
    fn make_private(&self, group_readable: bool) -> Result<(), StoreError> {
        self.inner.make_private(group_readable)
    }
    fn is_remote(&self) -> bool {
        self.inner.is_remote()
    }
    fn cached(&self, kind: ObjectKind) -> Vec<(ObjectKey, Bytes)> {
        if !Self::cacheable(kind) {
            return Vec::new();
        }
        let Ok(dir) = std::fs::read_dir(self.dir.join(kind.dir())) else { return Vec::new() };
        dir.filter_map(Result::ok)
            .filter_map(|e| {
                let key = ObjectKey::parse(kind, e.file_name().to_str()?)?;
                // Only a copy stored under its own name: the cache's files are found by name.
                let data = Self::read(&self.path(&key)).filter(|d| Digest::of(d) == key.id)?;
                Some((key, data))
            })
            .collect()
    }

    fn forget_listed_ahead(&self) {
        self.changes.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut primed) = self.primed.lock() {
            primed.clear();
        }
    }
    fn list_ahead(&self, kinds: &[ObjectKind]) {
        let at = Instant::now();
        let changes = self.changes.load(Ordering::SeqCst);
        let listed: Vec<_> = std::thread::scope(|s| {
            let lists: Vec<_> = kinds.iter().map(|&kind| s.spawn(move || (kind, self.list_now(kind)))).collect();
            lists.into_iter().filter_map(|l| l.join().ok()).collect()
        });
        if let Ok(mut primed) = self.primed.lock()
            && self.changes.load(Ordering::SeqCst) == changes
        {
            for (kind, listing) in listed {
                if let Ok(listing) = listing {
                    primed.insert(kind, (at, listing));
                }
            }
        }
    }
}
