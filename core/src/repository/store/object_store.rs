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

#[cfg(feature = "cloud")]
/// Whether `gcloud auth application-default login` left credentials where object_store looks.
fn gcloud_default_credentials_exist() -> bool {
    std::env::var_os("HOME").is_some_and(|home| {
        std::path::Path::new(&home).join(".config/gcloud/application_default_credentials.json").is_file()
    })
}

#[cfg(feature = "cloud")]
/// `%XX` escapes decoded, as URLs carry user names and passwords.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(feature = "cloud")]
/// Standard base64 with padding (RFC 4648 §4), for a Basic Authorization header.
fn base64_encode(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for group in data.chunks(3) {
        let n = group.iter().enumerate().fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= group.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

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

    #[cfg(not(feature = "cloud"))]
    fn open_remote(
        url: &str,
        _: &BackendOptions,
        _: &mut Option<Arc<S3Calls>>,
    ) -> Result<(Arc<dyn ObjectStore>, String, CreateOnly), StoreError> {
        Err(StoreError::Permanent(format!("{url}: this build of cairn has no cloud storage support (feature `cloud`)")))
    }

    #[cfg(feature = "cloud")]
    fn open_remote(
        url: &str,
        opts: &BackendOptions,
        s3_calls: &mut Option<Arc<S3Calls>>,
    ) -> Result<(Arc<dyn ObjectStore>, String, CreateOnly), StoreError> {
        use ::object_store::ClientConfigKey;
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
                let s3 = Arc::new(b.clone().build().map_err(|e| StoreError::Permanent(format!("S3: {e}")))?);
                let client = client_options(opts.timeout).with_allow_http(endpoint.starts_with("http://"));
                let bucket = rest.split('/').next().unwrap_or_default();
                *s3_calls = Some(Arc::new(S3Calls::new(&b, bucket, Arc::clone(&s3), &client)?));
                s3
            }
            "gs" => {
                // from_env, not with_client_options: that would drop client settings from the
                // environment (e.g. GOOGLE_ALLOW_HTTP, AZURE_ALLOW_HTTP).
                let mut b = GoogleCloudStorageBuilder::from_env().with_retry(client_retry()).with_url(bucket_url(rest));
                if let Some(t) = opts.timeout {
                    b = b
                        .with_config(GoogleConfigKey::Client(ClientConfigKey::Timeout), format!("{}ms", t.as_millis()));
                }
                // STORAGE_EMULATOR_HOST points Google's own client libraries at an emulator; an
                // emulator takes any token, and asking a metadata server for one would only hang.
                if let Ok(host) = std::env::var("STORAGE_EMULATOR_HOST") {
                    let base = if host.contains("://") { host } else { format!("http://{host}") };
                    b = b
                        .with_config(GoogleConfigKey::BaseUrl, base.trim_end_matches('/'))
                        .with_config(GoogleConfigKey::BearerToken, "emulator");
                }
                for (k, v) in &opts.settings {
                    let key: GoogleConfigKey = k.parse().map_err(|e| option_error("GCS", k, e))?;
                    b = b.with_config(key, v);
                }
                let base_url = b.get_config_value(&GoogleConfigKey::BaseUrl).unwrap_or_default();
                if base_url.starts_with("http://") {
                    b = b.with_config(GoogleConfigKey::Client(ClientConfigKey::AllowHttp), "true");
                }
                let configured = |key| b.get_config_value(&key).is_some_and(|v| !v.is_empty());
                // Not google_skip_signature: object_store 0.14 still fetches a token for some
                // requests then, and cairn needs to write anyway.
                let has_credentials = [
                    GoogleConfigKey::ServiceAccount,
                    GoogleConfigKey::ServiceAccountKey,
                    GoogleConfigKey::ApplicationCredentials,
                    GoogleConfigKey::BearerToken,
                ]
                .into_iter()
                .any(configured)
                    || gcloud_default_credentials_exist()
                    || ["GCE_METADATA_HOST", "GCE_METADATA_ROOT", "GCE_METADATA_IP"]
                        .iter()
                        .any(|v| std::env::var_os(v).is_some());
                if !has_credentials {
                    return Err(StoreError::Permanent(
                        "no GCS credentials: set GOOGLE_SERVICE_ACCOUNT (a service-account key file), \
                         GOOGLE_SERVICE_ACCOUNT_KEY (the key itself) or GOOGLE_APPLICATION_CREDENTIALS, or run \
                         `gcloud auth application-default login`; on a GCE VM set GCE_METADATA_HOST to use its \
                         service account; for an emulator set STORAGE_EMULATOR_HOST"
                            .into(),
                    ));
                }
                Arc::new(b.build().map_err(|e| StoreError::Permanent(format!("GCS: {e}")))?)
            }
            "az" | "azure" | "abfs" | "abfss" => {
                // from_env, not with_client_options: that would drop client settings from the
                // environment (e.g. GOOGLE_ALLOW_HTTP, AZURE_ALLOW_HTTP).
                let mut b = MicrosoftAzureBuilder::from_env().with_retry(client_retry()).with_url(bucket_url(rest));
                if let Some(t) = opts.timeout {
                    b = b.with_config(AzureConfigKey::Client(ClientConfigKey::Timeout), format!("{}ms", t.as_millis()));
                }
                for (k, v) in &opts.settings {
                    let key: AzureConfigKey = k.parse().map_err(|e| option_error("Azure", k, e))?;
                    b = b.with_config(key, v);
                }
                let endpoint = b.get_config_value(&AzureConfigKey::Endpoint).unwrap_or_default();
                if endpoint.starts_with("http://") {
                    b = b.with_config(AzureConfigKey::Client(ClientConfigKey::AllowHttp), "true");
                }
                let configured = |key| b.get_config_value(&key).is_some_and(|v| !v.is_empty() && v != "false");
                // The emulator (Azurite) brings its own well-known account and key.
                if !configured(AzureConfigKey::UseEmulator) {
                    if !configured(AzureConfigKey::AccountName) {
                        return Err(StoreError::Permanent(
                            "no Azure storage account: set AZURE_STORAGE_ACCOUNT_NAME (and a credential such as \
                             AZURE_STORAGE_ACCOUNT_KEY), or AZURE_STORAGE_USE_EMULATOR=true for Azurite"
                                .into(),
                        ));
                    }
                    let has_credentials = [
                        AzureConfigKey::AccessKey,
                        AzureConfigKey::SasKey,
                        AzureConfigKey::Token,
                        AzureConfigKey::ClientId,
                        AzureConfigKey::FederatedTokenFile,
                        AzureConfigKey::MsiEndpoint,
                        AzureConfigKey::UseAzureCli,
                        AzureConfigKey::CredentialType,
                        AzureConfigKey::SkipSignature,
                        AzureConfigKey::FabricTokenServiceUrl,
                    ]
                    .into_iter()
                    .any(configured);
                    if !has_credentials {
                        return Err(StoreError::Permanent(
                            "no Azure credentials: set AZURE_STORAGE_ACCOUNT_KEY, AZURE_STORAGE_SAS_TOKEN or \
                             AZURE_STORAGE_TOKEN, or AZURE_CLIENT_ID with AZURE_CLIENT_SECRET and AZURE_TENANT_ID; \
                             on an Azure VM set AZURE_CREDENTIAL_TYPE=managed_identity"
                                .into(),
                        ));
                    }
                }
                Arc::new(b.build().map_err(|e| StoreError::Permanent(format!("Azure: {e}")))?)
            }
            "http" | "https" => {
                // The client talks to the server's root and the URL's path becomes the prefix:
                // object_store creates missing parent collections (MKCOL) only below the URL it
                // was given, so this way the repository's own folder is created too.
                let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
                // `user:password@` becomes a Basic Authorization header: the HTTP client ignores
                // credentials in URLs, and a URL without them keeps them out of error messages.
                let (userinfo, host) = match authority.rsplit_once('@') {
                    Some((userinfo, host)) => (Some(userinfo), host),
                    None => (None, authority),
                };
                let path = path.trim_matches('/');
                let prefix = if path.is_empty() {
                    String::new()
                } else {
                    let decoded = ObjectPath::from_url_path(path)
                        .map_err(|e| StoreError::Permanent(format!("{}: bad path: {e}", redact_userinfo(url))))?;
                    format!("{decoded}/")
                };
                let mut client = client_options(opts.timeout);
                if let Some(userinfo) = userinfo {
                    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                    let token =
                        base64_encode(format!("{}:{}", percent_decode(user), percent_decode(password)).as_bytes());
                    let mut value = ::object_store::HeaderValue::from_str(&format!("Basic {token}")).map_err(|e| {
                        StoreError::Permanent(format!("{}: bad credentials: {e}", redact_userinfo(url)))
                    })?;
                    value.set_sensitive(true);
                    let mut headers = ::object_store::HeaderMap::new();
                    headers.insert("authorization", value);
                    client = client.with_default_headers(headers);
                }
                let mut b = HttpBuilder::new()
                    .with_url(format!("{scheme}://{host}"))
                    .with_retry(client_retry())
                    .with_client_options(client);
                if url.starts_with("http://") {
                    b = b.with_config(ClientConfigKey::AllowHttp, "true");
                }
                for (k, v) in &opts.settings {
                    let key: ClientConfigKey = k.parse().map_err(|e| option_error("HTTP", k, e))?;
                    b = b.with_config(key, v);
                }
                let store = b.build().map_err(|e| StoreError::Permanent(format!("HTTP: {e}")))?;
                return Ok((Arc::new(store), prefix, CreateOnly::CopyFromStaging));
            }
            other => {
                return Err(StoreError::Permanent(format!(
                    "unsupported repository URL scheme `{other}://` (supported: a path, file://, memory://, s3://, gs://, az://, http(s)://)"
                )));
            }
        };
        Ok((store, prefix_of(rest), CreateOnly::Native))
    }

    /// Gives a local object just written, and the directories between it and the root, the
    /// modes the root allows (owner only, or owner and group): whatever the umask, no other
    /// user may read what a local repository holds.
    fn keep_private(&self, key: &ObjectKey) -> Result<(), StoreError> {
        let Some(root) = &self.local_root else { return Ok(()) };
        let modes = *self.local_modes.get_or_init(|| {
            std::fs::metadata(root).map_or(Modes::PRIVATE, |m| Modes::following(m.permissions().mode()))
        });
        let file = root.join(key.path());
        let failed = |p: &std::path::Path, e: std::io::Error| StoreError::Permanent(format!("{}: {e}", p.display()));
        private::set_mode(&file, modes.file).map_err(|e| failed(&file, e))?;
        let mut dir = file.parent();
        while let Some(d) = dir.filter(|d| d.starts_with(root) && *d != root.as_path()) {
            let mut done =
                self.local_dirs.lock().map_err(|_| StoreError::Permanent("directory set poisoned".into()))?;
            if done.insert(d.to_path_buf()) {
                private::set_mode(d, modes.dir).map_err(|e| failed(d, e))?;
            }
            dir = d.parent();
        }
        Ok(())
    }

    fn path(&self, key: &ObjectKey) -> ObjectPath {
        ObjectPath::from(format!("{}{}", self.prefix, key.path()))
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

/// Reads `range` of a local file on the calling thread. object_store's local store hands each
/// read to its runtime's blocking pool and zero-fills the buffer before reading into it (3 % of
/// a restore's CPU in `perf record`, plus the page faults of touching the buffer twice); here
/// the kernel writes into the fresh buffer directly.
fn read_local_range(path: &std::path::Path, range: Range<u64>) -> Result<Bytes, StoreError> {
    let mut buf = Vec::new();
    read_local_range_into(path, range, &mut buf)?;
    Ok(Bytes::from(buf))
}

/// [`read_local_range`] into `buf`, reusing its allocation.
fn read_local_range_into(path: &std::path::Path, range: Range<u64>, buf: &mut Vec<u8>) -> Result<(), StoreError> {
    use std::io::{Read, Seek, SeekFrom};
    let io_err = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => StoreError::NotFound(path.display().to_string()),
        _ => StoreError::Permanent(format!("{}: {e}", path.display())),
    };
    let len = usize::try_from(range.end.saturating_sub(range.start))
        .map_err(|_| StoreError::Permanent(format!("{}: range too large", path.display())))?;
    let mut file = std::fs::File::open(path).map_err(io_err)?;
    file.seek(SeekFrom::Start(range.start)).map_err(io_err)?;
    buf.clear();
    buf.reserve(len);
    (&mut file).take(len as u64).read_to_end(buf).map_err(io_err)?;
    if buf.len() < len {
        // A local file read to its end: the object is shorter than the range.
        let size = file.metadata().map_err(io_err)?.len();
        return Err(object_too_short(size, &range));
    }
    Ok(())
}

