//! The [`Store`] over the `object_store` crate: local disk, memory, S3 and its peers, GCS, Azure
//! and HTTP/WebDAV.
//!
//! This is the only place with async code: a small tokio runtime is owned by the backend and
//! every call is a `block_on`, as a blocking client over an async library should be.
//!
//! Every put is create-only (FORMAT.md §15). Object stores refuse a taken name themselves
//! (`PutMode::Create`). WebDAV has no create-only PUT that object_store can send, so an object
//! goes up under a fresh name in `staging/` first and is then copied to its real name with
//! `Overwrite: F` (RFC 4918 §10.6): the server refuses the copy (412) when the name is taken,
//! and the staged copy is deleted either way. An interrupted upload may leave a file in
//! `staging/`; nothing reads that folder, and it can be emptied at any time no backup runs.

mod local;
mod remote;

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, OnceLock};

use ::object_store::local::LocalFileSystem;
use ::object_store::memory::InMemory;
use ::object_store::path::Path as ObjectPath;
use ::object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use bytes::Bytes;
use futures::TryStreamExt;

use super::{ObjectInfo, ObjectKey, ObjectKind, PutHints, Store, StoreError};
use crate::foundation::private::{self, Modes};
use local::{DROP_PAGES_FROM, drop_pages, read_local_range, read_local_range_into};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};

/// A [`Store`] backed by an `object_store` implementation.
pub struct ObjectStoreBackend {
    rt: Arc<tokio::runtime::Runtime>,
    inner: Arc<dyn ObjectStore>,
    prefix: String,
    description: String,
    create_only: CreateOnly,
    /// The repository's directory when it is on a local file system: ranged reads then go
    /// straight to the file ([`read_local_range`]).
    local_root: Option<std::path::PathBuf>,
    /// For a local store: the modes objects and their directories get (those of the root's
    /// owner and, if the root lets it, its group), read from the root at the first write.
    local_modes: OnceLock<Modes>,
    /// Directories of a local store whose mode has been set.
    local_dirs: Mutex<std::collections::HashSet<std::path::PathBuf>>,
    /// For S3: the calls object_store lacks (warm-up, object lock).
    s3: Option<Arc<S3Calls>>,
}

#[cfg(feature = "cloud")]
type S3Calls = super::s3_calls::S3Calls;
/// Without cloud stores nothing is ever archived.
#[cfg(not(feature = "cloud"))]
enum S3Calls {}

/// How a put is kept from replacing an object that is already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CreateOnly {
    /// The service refuses a taken name itself (`PutMode::Create`).
    Native,
    /// WebDAV: upload under a staging name, then copy with `Overwrite: F` (see the module docs).
    CopyFromStaging,
}

/// Where [`CreateOnly::CopyFromStaging`] puts objects before they get their real name; no
/// [`ObjectKind`] lists it.
const STAGING_DIR: &str = "staging";

