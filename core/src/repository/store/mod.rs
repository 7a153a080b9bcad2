//! Typed access to the repository's objects (FORMAT.md §Layout).
//!
//! [`Store`] is the seam between the engine and where bytes live. It is synchronous on purpose:
//! the engine runs on threads and channels, and the `object_store` adapter
//! ([`object_store::ObjectStoreBackend`]) owns the only async runtime. Every put is create-only: an
//! existing name is an error, never an overwrite. The path of every object is decided in one
//! function, [`ObjectKey::path`].

pub mod batch;
pub mod cache;
#[cfg(feature = "testing")]
pub mod fault;
pub mod lock;
pub mod object_store;
pub mod retry;
#[cfg(feature = "cloud")]
mod s3_calls;

use std::ops::Range;

use bytes::Bytes;

pub use crate::foundation::error::StoreError;
pub use crate::foundation::id::{ObjectKey, ObjectKind};

/// A listed object.
#[derive(Debug, Clone)]
pub struct ObjectInfo {
    /// Its name.
    pub key: ObjectKey,
    /// Its size in bytes.
    pub size: u64,
    /// When the store says it was written (the store's clock, not ours).
    pub last_modified: jiff::Timestamp,
}

/// How to store an object, beyond its name and bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PutHints<'a> {
    /// The storage class (S3 `x-amz-storage-class`, Azure access tier, GCS storage class) to
    /// create it in; the store's default when `None`. Stores without classes ignore it.
    pub storage_class: Option<&'a str>,
}

impl<'a> PutHints<'a> {
    /// Hints asking for `class`, when given.
    #[must_use]
    pub fn storage_class(class: Option<&'a str>) -> Self {
        PutHints { storage_class: class }
    }
}

/// How fast an archived object is to be made readable, as S3's restore tiers name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WarmTier {
    /// Hours (S3 Glacier Flexible Retrieval: 3–5; Deep Archive: up to 12).
    #[default]
    Standard,
    /// Slower and cheaper (5–12 hours; Deep Archive up to 48).
    Bulk,
    /// Minutes, at a higher price (Glacier Flexible Retrieval only).
    Expedited,
}

impl WarmTier {
    /// The name S3 uses (`Tier` of a restore request).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            WarmTier::Standard => "Standard",
            WarmTier::Bulk => "Bulk",
            WarmTier::Expedited => "Expedited",
        }
    }
}

impl std::str::FromStr for WarmTier {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "standard" => Ok(WarmTier::Standard),
            "bulk" => Ok(WarmTier::Bulk),
            "expedited" => Ok(WarmTier::Expedited),
            _ => Err(format!("`{s}`: expected standard, bulk or expedited")),
        }
    }
}

/// A request to warm an archived object up: how fast, and for how many days the readable copy
/// is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WarmUp {
    /// How fast.
    pub tier: WarmTier,
    /// Days the readable copy stays (S3 keeps the archived object and adds a temporary copy).
    pub days: u32,
}

impl Default for WarmUp {
    fn default() -> Self {
        WarmUp { tier: WarmTier::Standard, days: 1 }
    }
}

pub use crate::format::config::LockMode;