/// Local objects at least this long (packs) leave the page cache once written.
const DROP_PAGES_FROM: usize = 1 << 20;

/// Drops a local object just written, and synced, from the page cache. A backup's packs are
/// not read again soon: cached, they would push out pages the machine's own work (a production
/// database) keeps hot, and on a VM whose free memory goes back to the host every new page
/// faults in fresh. Dropped, the next pack reuses the same pages: 1 GiB written as 64 synced
/// files of 16 MiB took 1.05–1.55 s of system time cached, 0.28–0.35 s dropped (this machine,
/// Linux 6.x, ext4). Only the cache changes, so failing to is no error.
fn drop_pages(file: &std::path::Path) {
    if let Ok(f) = std::fs::File::open(file) {
        let _ = nix::fcntl::posix_fadvise(&f, 0, 0, nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED);
    }
}

/// The error of a ranged read past the end of an object: it is shorter than whoever asked
/// (an index entry, a pack header) says.
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
        // An object shorter than the range is reported here, where its size is known; any
        // other short response is returned as it is, for the retry layer to read again.
        let Some(root) = &self.local_root else {
            return self.rt.block_on(async {
                let opts = ::object_store::GetOptions::default().with_range(Some(range.clone()));
                let result = self.inner.get_opts(&self.path(key), opts).await.map_err(map_err)?;
                if result.meta.size < range.end {
                    return Err(object_too_short(result.meta.size, &range));
                }
                result.bytes().await.map_err(map_err)
            });
        };
        read_local_range(&root.join(key.path()), range)
    }

    fn get_range_into(&self, key: &ObjectKey, range: Range<u64>, buf: &mut Vec<u8>) -> Result<(), StoreError> {
        match &self.local_root {
            Some(root) => read_local_range_into(&root.join(key.path()), range, buf),
            None => {
                let got = self.get_range(key, range)?;
                buf.clear();
                buf.extend_from_slice(&got);
                Ok(())
            }
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
mod tests {
    use super::*;
    use crate::foundation::id::Digest;

    #[test]
    fn client_errors_are_permanent_but_timeouts_throttling_and_locks_are_retried() {
        let generic = |text: &str| ::object_store::Error::Generic { store: "HTTP", source: text.to_string().into() };
        let status = |code: &str| {
            format!("Error performing MKCOL http://h/r/data - Server returned non-2xx status code: {code}")
        };
        for code in ["408 Request Timeout", "423 Locked", "429 Too Many Requests"] {
            assert!(matches!(map_err(generic(&status(code))), StoreError::Transient(_)), "{code}");
        }
        for code in ["400 Bad Request", "404 Not Found", "409 Conflict"] {
            assert!(matches!(map_err(generic(&status(code))), StoreError::Permanent(_)), "{code}");
        }
    }

    #[test]
    fn passwords_in_urls_are_not_repeated() {
        assert_eq!(redact_userinfo("https://alice:s3cret@dav.example/backup"), "https://alice:***@dav.example/backup");
        assert_eq!(redact_userinfo("https://alice@dav.example/a@b"), "https://alice:***@dav.example/a@b");
        assert_eq!(redact_userinfo("http://127.0.0.1:8080/repo"), "http://127.0.0.1:8080/repo");
        assert_eq!(redact_userinfo("/srv/repo"), "/srv/repo");
    }

    #[cfg(feature = "cloud")]
    #[test]
    fn basic_credentials_encode() {
        assert_eq!(base64_encode(b"alice:s3cret"), "YWxpY2U6czNjcmV0");
        assert_eq!(base64_encode(b"a"), "YQ==");
        assert_eq!(base64_encode(b"ab"), "YWI=");
        assert_eq!(base64_encode(b""), "");
        assert_eq!(percent_decode("p%40ss%3Aw%zz%4"), "p@ss:w%zz%4");
    }

    /// Pages of `path` in the page cache.
    #[allow(unsafe_code)]
    fn resident_pages(path: &std::path::Path) -> usize {
        let file = std::fs::File::open(path).unwrap();
        // SAFETY: the map is only passed to mincore, never read; the test owns the file.
        let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
        // SAFETY: sysconf reads a constant.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap();
        let mut resident = vec![0u8; map.len().div_ceil(page)];
        // SAFETY: `resident` has a byte per page of the mapping, as mincore writes.
        let rc = unsafe { libc::mincore(map.as_ptr() as *mut libc::c_void, map.len(), resident.as_mut_ptr()) };
        assert_eq!(rc, 0, "mincore: {}", std::io::Error::last_os_error());
        resident.iter().filter(|&&b| b & 1 != 0).count()
    }

    #[test]
    fn local_packs_leave_the_page_cache_once_written() {
        // tmpfs pages cannot be dropped: then a directory on the disk the sources are on.
        let tmp = std::env::temp_dir();
        let on_tmpfs =
            nix::sys::statfs::statfs(&tmp).is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC);
        let dir =
            if on_tmpfs { tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")) } else { tempfile::tempdir() }.unwrap();
        let store = ObjectStoreBackend::open(dir.path().to_str().unwrap(), &BackendOptions::default()).unwrap();
        let pack = ObjectKey::new(ObjectKind::Pack, Digest::of(b"pack"));
        let small = ObjectKey::new(ObjectKind::Index, Digest::of(b"index"));
        store.put(&pack, Bytes::from(vec![7u8; 4 << 20])).unwrap();
        store.put(&small, Bytes::from(vec![7u8; 64 << 10])).unwrap();
        // The small object shows the check sees cached pages; the pack has none left.
        assert!(resident_pages(&dir.path().join(small.path())) > 0);
        assert_eq!(resident_pages(&dir.path().join(pack.path())), 0);
        assert_eq!(store.get(&pack).unwrap().len(), 4 << 20);
    }

    #[test]
    fn unknown_schemes_are_named() {
        match ObjectStoreBackend::open("ftp://host/repo", &BackendOptions::default()) {
            Err(StoreError::Permanent(msg)) => assert!(msg.contains("`ftp://`"), "{msg}"),
            Err(other) => panic!("expected a permanent error, got {other:?}"),
            Ok(_) => panic!("ftp:// opened"),
        }
    }
}
