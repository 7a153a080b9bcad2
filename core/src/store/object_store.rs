//! The [`Store`] over the `object_store` crate: local disk, memory, S3 and its peers, GCS, Azure
//! and HTTP/WebDAV.
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

/// Objects larger than this are uploaded in parts.
const MULTIPART_THRESHOLD: usize = 64 << 20;
/// Size of each part of a multipart upload.
const PART_SIZE: usize = 16 << 20;

#[cfg(feature = "cloud")]
fn option_error(scheme: &str, key: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Permanent(format!("option `{key}` is not a {scheme} setting: {e}"))
}

#[cfg(feature = "cloud")]
/// object_store's own retries are kept short: [`super::retry::RetryStore`] is the policy.
fn client_retry() -> ::object_store::RetryConfig {
    ::object_store::RetryConfig { max_retries: 2, ..Default::default() }
}

#[cfg(feature = "cloud")]
fn client_options(timeout: Option<std::time::Duration>) -> ::object_store::ClientOptions {
    let mut o = ::object_store::ClientOptions::new();
    if let Some(t) = timeout {
        o = o.with_timeout(t);
    }
    o
}

/// Settings for opening a store.
#[derive(Debug, Clone, Default)]
pub struct BackendOptions {
    /// `-o key=value` settings passed to the object_store builder (e.g. `aws_region=eu-west-1`).
    pub settings: Vec<(String, String)>,
    /// Per-request timeout.
    pub timeout: Option<std::time::Duration>,
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
        let (inner, prefix): (Arc<dyn ObjectStore>, String) = if let Some(name) = url.strip_prefix("memory://") {
            let mut stores =
                memory_stores().lock().map_err(|_| StoreError::Permanent("memory store registry poisoned".into()))?;
            let store = stores.entry(name.to_string()).or_insert_with(|| Arc::new(InMemory::new())).clone();
            (store, String::new())
        } else if !url.contains("://") || url.starts_with("file://") {
            let path = url.strip_prefix("file://").unwrap_or(url);
            std::fs::create_dir_all(path).map_err(|e| StoreError::Permanent(format!("{path}: {e}")))?;
            let fs = LocalFileSystem::new_with_prefix(path).map_err(map_err)?;
            (Arc::new(fs), String::new())
        } else {
            Self::open_remote(url, opts)?
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| StoreError::Permanent(format!("starting the I/O runtime: {e}")))?;
        Ok(ObjectStoreBackend { rt, inner, prefix, description: url.to_string() })
    }

    #[cfg(not(feature = "cloud"))]
    fn open_remote(url: &str, _: &BackendOptions) -> Result<(Arc<dyn ObjectStore>, String), StoreError> {
        Err(StoreError::Permanent(format!("{url}: this build of cairn has no cloud storage support (feature `cloud`)")))
    }

    #[cfg(feature = "cloud")]
    fn open_remote(url: &str, opts: &BackendOptions) -> Result<(Arc<dyn ObjectStore>, String), StoreError> {
        use ::object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
        use ::object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
        use ::object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
        use ::object_store::http::HttpBuilder;
        let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
        let prefix_of = |rest: &str| {
            let p = rest.split_once('/').map_or("", |(_, p)| p).trim_matches('/');
            if p.is_empty() { String::new() } else { format!("{p}/") }
        };
        let bucket_url = |rest: &str| format!("{scheme}://{}", rest.split('/').next().unwrap_or_default());
        let store: Arc<dyn ObjectStore> = match scheme {
            "s3" | "s3a" => {
                // Client options first: setting them later would reset allow_http and friends.
                let mut b =
                    AmazonS3Builder::new().with_client_options(client_options(opts.timeout)).with_retry(client_retry());
                for (os_key, value) in std::env::vars() {
                    if os_key.starts_with("AWS_")
                        && let Ok(key) = os_key.to_ascii_lowercase().parse::<AmazonS3ConfigKey>()
                    {
                        b = b.with_config(key, value);
                    }
                }
                b = b.with_url(bucket_url(rest));
                for (k, v) in &opts.settings {
                    let key: AmazonS3ConfigKey = k.parse().map_err(|e| option_error("S3", k, e))?;
                    b = b.with_config(key, v);
                }
                let endpoint = b.get_config_value(&AmazonS3ConfigKey::Endpoint).unwrap_or_default();
                if endpoint.starts_with("http://") {
                    b = b.with_allow_http(true);
                }
                let has_key = b.get_config_value(&AmazonS3ConfigKey::AccessKeyId).is_some()
                    || b.get_config_value(&AmazonS3ConfigKey::SkipSignature).is_some_and(|v| v == "true")
                    || std::env::var_os("AWS_WEB_IDENTITY_TOKEN_FILE").is_some()
                    || std::env::var_os("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").is_some()
                    || std::env::var_os("AWS_CONTAINER_CREDENTIALS_FULL_URI").is_some();
                if !has_key {
                    return Err(StoreError::Permanent(
                        "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_ENDPOINT_URL for an S3-compatible service)".into(),
                    ));
                }
                Arc::new(b.build().map_err(|e| StoreError::Permanent(format!("S3: {e}")))?)
            }
            "gs" => {
                let mut b = GoogleCloudStorageBuilder::from_env()
                    .with_client_options(client_options(opts.timeout))
                    .with_retry(client_retry())
                    .with_url(bucket_url(rest));
                for (k, v) in &opts.settings {
                    let key: GoogleConfigKey = k.parse().map_err(|e| option_error("GCS", k, e))?;
                    b = b.with_config(key, v);
                }
                Arc::new(b.build().map_err(|e| {
                    StoreError::Permanent(format!(
                        "GCS (credentials from GOOGLE_SERVICE_ACCOUNT / GOOGLE_APPLICATION_CREDENTIALS): {e}"
                    ))
                })?)
            }
            "az" | "azure" | "abfs" | "abfss" => {
                let mut b = MicrosoftAzureBuilder::from_env()
                    .with_client_options(client_options(opts.timeout))
                    .with_retry(client_retry())
                    .with_url(bucket_url(rest));
                for (k, v) in &opts.settings {
                    let key: AzureConfigKey = k.parse().map_err(|e| option_error("Azure", k, e))?;
                    b = b.with_config(key, v);
                }
                Arc::new(b.build().map_err(|e| {
                    StoreError::Permanent(format!(
                        "Azure (credentials from AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY): {e}"
                    ))
                })?)
            }
            "http" | "https" => {
                let b = HttpBuilder::new()
                    .with_url(url.trim_end_matches('/'))
                    .with_retry(client_retry())
                    .with_client_options(client_options(opts.timeout));
                let store = b.build().map_err(|e| StoreError::Permanent(format!("HTTP: {e}")))?;
                return Ok((Arc::new(store), String::new()));
            }
            other => {
                return Err(StoreError::Permanent(format!(
                    "unsupported repository URL scheme `{other}://` (supported: a path, file://, memory://, s3://, gs://, az://, http(s)://)"
                )));
            }
        };
        Ok((store, prefix_of(rest)))
    }

    fn path(&self, key: &ObjectKey) -> ObjectPath {
        ObjectPath::from(format!("{}{}", self.prefix, key.path()))
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

impl Store for ObjectStoreBackend {
    fn put(&self, key: &ObjectKey, data: Bytes) -> Result<(), StoreError> {
        let path = self.path(key);
        if data.len() > MULTIPART_THRESHOLD {
            return self.rt.block_on(self.put_multipart(&path, data)).map_err(map_err);
        }
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        self.rt.block_on(self.inner.put_opts(&path, PutPayload::from_bytes(data), opts)).map(|_| ()).map_err(map_err)
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
