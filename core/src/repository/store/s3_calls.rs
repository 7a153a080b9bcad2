//! The S3 calls `object_store` does not offer, sent signed by `object_store`'s own SigV4 signer
//! with the store's own credentials, so they go where and as the store's other requests go:
//! - `RestoreObject` (`POST ?restore`): the warm-up of an object in Glacier Flexible Retrieval
//!   or Deep Archive (issue 15, item 4);
//! - `PutObjectRetention` (`PUT ?retention`) and the retention date a `HEAD` reports: S3 Object
//!   Lock, for repositories made with `init --object-lock` (issue 15, item 3).

use std::sync::Arc;

use ::object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey, AwsAuthorizer};
use ::object_store::client::{HttpClient, HttpConnector, HttpRequest, ReqwestConnector};

use super::{LockMode, StoreError, WarmUp};

/// What the calls need: the bucket's address, its region, the store's credentials and an HTTP
/// client.
pub(super) struct S3Calls {
    store: Arc<AmazonS3>,
    base: String,
    region: String,
    client: HttpClient,
}

/// A response: its status and body.
struct Answer {
    status: u16,
    text: String,
}

impl S3Calls {
    /// For `bucket`, as `builder` was configured (before it built `store`).
    pub(super) fn new(
        builder: &AmazonS3Builder,
        bucket: &str,
        store: Arc<AmazonS3>,
        options: &::object_store::ClientOptions,
    ) -> Result<Self, StoreError> {
        let config = |k: AmazonS3ConfigKey| builder.get_config_value(&k).unwrap_or_default();
        let region = config(AmazonS3ConfigKey::Region);
        let region = if region.is_empty() { "us-east-1".to_string() } else { region };
        let endpoint = config(AmazonS3ConfigKey::Endpoint);
        let virtual_hosted = config(AmazonS3ConfigKey::VirtualHostedStyleRequest) == "true";
        let base = match (endpoint.trim_end_matches('/'), virtual_hosted) {
            ("", _) => format!("https://{bucket}.s3.{region}.amazonaws.com"),
            // Virtual-hosted style: the endpoint names the bucket already, as object_store takes it.
            (e, true) => e.to_string(),
            (e, false) => format!("{e}/{bucket}"),
        };
        let client = ReqwestConnector::default()
            .connect(options)
            .map_err(|e| StoreError::Permanent(format!("S3 client: {e}")))?;
        Ok(S3Calls { store, base, region, client })
    }

    /// Sends `method` to the object at `path` (within the bucket) with `query` and `body`,
    /// signed; the body's SHA-256 goes in `x-amz-checksum-sha256` too, which S3 takes where it
    /// asks for a `Content-MD5`.
    async fn send(&self, method: ::http::Method, path: &str, query: &str, body: String) -> Result<Answer, StoreError> {
        let what = format!("S3 {method} {path}?{query}");
        let url = format!("{}/{}?{query}", self.base, encode_path(path));
        let mut builder = ::http::Request::builder().method(method).uri(&url);
        if !body.is_empty() {
            let digest = ring::digest::digest(&ring::digest::SHA256, body.as_bytes());
            builder = builder
                .header(::http::header::CONTENT_TYPE, "application/xml")
                .header("x-amz-sdk-checksum-algorithm", "SHA256")
                .header("x-amz-checksum-sha256", base64_encode(digest.as_ref()));
        }
        let mut request: HttpRequest =
            builder.body(bytes::Bytes::from(body).into()).map_err(|e| StoreError::Permanent(format!("{what}: {e}")))?;
        let credential = self
            .store
            .credentials()
            .get_credential()
            .await
            .map_err(|e| StoreError::PermissionDenied(format!("S3 credentials: {e}")))?;
        AwsAuthorizer::new(&credential, "s3", &self.region)
            .try_authorize(&mut request, None)
            .map_err(|e| StoreError::Permanent(format!("signing {what}: {e}")))?;
        let response = self.client.execute(request).await.map_err(|e| StoreError::Transient(format!("{what}: {e}")))?;
        let status = response.status().as_u16();
        let text =
            response.into_body().bytes().await.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
        Ok(Answer { status, text })
    }

    /// Asks S3 to make the object at `path` readable: `202 Accepted` (the restore starts),
    /// `200 OK` (a readable copy exists; its days are extended) and `409
    /// RestoreAlreadyInProgress` all mean it is, or will be, warm.
    pub(super) async fn warm_up(&self, path: &str, request: &WarmUp) -> Result<(), StoreError> {
        let body = format!(
            "<RestoreRequest xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Days>{}</Days>\
             <GlacierJobParameters><Tier>{}</Tier></GlacierJobParameters></RestoreRequest>",
            request.days,
            request.tier.name()
        );
        let answer = self.send(::http::Method::POST, path, "restore", body).await?;
        if (200..300).contains(&answer.status)
            || (answer.status == 409 && answer.text.contains("RestoreAlreadyInProgress"))
        {
            return Ok(());
        }
        Err(refusal(&format!("S3 restore of {path}"), &answer))
    }

    /// Sets the retention of the object at `path` to `mode` until `until`.
    pub(super) async fn retain(&self, path: &str, mode: LockMode, until: jiff::Timestamp) -> Result<(), StoreError> {
        let until = until.strftime("%Y-%m-%dT%H:%M:%S%.3fZ");
        let body = format!(
            "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>{}</Mode>\
             <RetainUntilDate>{until}</RetainUntilDate></Retention>",
            mode.name()
        );
        let answer = self.send(::http::Method::PUT, path, "retention", body).await?;
        if (200..300).contains(&answer.status) {
            return Ok(());
        }
        Err(refusal(&format!("S3 retention of {path}"), &answer))
    }

    /// The date until which the object at `path` is retained, if it is.
    pub(super) async fn retained_until(&self, path: &str) -> Result<Option<jiff::Timestamp>, StoreError> {
        let answer = self.send(::http::Method::GET, path, "retention", String::new()).await?;
        match answer.status {
            200..=299 => {}
            // No retention set on it (or no object lock on the bucket).
            404 if answer.text.contains("NoSuchObjectLockConfiguration") => return Ok(None),
            404 if answer.text.contains("NoSuchKey") => {
                return Err(StoreError::NotFound(path.to_string()));
            }
            _ => return Err(refusal(&format!("S3 retention of {path}"), &answer)),
        }
        let Some(date) = between(&answer.text, "<RetainUntilDate>", "</RetainUntilDate>") else {
            return Ok(None);
        };
        date.parse::<jiff::Timestamp>()
            .map(Some)
            .map_err(|e| StoreError::Permanent(format!("S3 retention of {path}: date `{date}`: {e}")))
    }
}

/// The error for an answer that is not success, by its status.
fn refusal(what: &str, answer: &Answer) -> StoreError {
    let message = format!("{what}: {}: {}", answer.status, answer.text.trim());
    match answer.status {
        403 if answer.text.contains("InvalidObjectState") => StoreError::Permanent(message),
        401 | 403 => StoreError::PermissionDenied(message),
        404 => StoreError::NotFound(message),
        408 | 429 | 500..=599 => StoreError::Transient(message),
        _ => StoreError::Permanent(message),
    }
}

/// The text between the first `open` and the `close` after it.
fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let (_, rest) = text.split_once(open)?;
    rest.split_once(close).map(|(v, _)| v.trim())
}

/// Standard base64 with padding (RFC 4648 §4), for the one checksum header.
fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `path` with every byte but unreserved ones and `/` percent-encoded, as S3 signs it.
fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
