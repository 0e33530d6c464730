//! Store errors: each names the key (or URL) involved and the cause, and
//! [`ErrorContext::request_error`] turns what a store answered into what to check: no
//! credentials found (and where flowpack looked), a missing bucket, a wrong secret or key
//! id, missing permissions, with the store's own error code kept for experts.

use std::path::PathBuf;

use crate::Digest;

/// What went wrong with the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store URL cannot be used.
    #[error("store URL '{url}' is not usable: {reason}")]
    BadUrl {
        /// The URL through [`super::redact_url`]: nothing secret in it is shown.
        url: String,
        /// Why, and what to write instead.
        reason: String,
    },
    /// The backend could not be configured.
    #[error("cannot open the store {url}: {source}")]
    Open {
        /// The store, through [`super::redact_url`].
        url: String,
        /// The cause.
        #[source]
        source: object_store::Error,
    },
    /// A request failed after the bounded retries.
    #[error("{op} {key} failed: {source}")]
    Request {
        /// What was being done: GET, PUT, HEAD, LIST.
        op: &'static str,
        /// The full key.
        key: String,
        /// The cause.
        #[source]
        source: object_store::Error,
    },
    /// An object that should exist does not.
    #[error("{key} is not in the store")]
    NotFound {
        /// The full key.
        key: String,
    },
    /// The bucket or container does not exist.
    #[error(
        "the bucket or container '{bucket}' named in {url} does not exist, or these credentials cannot see it: create it or fix the URL ({detail})"
    )]
    NoBucket {
        /// The store.
        url: String,
        /// The bucket or container named in it.
        bucket: String,
        /// The request and the store's answer: `LIST KEY: NoSuchBucket`.
        detail: String,
    },
    /// No credentials were found for a cloud store; nothing secret is in it.
    #[error(
        "no AWS credentials found for {url}. flowpack looked in the environment (AWS_ACCESS_KEY_ID with AWS_SECRET_ACCESS_KEY, AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN, AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or AWS_CONTAINER_CREDENTIALS_FULL_URI: none is set) and then asked the EC2 instance metadata service at {metadata_endpoint}, which gave none ({cause}). flowpack does not read ~/.aws/credentials or AWS_PROFILE. Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary credentials), e.g. from a profile: eval \"$(aws configure export-credentials --profile NAME --format env)\"; on EC2, attach an instance role"
    )]
    NoCredentials {
        /// The store.
        url: String,
        /// The instance metadata endpoint that was asked.
        metadata_endpoint: String,
        /// Why it gave none: its answer or the connection error.
        cause: String,
    },
    /// The store refused a request: a wrong secret or key id, missing permissions.
    #[error("{op} {key} was refused by {url}: {reason} ({detail})")]
    Refused {
        /// What was being done: GET, PUT, HEAD, LIST.
        op: &'static str,
        /// The full key.
        key: String,
        /// The store.
        url: String,
        /// What it means and what to check (variable names, never values).
        reason: String,
        /// The store's error code, HTTP status and message, for experts.
        detail: String,
    },
    /// Stored bytes do not hash to the digest that names them.
    #[error("{key} is corrupt: its content hashes to {actual}, not {expected}; it was not used")]
    DigestMismatch {
        /// The full key.
        key: String,
        /// The digest that names it.
        expected: Digest,
        /// What the bytes hash to.
        actual: Digest,
    },
    /// Stored bytes cannot be decoded or are larger than declared.
    #[error("{key} is corrupt: {reason}; it was not used")]
    Corrupt {
        /// The full key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A document or small blob is larger than flowpack reads into memory (or writes) for
    /// its kind; reading stopped there.
    #[error("{key}: {what} may hold at most {}, and this one is larger; refused", human(*.max))]
    TooLarge {
        /// The full key.
        key: String,
        /// The limit, in bytes (of the content, for a blob).
        max: u64,
        /// What the object is.
        what: &'static str,
    },
    /// A local file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// `n` bytes for people: `16 MiB`, `64 KiB`, `1000 bytes`.
fn human(n: u64) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}

impl StoreError {
    /// Whether this is [`StoreError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }
}

/// The kind of a store, for messages that name its credentials.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum Cloud {
    /// A local folder.
    #[default]
    Local,
    /// S3 or an S3-compatible server.
    S3,
    /// Google Cloud Storage.
    Gcs,
    /// Azure Blob Storage.
    Azure,
}

