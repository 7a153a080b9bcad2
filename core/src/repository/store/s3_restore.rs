//! S3 `RestoreObject`: the warm-up of an object in Glacier Flexible Retrieval or Deep Archive
//! (issue 15, item 4), which `object_store` does not offer. One signed `POST ?restore` per
//! object, signed by `object_store`'s own SigV4 signer with the store's own credentials, so it
//! goes where and as the store's other requests go.

use std::sync::Arc;

use ::object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey, AwsAuthorizer};
use ::object_store::client::{HttpClient, HttpConnector, HttpRequest, ReqwestConnector};

use super::{StoreError, WarmUp};

/// What a restore request needs: the bucket's address, its region, the store's credentials
/// and an HTTP client.
pub(super) struct S3Restore {
    store: Arc<AmazonS3>,
    base: String,
    region: String,
    client: HttpClient,
}

impl S3Restore {
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
            .map_err(|e| StoreError::Permanent(format!("S3 restore client: {e}")))?;
        Ok(S3Restore { store, base, region, client })
    }

    /// Asks S3 to make the object at `path` (within the bucket) readable: `202 Accepted` (the
    /// restore starts), `200 OK` (a readable copy exists; its days are extended) and `409
    /// RestoreAlreadyInProgress` all mean it is, or will be, warm.
    pub(super) async fn warm_up(&self, path: &str, request: &WarmUp) -> Result<(), StoreError> {
        let body = format!(
            "<RestoreRequest xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Days>{}</Days>\
             <GlacierJobParameters><Tier>{}</Tier></GlacierJobParameters></RestoreRequest>",
            request.days,
            request.tier.name()
        );
        let url = format!("{}/{}?restore", self.base, encode_path(path));
        let mut http: HttpRequest = ::http::Request::builder()
            .method(::http::Method::POST)
            .uri(&url)
            .header(::http::header::CONTENT_TYPE, "application/xml")
            .body(bytes::Bytes::from(body).into())
            .map_err(|e| StoreError::Permanent(format!("S3 restore request for {path}: {e}")))?;
        let credential = self
            .store
            .credentials()
            .get_credential()
            .await
            .map_err(|e| StoreError::PermissionDenied(format!("S3 credentials: {e}")))?;
        AwsAuthorizer::new(&credential, "s3", &self.region)
            .try_authorize(&mut http, None)
            .map_err(|e| StoreError::Permanent(format!("signing the S3 restore request for {path}: {e}")))?;
        let response =
            self.client.execute(http).await.map_err(|e| StoreError::Transient(format!("S3 restore of {path}: {e}")))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text =
            response.into_body().bytes().await.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
        if status.as_u16() == 409 && text.contains("RestoreAlreadyInProgress") {
            return Ok(());
        }
        let message = format!("S3 restore of {path}: {status}: {}", text.trim());
        Err(match status.as_u16() {
            403 if text.contains("InvalidObjectState") => StoreError::Permanent(message),
            401 | 403 => StoreError::PermissionDenied(message),
            408 | 429 | 500..=599 => StoreError::Transient(message),
            _ => StoreError::Permanent(message),
        })
    }
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
