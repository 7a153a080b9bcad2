//! Opening a remote store (S3 and its peers, GCS, Azure, HTTP/WebDAV) from a URL: the
//! clients' settings, timeouts and retries, `-o` options, and the checks for credentials.

use std::sync::Arc;

use ::object_store::ObjectStore;
#[cfg(feature = "cloud")]
use ::object_store::path::Path as ObjectPath;

use super::super::StoreError;
#[cfg(feature = "cloud")]
use super::redact_userinfo;
use super::{BackendOptions, CreateOnly, ObjectStoreBackend, S3Calls};

#[cfg(feature = "cloud")]
fn option_error(scheme: &str, key: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Permanent(format!("option `{key}` is not a {scheme} setting: {e}"))
}

#[cfg(feature = "cloud")]
/// object_store's own retries are kept short:
/// [`super::retry::RetryStore`](super::super::retry::RetryStore) is the policy.
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
pub(super) fn percent_decode(s: &str) -> String {
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
pub(super) fn base64_encode(data: &[u8]) -> String {
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

/// Whether S3 requests to `endpoint` (empty: AWS) leave the body out of their signature
/// (`UNSIGNED-PAYLOAD`) when the user chose neither way (`user_chose`).
///
/// Over TLS the transport already guards the body on the wire, so the signature need not also
/// cover a SHA-256 of it: hashing every uploaded byte was about a quarter of the CPU of a
/// backup to S3 (3.5 against 2.6 CPU-s for 1 GiB). Over plain HTTP the body stays signed, so
/// bytes damaged on the way are refused at the upload rather than found at the next check.
#[cfg(feature = "cloud")]
fn leave_payload_unsigned(endpoint: &str, user_chose: bool) -> bool {
    !user_chose && !endpoint.starts_with("http://")
}

/// Whether `AWS_UNSIGNED_PAYLOAD` or an `-o aws_unsigned_payload=…` setting chose how S3
/// bodies are signed.
#[cfg(feature = "cloud")]
fn unsigned_payload_chosen(opts: &BackendOptions) -> bool {
    use ::object_store::aws::AmazonS3ConfigKey;
    let is_it = |k: &str| matches!(k.parse(), Ok(AmazonS3ConfigKey::UnsignedPayload));
    std::env::var_os("AWS_UNSIGNED_PAYLOAD").is_some() || opts.settings.iter().any(|(k, _)| is_it(k))
}

impl ObjectStoreBackend {
    #[cfg(not(feature = "cloud"))]
    pub(super) fn open_remote(
        url: &str,
        _: &BackendOptions,
        _: &mut Option<Arc<S3Calls>>,
    ) -> Result<(Arc<dyn ObjectStore>, String, CreateOnly), StoreError> {
        Err(StoreError::Permanent(format!("{url}: this build of cairn has no cloud storage support (feature `cloud`)")))
    }

    #[cfg(feature = "cloud")]
    pub(super) fn open_remote(
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
                if leave_payload_unsigned(&endpoint, unsigned_payload_chosen(opts)) {
                    b = b.with_unsigned_payload(true);
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
}

#[cfg(all(test, feature = "cloud"))]
mod tests {
    use super::*;

    #[test]
    fn s3_bodies_go_unsigned_over_tls_only_unless_the_user_chose() {
        assert!(leave_payload_unsigned("", false), "AWS itself is reached over TLS");
        assert!(leave_payload_unsigned("https://s3.example.net", false));
        assert!(!leave_payload_unsigned("http://127.0.0.1:9000", false));
        assert!(!leave_payload_unsigned("https://s3.example.net", true));
    }

    #[test]
    fn an_unsigned_payload_setting_counts_as_the_users_choice() {
        let opts = |k: &str| BackendOptions { settings: vec![(k.into(), "false".into())], ..Default::default() };
        assert!(unsigned_payload_chosen(&opts("aws_unsigned_payload")));
        assert!(!unsigned_payload_chosen(&opts("aws_region")));
    }
}