fn map_err(e: ::object_store::Error) -> StoreError {
    use ::object_store::Error as E;
    match e {
        E::NotFound { path, .. } => StoreError::NotFound(path),
        E::AlreadyExists { .. } => StoreError::AlreadyExists,
        // S3 answers a GET of an object in Glacier Flexible Retrieval or Deep Archive that was
        // not restored with 403 InvalidObjectState.
        e @ E::PermissionDenied { .. } if e.to_string().contains("InvalidObjectState") => {
            StoreError::Archived(e.to_string())
        }
        e @ (E::PermissionDenied { .. } | E::Unauthenticated { .. }) => StoreError::PermissionDenied(e.to_string()),
        E::Generic { store, source } => {
            let text = source.to_string();
            // The local store reports I/O errors as generic ones; a full disk or permission
            // problem will not go away by retrying.
            let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(source.as_ref());
            while let Some(e) = cause {
                if e.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied)
                {
                    return StoreError::PermissionDenied(text);
                }
                cause = e.source();
            }
            // S3's multi-object delete reports a refusal per key inside a 200 response, which
            // object_store passes on as a generic error carrying the service's code.
            if text.contains("(code: AccessDenied)") {
                return StoreError::PermissionDenied(text);
            }
            // A GET of an object in S3 Glacier Flexible Retrieval or Deep Archive that was not
            // restored: 403 InvalidObjectState.
            if text.contains("InvalidObjectState") {
                return StoreError::Archived(text);
            }
            // A client error (an invalid bucket name, a bad request) will not go away by
            // retrying; only a timeout, throttling, or a WebDAV lock might: rclone answers
            // `423 Locked` to a MKCOL of a collection another upload is creating at that moment.
            if let Some(at) = text.find("status code: 4") {
                let code = text.get(at + 13..at + 16).unwrap_or_default();
                if !matches!(code, "408" | "423" | "429") {
                    return StoreError::Permanent(text);
                }
            }
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

/// Objects larger than this are uploaded in parts.
const MULTIPART_THRESHOLD: usize = 64 << 20;
/// Size of each part of a multipart upload.
const PART_SIZE: usize = 16 << 20;

/// `url` without a password (`https://user:secret@host/` → `https://user:***@host/`), for
/// messages.
#[must_use]
pub fn redact_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            format!("{scheme}://{user}:***@{host}{}", &rest[authority_end..])
        }
        None => url.to_string(),
    }
}

/// Settings for opening a store.
#[derive(Debug, Clone, Default)]
pub struct BackendOptions {
    /// `-o key=value` settings passed to the object_store builder (e.g. `aws_region=eu-west-1`).
    pub settings: Vec<(String, String)>,
    /// Per-request timeout.
    pub timeout: Option<std::time::Duration>,
    /// For a local path: create the directory (and its parents) when missing, as `init` does.
    /// Otherwise a missing directory is [`StoreError::NotFound`] and nothing is created.
    pub create: bool,
}