/// Where repository objects live.
pub trait Store: Send + Sync {
    /// Creates an object; an existing one is [`StoreError::AlreadyExists`], never overwritten.
    ///
    /// # Errors
    /// As the backend reports.
    fn put(&self, key: &ObjectKey, data: Bytes) -> Result<(), StoreError> {
        self.put_with(key, data, PutHints::default())
    }
    /// As [`Store::put`], with `hints` on how to store it.
    ///
    /// # Errors
    /// As the backend reports.
    fn put_with(&self, key: &ObjectKey, data: Bytes, hints: PutHints<'_>) -> Result<(), StoreError>;
    /// Replaces an object whole, atomically: a reader sees the old bytes or the new, never a
    /// mix or nothing. Only the config (`cairn migrate`) and a damaged tenant key (`cairn tenant
    /// repair`, from its intact copy) are ever replaced; every other object is content-addressed
    /// and create-only.
    ///
    /// # Errors
    /// As the backend reports.
    fn replace(&self, key: &ObjectKey, data: Bytes) -> Result<(), StoreError>;
    /// Reads a whole object.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when it does not exist.
    fn get(&self, key: &ObjectKey) -> Result<Bytes, StoreError>;
    /// Reads a byte range of an object. A backend returns what it read, which may be less than
    /// asked when a response is cut short; the retry layer every opened store has
    /// ([`retry::RetryStore`]) reads it again, so a caller of a store from [`open`] always gets
    /// the whole range or an error.
    ///
    /// # Errors
    /// As [`Store::get`]; [`StoreError::ShortRead`] when the object ends before the range.
    fn get_range(&self, key: &ObjectKey, range: Range<u64>) -> Result<Bytes, StoreError>;
    /// Reads a byte range into `buf`, replacing what it held and reusing its allocation: for a
    /// restore thread reading range after range (fresh buffers cost page faults). The default
    /// goes through [`Store::get_range`] and copies; a local store reads straight into `buf`.
    ///
    /// # Errors
    /// As [`Store::get_range`].
    fn get_range_into(&self, key: &ObjectKey, range: Range<u64>, buf: &mut Vec<u8>) -> Result<(), StoreError> {
        let data = self.get_range(key, range)?;
        buf.clear();
        buf.extend_from_slice(&data);
        Ok(())
    }
    /// Reads a byte range that is worth caching locally (tree blobs): the same as
    /// [`Store::get_range`] unless a cache is in front.
    ///
    /// # Errors
    /// As [`Store::get_range`].
    fn get_range_cacheable(&self, key: &ObjectKey, range: Range<u64>) -> Result<Bytes, StoreError> {
        self.get_range(key, range)
    }
    /// Drops the cached copy of a range read with [`Store::get_range_cacheable`], if any: the
    /// caller found it fails authentication, and the next read fetches it from the store again
    /// (a damaged cache entry costs one read, never every read after it). The default does
    /// nothing.
    fn uncache_range(&self, key: &ObjectKey, range: Range<u64>) {
        let _ = (key, range);
    }
    /// Lists all objects of a kind.
    ///
    /// # Errors
    /// As the backend reports.
    fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectInfo>, StoreError>;
    /// Deletes an object (a missing one is not an error).
    ///
    /// # Errors
    /// As the backend reports.
    fn delete(&self, key: &ObjectKey) -> Result<(), StoreError>;
    /// A description for messages (the URL, without credentials).
    fn describe(&self) -> String;
    /// Whether every request costs a network round trip, so the engine should keep many in
    /// flight and make each one large: a remote URL ([`is_remote`]), or a store that adds
    /// latency on purpose (the latency benchmark's stand-in for one).
    fn is_remote(&self) -> bool {
        is_remote(&self.describe())
    }
    /// Lists `kinds` now and keeps the listings for the next [`Store::list`] of each kind to
    /// use, where that saves a round trip (the metadata cache of a remote store keeps them a
    /// few seconds, until this store writes or deletes an object of the kind). Blocks while it
    /// lists; the default does nothing.
    fn list_ahead(&self, kinds: &[ObjectKind]) {
        let _ = kinds;
    }
    /// Drops listings taken ahead of need ([`Store::list_ahead`]): what is listed next is
    /// listed now. A writer calls it once it has announced itself (a session marker), so the
    /// index it loads is listed after the announcement. The default does nothing.
    fn forget_listed_ahead(&self) {}
    /// The objects of `kind` this store keeps a local copy of (a remote store's metadata
    /// cache), each checked against its name, read without a request: what was in the store
    /// when they were cached, some of which may have been deleted since. The default: none.
    fn cached(&self, kind: ObjectKind) -> Vec<(ObjectKey, Bytes)> {
        let _ = kind;
        Vec::new()
    }
    /// For a store on the local file system: the directory holding the repository (`check`
    /// looks there for files other users can read).
    fn local_root(&self) -> Option<&std::path::Path> {
        None
    }
    /// Restricts who may read the store's objects, where the store itself decides (a local
    /// directory: 0700, or 0750 when `group_readable`; every object written afterwards follows
    /// the directory). Object storage is governed by its own policies: the default does
    /// nothing.
    ///
    /// # Errors
    /// As the file system reports.
    fn make_private(&self, group_readable: bool) -> Result<(), StoreError> {
        let _ = group_readable;
        Ok(())
    }
    /// The store of a repository nested in this one under the folder `dir` (a tenant's
    /// repository, FORMAT.md §14d): the same backend, settings and retries, every name under
    /// `dir/`, and no metadata cache (a tenant's objects are not kept on the host once its key
    /// is shredded). The default refuses.
    ///
    /// # Errors
    /// [`StoreError::Permanent`] for a store that cannot nest one, or a folder that cannot be
    /// made.
    fn nested(&self, dir: &str) -> Result<std::sync::Arc<dyn Store>, StoreError> {
        Err(StoreError::Permanent(format!("{}: cannot hold a nested repository ({dir})", self.describe())))
    }

    /// Whether the object can be read now: `false` for one in an archive storage class that
    /// has not been warmed up (its reads fail with [`StoreError::Archived`]). The default
    /// reads its first byte.
    ///
    /// # Errors
    /// As the backend reports, but [`StoreError::Archived`].
    fn is_warm(&self, key: &ObjectKey) -> Result<bool, StoreError> {
        match self.get_range(key, 0..1) {
            Ok(_) => Ok(true),
            Err(StoreError::Archived(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Asks for an archived object to be made readable (S3 `RestoreObject`); asking again
    /// while it warms up, or once it is warm, is harmless. The default refuses: a store
    /// without archive classes never reports an object cold.
    ///
    /// # Errors
    /// As the backend reports.
    fn warm_up(&self, key: &ObjectKey, request: &WarmUp) -> Result<(), StoreError> {
        let _ = request;
        Err(StoreError::Permanent(format!("{}: cannot warm up archived object {key}", self.describe())))
    }

    /// Retains the object in `mode` until `until` (S3 Object Lock): until then the store
    /// refuses to delete it or shorten that, whoever asks. The default refuses: the store has
    /// no object lock.
    ///
    /// # Errors
    /// As the backend reports.
    fn retain(&self, key: &ObjectKey, mode: LockMode, until: jiff::Timestamp) -> Result<(), StoreError> {
        let _ = (mode, until);
        Err(StoreError::Permanent(format!("{}: has no object lock (retaining {key})", self.describe())))
    }

    /// The date until which the object is retained, if it is. The default: never.
    ///
    /// # Errors
    /// As the backend reports.
    fn retained_until(&self, key: &ObjectKey) -> Result<Option<jiff::Timestamp>, StoreError> {
        let _ = key;
        Ok(None)
    }
}

impl<S: Store + ?Sized> Store for std::sync::Arc<S> {
    fn put_with(&self, key: &ObjectKey, data: Bytes, hints: PutHints<'_>) -> Result<(), StoreError> {
        (**self).put_with(key, data, hints)
    }
    fn replace(&self, key: &ObjectKey, data: Bytes) -> Result<(), StoreError> {
        (**self).replace(key, data)
    }
    fn get(&self, key: &ObjectKey) -> Result<Bytes, StoreError> {
        (**self).get(key)
    }
    fn get_range(&self, key: &ObjectKey, range: Range<u64>) -> Result<Bytes, StoreError> {
        (**self).get_range(key, range)
    }
    fn get_range_cacheable(&self, key: &ObjectKey, range: Range<u64>) -> Result<Bytes, StoreError> {
        (**self).get_range_cacheable(key, range)
    }
    fn uncache_range(&self, key: &ObjectKey, range: Range<u64>) {
        (**self).uncache_range(key, range);
    }
    fn get_range_into(&self, key: &ObjectKey, range: Range<u64>, buf: &mut Vec<u8>) -> Result<(), StoreError> {
        (**self).get_range_into(key, range, buf)
    }
    fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectInfo>, StoreError> {
        (**self).list(kind)
    }
    fn delete(&self, key: &ObjectKey) -> Result<(), StoreError> {
        (**self).delete(key)
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn is_remote(&self) -> bool {
        (**self).is_remote()
    }
    fn list_ahead(&self, kinds: &[ObjectKind]) {
        (**self).list_ahead(kinds);
    }
    fn forget_listed_ahead(&self) {
        (**self).forget_listed_ahead();
    }
    fn cached(&self, kind: ObjectKind) -> Vec<(ObjectKey, Bytes)> {
        (**self).cached(kind)
    }
    fn local_root(&self) -> Option<&std::path::Path> {
        (**self).local_root()
    }
    fn make_private(&self, group_readable: bool) -> Result<(), StoreError> {
        (**self).make_private(group_readable)
    }
    fn nested(&self, dir: &str) -> Result<std::sync::Arc<dyn Store>, StoreError> {
        (**self).nested(dir)
    }
    fn is_warm(&self, key: &ObjectKey) -> Result<bool, StoreError> {
        (**self).is_warm(key)
    }
    fn warm_up(&self, key: &ObjectKey, request: &WarmUp) -> Result<(), StoreError> {
        (**self).warm_up(key, request)
    }
    fn retain(&self, key: &ObjectKey, mode: LockMode, until: jiff::Timestamp) -> Result<(), StoreError> {
        (**self).retain(key, mode, until)
    }
    fn retained_until(&self, key: &ObjectKey) -> Result<Option<jiff::Timestamp>, StoreError> {
        (**self).retained_until(key)
    }
}

/// How to open a repository's store.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Backend settings (`-o key=value`, timeout).
    pub backend: object_store::BackendOptions,
    /// Retry policy for transient failures.
    pub retry: retry::RetryPolicy,
    /// Where to cache metadata of remote repositories (`None`: no cache).
    pub cache_dir: Option<std::path::PathBuf>,
    /// Faults to inject, as `fail_rate=0.1,delay_ms=20` (see the `fault` module): for the
    /// tests and the latency benchmark, in builds with the `testing` feature only.
    pub faults: Option<String>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            backend: Default::default(),
            retry: Default::default(),
            cache_dir: default_cache_root(),
            faults: None,
        }
    }
}

/// `$XDG_CACHE_HOME/cairn` or `~/.cache/cairn`.
#[must_use]
pub fn default_cache_root() -> Option<std::path::PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache")))
        .map(|d| d.join("cairn"))
}

/// Whether a URL names a remote store: one worth caching, and worth more uploads in flight.
#[must_use]
pub fn is_remote(url: &str) -> bool {
    url.contains("://") && !url.starts_with("file://") && !url.starts_with("memory://")
}

/// Opens the store a URL names, with retries, and a metadata cache for remote stores:
/// `backend → faults (tests) → retry → cache`.
///
/// # Errors
/// As [`object_store::ObjectStoreBackend::open`]; [`StoreError::Permanent`] for faults that do
/// not parse, or in a build without the `testing` feature.
pub fn open(url: &str, opts: &OpenOptions) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    let backend = object_store::ObjectStoreBackend::open(url, &opts.backend)?;
    let faulty: std::sync::Arc<dyn Store> = match &opts.faults {
        Some(spec) => with_faults(backend, spec)?,
        None => std::sync::Arc::new(backend),
    };
    // A store with latency added for a test or benchmark stands for a distant one, and is
    // cached like one.
    let remote = faulty.is_remote();
    let retried = retry::RetryStore::new(faulty, opts.retry);
    match &opts.cache_dir {
        Some(root) if remote => {
            let dir = root.join(crate::foundation::id::Digest::of(url.as_bytes()).short());
            Ok(std::sync::Arc::new(cache::CachedStore::new(retried, dir)))
        }
        _ => Ok(std::sync::Arc::new(retried)),
    }
}

#[cfg(feature = "testing")]
fn with_faults(backend: object_store::ObjectStoreBackend, spec: &str) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    let config: fault::FaultConfig =
        spec.parse().map_err(|e| StoreError::Permanent(format!("faults `{spec}`: {e}")))?;
    Ok(std::sync::Arc::new(fault::FaultyStore::new(backend, config)))
}

