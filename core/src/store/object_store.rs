//! The [`Store`] over the `object_store` crate: local disk, memory (and, later, S3 and its peers).
//!
//! This is the only place with async code: a small tokio runtime is owned by the backend and
//! every call is a `block_on`, as a blocking client over an async library should be.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, OnceLock};

use ::object_store::local::LocalFileSystem;
use ::object_store::memory::InMemory;
use ::object_store::path::Path as ObjectPath;
use ::object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use bytes::Bytes;
use futures::TryStreamExt;

use super::{ObjectInfo, ObjectKey, ObjectKind, Store, StoreError};

/// A [`Store`] backed by an `object_store` implementation.
pub struct ObjectStoreBackend {
    rt: tokio::runtime::Runtime,
    inner: Arc<dyn ObjectStore>,
    prefix: String,
    description: String,
}

fn map_err(e: ::object_store::Error) -> StoreError {
    use ::object_store::Error as E;
    match e {
        E::NotFound { path, .. } => StoreError::NotFound(path),
        E::AlreadyExists { .. } => StoreError::AlreadyExists,
        E::Generic { store, source } => {
            let text = source.to_string();
            // The local store reports I/O errors as generic ones; a full disk or permission
            // problem will not go away by retrying.
            if store == "LocalFileSystem" { StoreError::Permanent(text) } else { StoreError::Transient(text) }
        }
        other => StoreError::Permanent(other.to_string()),
    }
}

/// Named in-memory stores, so `memory://name` opened twice in one process is one repository.
fn memory_stores() -> &'static Mutex<HashMap<String, Arc<InMemory>>> {
    static STORES: OnceLock<Mutex<HashMap<String, Arc<InMemory>>>> = OnceLock::new();
    STORES.get_or_init(|| Mutex::new(HashMap::new()))
}

impl ObjectStoreBackend {
    /// Opens the store a repository URL names: a plain path, `file://PATH` or `memory://NAME`.
    ///
    /// # Errors
    /// [`StoreError::Permanent`] for an unknown scheme or an unusable path.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let (inner, prefix): (Arc<dyn ObjectStore>, String) = if let Some(name) = url.strip_prefix("memory://") {
            let mut stores =
                memory_stores().lock().map_err(|_| StoreError::Permanent("memory store registry poisoned".into()))?;
            let store = stores.entry(name.to_string()).or_insert_with(|| Arc::new(InMemory::new())).clone();
            (store, String::new())
        } else {
            let path = match url.strip_prefix("file://") {
                Some(p) => p,
                None if url.contains("://") => {
                    let scheme = url.split("://").next().unwrap_or_default();
                    return Err(StoreError::Permanent(format!(
                        "unsupported repository URL scheme `{scheme}://` (supported: a path, file://, memory://)"
                    )));
                }
                None => url,
            };
            std::fs::create_dir_all(path).map_err(|e| StoreError::Permanent(format!("{path}: {e}")))?;
            let fs = LocalFileSystem::new_with_prefix(path).map_err(map_err)?;
            (Arc::new(fs), String::new())
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| StoreError::Permanent(format!("starting the I/O runtime: {e}")))?;
        Ok(ObjectStoreBackend { rt, inner, prefix, description: url.to_string() })
    }

    fn path(&self, key: &ObjectKey) -> ObjectPath {
        ObjectPath::from(format!("{}{}", self.prefix, key.path()))
    }
}

impl Store for ObjectStoreBackend {
    fn put(&self, key: &ObjectKey, data: Bytes) -> Result<(), StoreError> {
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        self.rt
            .block_on(self.inner.put_opts(&self.path(key), PutPayload::from_bytes(data), opts))
            .map(|_| ())
            .map_err(map_err)
    }

    fn get(&self, key: &ObjectKey) -> Result<Bytes, StoreError> {
        self.rt.block_on(async { self.inner.get(&self.path(key)).await?.bytes().await }).map_err(map_err)
    }

    fn get_range(&self, key: &ObjectKey, range: Range<u64>) -> Result<Bytes, StoreError> {
        let want = range.end - range.start;
        let got = self.rt.block_on(self.inner.get_range(&self.path(key), range)).map_err(map_err)?;
        if got.len() as u64 != want {
            return Err(StoreError::Permanent(format!("short read: {} of {want} bytes", got.len())));
        }
        Ok(got)
    }

    fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectInfo>, StoreError> {
        let prefix = ObjectPath::from(format!("{}{}", self.prefix, kind.dir()));
        let metas: Vec<_> = self.rt.block_on(self.inner.list(Some(&prefix)).try_collect()).map_err(map_err)?;
        Ok(metas
            .into_iter()
            .filter_map(|m| {
                let key = ObjectKey::parse(kind, m.location.as_ref())?;
                // Pack paths must also sit in the right fan-out folder.
                (key.path() == m.location.as_ref().strip_prefix(&self.prefix)?).then_some(())?;
                let last_modified =
                    jiff::Timestamp::from_millisecond(m.last_modified.timestamp_millis()).unwrap_or_default();
                Some(ObjectInfo { key, size: m.size, last_modified })
            })
            .collect())
    }

    fn delete(&self, key: &ObjectKey) -> Result<(), StoreError> {
        match self.rt.block_on(self.inner.delete(&self.path(key))) {
            Ok(()) | Err(::object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(map_err(e)),
        }
    }

    fn describe(&self) -> String {
        self.description.clone()
    }
}