impl ObjectStoreBackend {
    /// Opens the store a repository URL names: a plain path, `file://PATH`, `memory://NAME`,
    /// `s3://BUCKET/PREFIX`, `gs://BUCKET/PREFIX`, `az://CONTAINER/PREFIX` or `http(s)://URL`
    /// (WebDAV). Cloud credentials come from each ecosystem's standard variables (`AWS_*`,
    /// `GOOGLE_*`, `AZURE_*`); `AWS_ENDPOINT_URL` points S3 at a compatible service.
    ///
    /// # Errors
    /// [`StoreError::Permanent`] for an unknown scheme, a bad option, missing credentials or an
    /// unusable path.
    pub fn open(url: &str, opts: &BackendOptions) -> Result<Self, StoreError> {
        let mut local_root = None;
        let mut s3 = None;
        let (inner, prefix, create_only): (Arc<dyn ObjectStore>, String, CreateOnly) = if let Some(name) =
            url.strip_prefix("memory://")
        {
            let mut stores =
                memory_stores().lock().map_err(|_| StoreError::Permanent("memory store registry poisoned".into()))?;
            let store = stores.entry(name.to_string()).or_insert_with(|| Arc::new(InMemory::new())).clone();
            (store, String::new(), CreateOnly::Native)
        } else if !url.contains("://") || url.starts_with("file://") {
            let path = url.strip_prefix("file://").unwrap_or(url);
            match std::fs::metadata(path) {
                Ok(m) if !m.is_dir() => {
                    return Err(StoreError::Permanent(format!("{path} is a file, not a repository directory")));
                }
                Ok(_) => {}
                // A new repository directory is the owner's alone; `init` settles its mode.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && opts.create => std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(Modes::PRIVATE.dir)
                    .create(path)
                    .map_err(|e| StoreError::Permanent(format!("{path}: {e}")))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(StoreError::NotFound(format!("{path}: no such directory")));
                }
                Err(e) => return Err(StoreError::Permanent(format!("{path}: {e}"))),
            }
            // Durable before success: a written object is synced with its directory, so a
            // snapshot (or an archived WAL file PostgreSQL then recycles) never outlives its
            // data across a power loss.
            let fs = LocalFileSystem::new_with_prefix(path).map_err(map_err)?.with_fsync(true);
            local_root = std::fs::canonicalize(path).ok();
            (Arc::new(fs), String::new(), CreateOnly::Native)
        } else {
            Self::open_remote(url, opts, &mut s3)?
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| StoreError::Permanent(format!("starting the I/O runtime: {e}")))?;
        Ok(ObjectStoreBackend {
            rt: Arc::new(rt),
            inner,
            prefix,
            description: redact_userinfo(url),
            create_only,
            local_root,
            local_modes: OnceLock::new(),
            local_dirs: Mutex::new(std::collections::HashSet::new()),
            s3,
        })
    }

    fn path(&self, key: &ObjectKey) -> ObjectPath {
        ObjectPath::from(format!("{}{}", self.prefix, key.path()))
    }

    /// Starts a ranged GET of `key` from a remote store, its body not yet read. An object
    /// shorter than the range is reported here, where its size is known; any other short
    /// response is returned as it is, for the retry layer to read again.
    async fn ranged_get(&self, key: &ObjectKey, range: &Range<u64>) -> Result<::object_store::GetResult, StoreError> {
        let opts = ::object_store::GetOptions::default().with_range(Some(range.clone()));
        let result = self.inner.get_opts(&self.path(key), opts).await.map_err(map_err)?;
        if result.meta.size < range.end {
            return Err(object_too_short(result.meta.size, range));
        }
        Ok(result)
    }

    /// [`CreateOnly::CopyFromStaging`]: one PUT under a random staging name (WebDAV has no
    /// multipart uploads), a COPY that refuses a taken name, and the staged object deleted.
    ///
    /// object_store reports any 409 Conflict as `AlreadyExists`, and WebDAV servers answer 409
    /// when a parent collection is missing; so a refused copy counts as "exists" only once the
    /// name is seen to be taken, and a refused staging upload is an error.
    async fn put_via_staging(&self, path: &ObjectPath, data: Bytes) -> Result<(), StoreError> {
        use ::object_store::Error as E;
        let mut name = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut name);
        let staged = ObjectPath::from(format!("{}{STAGING_DIR}/{}", self.prefix, hex::encode(name)));
        match self.inner.put(&staged, PutPayload::from_bytes(data)).await {
            Ok(_) => {}
            Err(E::AlreadyExists { source, .. }) => {
                return Err(StoreError::Permanent(format!("the WebDAV server refused to store {staged}: {source}")));
            }
            Err(e) => return Err(map_err(e)),
        }
        let copied = self.inner.copy_if_not_exists(&staged, path).await;
        // A staged object left behind is harmless (see the module docs); the outcome is the copy's.
        let _ = self.inner.delete(&staged).await;
        match copied {
            Ok(()) => Ok(()),
            Err(E::AlreadyExists { source, .. }) => match self.inner.head(path).await {
                Ok(_) => Err(StoreError::AlreadyExists),
                Err(E::NotFound { .. }) => {
                    Err(StoreError::Permanent(format!("the WebDAV server refused to create {path}: {source}")))
                }
                Err(e) => Err(map_err(e)),
            },
            Err(e) => Err(map_err(e)),
        }
    }

    async fn put_multipart(&self, path: &ObjectPath, data: Bytes) -> ::object_store::Result<()> {
        // Multipart uploads cannot be create-only; names are content addresses, so an upload
        // racing another of the same name writes the same bytes. Check first all the same.
        match self.inner.head(path).await {
            Ok(_) => {
                return Err(::object_store::Error::AlreadyExists { path: path.to_string(), source: "exists".into() });
            }
            Err(::object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        let mut upload = self.inner.put_multipart(path).await?;
        let mut offset = 0;
        while offset < data.len() {
            let end = (offset + PART_SIZE).min(data.len());
            if let Err(e) = upload.put_part(PutPayload::from_bytes(data.slice(offset..end))).await {
                let _ = upload.abort().await;
                return Err(e);
            }
            offset = end;
        }
        upload.complete().await.map(|_| ())
    }
}

/// The error of a ranged read past the end of an object: it is shorter than whoever asked
/// (an index entry, a pack header) says.
/// Reads the body of a ranged GET for `range` into `buf` (emptied first), refusing a body
/// longer than the range: the server's `Content-Length` decides how much the HTTP client reads,
/// and a lying or broken server must not make us hold more than we asked for. A shorter body is
/// returned as it is, for the retry layer to read again.
async fn read_range_body(
    got: ::object_store::GetResult,
    range: &Range<u64>,
    buf: &mut Vec<u8>,
) -> Result<(), StoreError> {
    let want = usize::try_from(range.end - range.start).unwrap_or(usize::MAX);
    let mut body = got.into_stream();
    buf.clear();
    buf.reserve(want);
    while let Some(part) = body.try_next().await.map_err(map_err)? {
        if part.len() > want - buf.len() {
            return Err(StoreError::Transient(format!(
                "the server sent more than the {want} bytes of the range asked ({}..{})",
                range.start, range.end
            )));
        }
        buf.extend_from_slice(&part);
    }
    Ok(())
}

fn object_too_short(size: u64, range: &Range<u64>) -> StoreError {
    StoreError::ShortRead(format!("the object is {size} bytes, the range asked ends at byte {}", range.end))
}

impl Store for ObjectStoreBackend {
    fn put_with(&self, key: &ObjectKey, data: Bytes, hints: PutHints<'_>) -> Result<(), StoreError> {
        let path = self.path(key);
        if self.create_only == CreateOnly::CopyFromStaging {
            return self.rt.block_on(self.put_via_staging(&path, data));
        }
        let len = data.len();
        if len > MULTIPART_THRESHOLD {
            self.rt.block_on(self.put_multipart(&path, data)).map_err(map_err)?;
        } else {
            let mut attributes = ::object_store::Attributes::new();
            // Local disk has no classes.
            if let Some(class) = hints.storage_class.filter(|_| self.local_root.is_none()) {
                attributes.insert(::object_store::Attribute::StorageClass, class.to_string().into());
            }
            let opts = PutOptions { mode: PutMode::Create, attributes, ..Default::default() };
            self.rt.block_on(self.inner.put_opts(&path, PutPayload::from_bytes(data), opts)).map_err(map_err)?;
        }
        self.keep_private(key)?;
        if let Some(root) = self.local_root.as_ref().filter(|_| len >= DROP_PAGES_FROM) {
            drop_pages(&root.join(key.path()));
        }
        Ok(())
    }

    fn replace(&self, key: &ObjectKey, data: Bytes) -> Result<(), StoreError> {
        let path = self.path(key);
        if self.create_only == CreateOnly::CopyFromStaging {
            // A WebDAV PUT may be seen half written: upload aside, then COPY over the name.
            return self.rt.block_on(async {
                let mut name = [0u8; 16];
                rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut name);
                let staged = ObjectPath::from(format!("{}{STAGING_DIR}/{}", self.prefix, hex::encode(name)));
                self.inner.put(&staged, PutPayload::from_bytes(data)).await.map_err(map_err)?;
                let copied = self.inner.copy(&staged, &path).await.map_err(map_err);
                let _ = self.inner.delete(&staged).await;
                copied
            });
        }
        // Object stores replace a whole object atomically; the local store writes a temporary
        // file and renames it over the name.
        let opts = PutOptions { mode: PutMode::Overwrite, ..Default::default() };
        self.rt.block_on(self.inner.put_opts(&path, PutPayload::from_bytes(data), opts)).map_err(map_err)?;
        self.keep_private(key)
    }

    fn get(&self, key: &ObjectKey) -> Result<Bytes, StoreError> {
        self.rt.block_on(async { self.inner.get(&self.path(key)).await?.bytes().await }).map_err(map_err)
    }

    fn get_range(&self, key: &ObjectKey, range: Range<u64>) -> Result<Bytes, StoreError> {
        let Some(root) = &self.local_root else {
            return self.rt.block_on(async {
                let mut body = Vec::new();
                read_range_body(self.ranged_get(key, &range).await?, &range, &mut body).await?;
                Ok(Bytes::from(body))
            });
        };
        read_local_range(&root.join(key.path()), range)
    }

    fn get_range_into(&self, key: &ObjectKey, range: Range<u64>, buf: &mut Vec<u8>) -> Result<(), StoreError> {
        match &self.local_root {
            Some(root) => read_local_range_into(&root.join(key.path()), range, buf),
            // The body goes straight into `buf` as it arrives: collecting it first would put
            // every byte into a fresh allocation (page faults on each request's pages) and
            // copy it once more.
            None => self.rt.block_on(async { read_range_body(self.ranged_get(key, &range).await?, &range, buf).await }),
        }
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

    fn local_root(&self) -> Option<&std::path::Path> {
        self.local_root.as_deref()
    }

    fn make_private(&self, group_readable: bool) -> Result<(), StoreError> {
        let Some(root) = &self.local_root else { return Ok(()) };
        let modes = if group_readable { Modes::GROUP_READABLE } else { Modes::PRIVATE };
        private::set_mode(root, modes.dir).map_err(|e| StoreError::Permanent(format!("{}: {e}", root.display())))?;
        // Objects written from now on follow the root.
        let _ = self.local_modes.set(modes);
        Ok(())
    }

    fn describe(&self) -> String {
        self.description.clone()
    }

    fn nested(&self, dir: &str) -> Result<Arc<dyn Store>, StoreError> {
        let dir = dir.trim_matches('/');
        let local_root = match &self.local_root {
            Some(root) => {
                // The nested directories get the root's modes, as every directory the root holds.
                let modes = *self.local_modes.get_or_init(|| {
                    std::fs::metadata(root).map_or(Modes::PRIVATE, |m| Modes::following(m.permissions().mode()))
                });
                let path = root.join(dir);
                private::create_dir_all(&path, modes.dir)
                    .map_err(|e| StoreError::Permanent(format!("{}: {e}", path.display())))?;
                let mut at = path.as_path();
                while at != root.as_path() {
                    private::set_mode(at, modes.dir)
                        .map_err(|e| StoreError::Permanent(format!("{}: {e}", at.display())))?;
                    at = at.parent().unwrap_or(root);
                }
                Some(path)
            }
            None => None,
        };
        Ok(Arc::new(ObjectStoreBackend {
            rt: Arc::clone(&self.rt),
            inner: Arc::clone(&self.inner),
            prefix: format!("{}{dir}/", self.prefix),
            description: format!("{}/{dir}", self.description.trim_end_matches('/')),
            create_only: self.create_only,
            local_root,
            local_modes: OnceLock::new(),
            local_dirs: Mutex::new(std::collections::HashSet::new()),
            s3: self.s3.clone(),
        }))
    }

    fn warm_up(&self, key: &ObjectKey, request: &super::WarmUp) -> Result<(), StoreError> {
        match &self.s3 {
            #[cfg(feature = "cloud")]
            Some(s3) => self.rt.block_on(s3.warm_up(self.path(key).as_ref(), request)),
            #[cfg(not(feature = "cloud"))]
            Some(never) => match **never {},
            None => {
                let _ = request;
                Err(StoreError::Permanent(format!("{}: cannot warm up archived object {key}", self.description)))
            }
        }
    }

    fn retain(&self, key: &ObjectKey, mode: super::LockMode, until: jiff::Timestamp) -> Result<(), StoreError> {
        match &self.s3 {
            #[cfg(feature = "cloud")]
            Some(s3) => self.rt.block_on(s3.retain(self.path(key).as_ref(), mode, until)),
            #[cfg(not(feature = "cloud"))]
            Some(never) => match **never {},
            None => {
                let _ = (mode, until);
                Err(StoreError::Permanent(format!("{}: has no object lock (retaining {key})", self.description)))
            }
        }
    }

    fn retained_until(&self, key: &ObjectKey) -> Result<Option<jiff::Timestamp>, StoreError> {
        let _ = key;
        match &self.s3 {
            #[cfg(feature = "cloud")]
            Some(s3) => self.rt.block_on(s3.retained_until(self.path(key).as_ref())),
            #[cfg(not(feature = "cloud"))]
            Some(never) => match **never {},
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests;