#[cfg(not(feature = "testing"))]
fn with_faults(_: object_store::ObjectStoreBackend, spec: &str) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    Err(StoreError::Permanent(format!(
        "faults `{spec}` were asked for (CAIRN_TEST_FAULTS), but this build of cairn cannot inject them: build it with the `testing` feature"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_urls() {
        for local in ["/srv/backups", "relative/repo", "file:///srv/backups", "memory://test"] {
            assert!(!is_remote(local), "{local}");
        }
        for remote in ["s3://bucket/prefix", "gs://b", "az://container/p", "https://dav.example/repo"] {
            assert!(is_remote(remote), "{remote}");
        }
    }

    #[cfg(feature = "testing")]
    #[test]
    fn a_store_that_adds_latency_counts_as_remote_through_every_layer() {
        let local =
            object_store::ObjectStoreBackend::open("memory://", &object_store::BackendOptions::default()).unwrap();
        assert!(!local.is_remote());
        let plain = fault::FaultyStore::new(local, "fail_rate=0.1".parse().unwrap());
        assert!(!plain.is_remote());
        let local =
            object_store::ObjectStoreBackend::open("memory://", &object_store::BackendOptions::default()).unwrap();
        let delayed = fault::FaultyStore::new(local, "delay_ms=20".parse().unwrap());
        let layered: std::sync::Arc<dyn Store> = std::sync::Arc::new(cache::CachedStore::new(
            retry::RetryStore::new(std::sync::Arc::new(delayed), retry::RetryPolicy::default()),
            std::env::temp_dir().join("cairn-is-remote-test"),
        ));
        assert!(layered.is_remote());
    }
}