impl Cloud {
    /// The variables that hold this cloud's usual credentials.
    fn credentials(self) -> &'static str {
        match self {
            Cloud::S3 => "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            Cloud::Gcs => "GOOGLE_APPLICATION_CREDENTIALS or GOOGLE_SERVICE_ACCOUNT",
            Cloud::Azure => "AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY",
            Cloud::Local => "the folder's owner and permissions",
        }
    }

    /// The secret among [`Cloud::credentials`].
    fn secret(self) -> &'static str {
        match self {
            Cloud::S3 => "AWS_SECRET_ACCESS_KEY",
            Cloud::Azure => "AZURE_STORAGE_ACCOUNT_KEY",
            Cloud::Gcs | Cloud::Local => self.credentials(),
        }
    }

    /// The variable that names the key the secret belongs to.
    fn key_id(self) -> &'static str {
        match self {
            Cloud::S3 => "AWS_ACCESS_KEY_ID",
            Cloud::Azure => "AZURE_STORAGE_ACCOUNT_NAME",
            Cloud::Gcs | Cloud::Local => self.credentials(),
        }
    }

    /// The permission `op` needs, as the cloud names it.
    fn permission(self, op: &str) -> &'static str {
        match (self, op) {
            (Cloud::S3, "LIST") => "s3:ListBucket",
            (Cloud::S3, "PUT") => "s3:PutObject",
            (Cloud::S3, _) => "s3:GetObject",
            (Cloud::Gcs, "LIST") => "storage.objects.list",
            (Cloud::Gcs, "PUT") => "storage.objects.create",
            (Cloud::Gcs, _) => "storage.objects.get",
            (Cloud::Azure, "PUT") => "Storage Blob Data Contributor",
            (Cloud::Azure, _) => "Storage Blob Data Reader",
            (Cloud::Local, "PUT") => "write",
            (Cloud::Local, _) => "read",
        }
    }
}

/// What a store's request errors are explained with; made by [`super::open`].
#[derive(Clone, Debug, Default)]
pub(super) struct ErrorContext {
    /// The kind of store.
    pub cloud: Cloud,
    /// The store as printed ([`super::redact_url`]).
    pub url: String,
    /// The bucket or container.
    pub bucket: String,
    /// For S3 when the environment names no credentials: the instance metadata endpoint,
    /// the one place left to get them. A failed request there means none were found.
    pub metadata_endpoint: Option<String>,
}

/// An S3-style error body: `<Error><Code>…</Code><Message>…</Message>…</Error>` (S3, GCS's
/// XML API and Azure answer so).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ErrorBody {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: Option<String>,
}

impl ErrorBody {
    /// The error in `body`, when it is an S3-style XML error with a code.
    fn parse(body: &str) -> Option<Self> {
        quick_xml::de::from_str::<Self>(body.trim())
            .ok()
            .filter(|b| !b.code.is_empty())
    }
}

/// The HTTP status and body of the store's answer that `e` carries. object_store's type
/// for it is not public, so they are read from its text, `Server returned non-2xx status
/// code: 403 Forbidden: BODY`, anywhere in the chain of causes.
fn answer_of(e: &object_store::Error) -> Option<(u16, String)> {
    const MARK: &str = "Server returned non-2xx status code: ";
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        let text = s.to_string();
        if let Some(rest) = text.find(MARK).map(|i| &text[i + MARK.len()..]) {
            let status = rest.get(..3).and_then(|c| c.parse().ok())?;
            let body = rest.split_once(": ").map(|(_, b)| b).unwrap_or("");
            return Some((status, body.to_string()));
        }
        source = s.source();
    }
    None
}

/// Whether any cause in `e`'s chain mentions `what`.
fn mentions(e: &object_store::Error, what: &str) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.to_string().contains(what) {
            return true;
        }
        source = s.source();
    }
    false
}

/// The innermost cause of `e`: a connection error, a status.
fn root_cause(e: &object_store::Error) -> String {
    if let Some((status, _)) = answer_of(e) {
        return format!("it answered HTTP {status}");
    }
    let mut last: &(dyn std::error::Error + 'static) = e;
    while let Some(s) = last.source() {
        last = s;
    }
    last.to_string()
}

/// `text` as one printable line of at most 300 characters: it comes from the server.
fn printable(text: &str) -> String {
    let line: String = text
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect();
    line
}

impl ErrorContext {
    /// The error for `op` on the full key `key` that failed with `source`, saying what to
    /// check where the store said why.
    pub(super) fn request_error(
        &self,
        op: &'static str,
        key: String,
        source: object_store::Error,
    ) -> StoreError {
        if let Some(endpoint) = &self.metadata_endpoint
            && mentions(&source, &format!("{endpoint}/latest/"))
        {
            return StoreError::NoCredentials {
                url: self.url.clone(),
                metadata_endpoint: endpoint.clone(),
                cause: root_cause(&source),
            };
        }
        let answer = answer_of(&source);
        let body = answer.as_ref().and_then(|(_, b)| ErrorBody::parse(b));
        let status = answer.as_ref().map(|(s, _)| *s);
        let detail = |code: &str| {
            let mut d = format!("{op} {key}: ");
            if !code.is_empty() {
                d.push_str(code);
                d.push_str(", ");
            }
            d.push_str(&format!("HTTP {}", status.unwrap_or_default()));
            if let Some(m) = body.as_ref().and_then(|b| b.message.as_deref()) {
                d.push_str(&format!(": {}", printable(m)));
            }
            d
        };
        let refused = |reason: String, code: &str| StoreError::Refused {
            op,
            key: key.clone(),
            url: self.url.clone(),
            reason,
            detail: detail(code),
        };
        let cloud = self.cloud;
        let code = body.as_ref().map(|b| b.code.as_str()).unwrap_or("");
        match (code, status) {
            ("NoSuchBucket" | "ContainerNotFound", _) => StoreError::NoBucket {
                url: self.url.clone(),
                bucket: self.bucket.clone(),
                detail: detail(code),
            },
            ("SignatureDoesNotMatch" | "AuthenticationFailed", _) => refused(
                format!(
                    "the secret does not match the key id: check {} (the secret of {}) for this endpoint",
                    cloud.secret(),
                    cloud.key_id()
                ),
                code,
            ),
            ("InvalidAccessKeyId" | "InvalidClientTokenId", _) => refused(
                format!(
                    "the store does not know this key id: check {} and that the credentials belong to this endpoint",
                    cloud.key_id()
                ),
                code,
            ),
            ("ExpiredToken" | "TokenRefreshRequired" | "InvalidToken", _) => refused(
                "the temporary credentials have expired or are invalid: renew them (AWS_SESSION_TOKEN with its key and secret)".to_string(),
                code,
            ),
            ("RequestTimeTooSkewed", _) => refused(
                "this machine's clock differs too much from the store's: set the clock right (NTP)".to_string(),
                code,
            ),
            ("AccessDenied" | "AuthorizationPermissionMismatch" | "AuthorizationFailure", _) => {
                refused(
                    format!(
                        "the credentials lack permission for {op} on {}/{key}: grant {} on the bucket, or use credentials that have it",
                        self.bucket,
                        cloud.permission(op)
                    ),
                    code,
                )
            }
            ("", Some(403)) => refused(
                format!(
                    "the store gave no reason ({}); a 403 there usually means wrong credentials (check {} for this endpoint) or no {} permission on bucket {}",
                    if op == "HEAD" {
                        "a HEAD answer has no body"
                    } else {
                        "its answer had no error code"
                    },
                    cloud.credentials(),
                    cloud.permission(op),
                    self.bucket
                ),
                code,
            ),
            (_, _) if matches!(source, object_store::Error::NotFound { .. }) => {
                if op == "PUT" || op == "LIST" {
                    // A write or listing that finds nothing means the bucket itself is missing.
                    StoreError::NoBucket {
                        url: self.url.clone(),
                        bucket: self.bucket.clone(),
                        detail: detail(code),
                    }
                } else {
                    StoreError::NotFound { key }
                }
            }
            (c, Some(400..=499)) if !c.is_empty() => refused(
                "the store refused it; its error code and message follow".to_string(),
                code,
            ),
            _ => StoreError::Request { op, key, source },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_error_bodies_are_parsed_and_printed_on_one_line() {
        let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>AccessDenied</Code><Message>Access &amp; more
denied</Message><AWSAccessKeyId>AKIAEXAMPLE</AWSAccessKeyId><RequestId>1</RequestId></Error>"#;
        let parsed = ErrorBody::parse(body).unwrap();
        assert_eq!(parsed.code, "AccessDenied");
        let message = parsed.message.unwrap();
        assert_eq!(printable(&message), "Access & more denied");
        assert!(ErrorBody::parse("").is_none());
        assert!(ErrorBody::parse("<html>busy</html>").is_none());
        assert!(ErrorBody::parse(r#"{"error": {"code": 400}}"#).is_none());
    }
}
