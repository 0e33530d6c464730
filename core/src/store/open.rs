//! From a store URL to an `object_store` backend with flowpack's retry and timeout
//! settings.
//!
//! | URL | backend |
//! |---|---|
//! | `/abs/path`, `rel/path`, `file:///abs/path` | local folder (created if missing) |
//! | `s3://bucket/prefix?endpoint=URL&region=R&path_style=true` | S3, MinIO, any S3-compatible server |
//! | `gs://bucket/prefix` | Google Cloud Storage |
//! | `az://container/prefix?account=A&endpoint=URL` | Azure Blob Storage |
//!
//! Credentials come only from the standard environment variables of each cloud
//! (`AWS_ACCESS_KEY_ID`, `GOOGLE_APPLICATION_CREDENTIALS`, `AZURE_STORAGE_ACCOUNT_KEY`, …);
//! a URL with credentials in it is refused, so that URLs can be printed and written into
//! compiled pipelines safely.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};
use url::Url;

use super::StoreError;

/// Bounded retries with exponential backoff and jitter (object_store's own), and a total
/// deadline per request: a flaky store is retried, a dead one fails within a minute.
pub fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            base: 2.0,
        },
        max_retries: 6,
        retry_timeout: Duration::from_secs(60),
    }
}

/// Client options; `insecure` (an `http://` endpoint) skips loading the system's CA roots,
/// which costs ~4.5 ms of a 17 ms task start and is useless without TLS.
fn client_options(insecure: bool) -> ClientOptions {
    ClientOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(300))
        .with_pool_idle_timeout(Duration::from_secs(30))
        .with_no_system_certificates(insecure)
}

/// An opened backend: the object store, the key prefix inside it, and the URL to show.
pub(super) struct Opened {
    pub store: Arc<dyn ObjectStore>,
    pub prefix: String,
    pub display: String,
    pub local_root: Option<std::path::PathBuf>,
}

pub(super) fn open(url: &str) -> Result<Opened, StoreError> {
    let bad = |reason: String| StoreError::BadUrl {
        url: redact(url),
        reason,
    };
    let has_scheme = url.contains("://");
    if !has_scheme {
        return open_local(Path::new(url), url);
    }
    let parsed = Url::parse(url).map_err(|e| bad(e.to_string()))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad(
            "credentials do not belong in a store URL (it is printed and written into pipelines): set them in the environment, e.g. AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                .into(),
        ));
    }
    let scheme = parsed.scheme();
    if scheme == "file" {
        let path = parsed
            .to_file_path()
            .map_err(|_| bad("a file:// URL needs an absolute path".into()))?;
        return open_local(&path, url);
    }
    let bucket = parsed
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            bad(format!(
                "{scheme}:// needs a bucket: {scheme}://BUCKET/PREFIX"
            ))
        })?
        .to_string();
    let prefix = parsed.path().trim_matches('/').to_string();
    let mut options: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
    options.sort();
    let opt = |k: &str| options.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let allowed: &[&str] = match scheme {
        "s3" => &["endpoint", "region", "path_style"],
        "az" | "azure" => &["account", "endpoint"],
        "gs" => &[],
        other => {
            return Err(bad(format!(
                "unknown scheme '{other}': use a folder path, file://, s3://, gs:// or az://"
            )));
        }
    };
    for (k, _) in &options {
        if !allowed.contains(&k.as_str()) {
            let list = if allowed.is_empty() {
                "none".to_string()
            } else {
                allowed.join(", ")
            };
            return Err(bad(format!(
                "unknown option '{k}' for {scheme}:// (allowed: {list}); credentials go in the environment"
            )));
        }
    }
    let endpoint = opt("endpoint");
    let insecure = endpoint
        .as_deref()
        .is_some_and(|e| e.starts_with("http://"));
    let open_err = |source| StoreError::Open {
        url: url.to_string(),
        source,
    };
    let store: Arc<dyn ObjectStore> = match scheme {
        "s3" => {
            // with_client_options replaces all client options: call it before allow_http.
            let mut b = AmazonS3Builder::from_env()
                .with_client_options(client_options(insecure))
                .with_bucket_name(&bucket)
                .with_retry(retry_config());
            // Payloads are not hashed again for the request signature (SHA-256 is half of
            // an upload's CPU without SHA-NI): flowpack names and verifies every blob by
            // its digest on read, and TLS protects the bytes in transit on https.
            // AWS_UNSIGNED_PAYLOAD=false restores signed payloads.
            if std::env::var_os("AWS_UNSIGNED_PAYLOAD").is_none() {
                b = b.with_unsigned_payload(true);
            }
            if std::env::var_os("AWS_REGION").is_none()
                && std::env::var_os("AWS_DEFAULT_REGION").is_none()
            {
                b = b.with_region("us-east-1");
            }
            if let Some(r) = opt("region") {
                b = b.with_region(r);
            }
            if let Some(e) = &endpoint {
                b = b.with_endpoint(e);
            }
            if insecure {
                b = b.with_allow_http(true);
            }
            if let Some(p) = opt("path_style") {
                let path_style = parse_bool(&p)
                    .ok_or_else(|| bad(format!("path_style must be true or false, not '{p}'")))?;
                b = b.with_virtual_hosted_style_request(!path_style);
            }
            Arc::new(b.build().map_err(open_err)?)
        }
        "gs" => Arc::new(
            GoogleCloudStorageBuilder::from_env()
                .with_client_options(client_options(false))
                .with_bucket_name(&bucket)
                .with_retry(retry_config())
                .build()
                .map_err(open_err)?,
        ),
        _ => {
            let mut b = MicrosoftAzureBuilder::from_env()
                .with_client_options(client_options(insecure))
                .with_container_name(&bucket)
                .with_retry(retry_config());
            if let Some(a) = opt("account") {
                b = b.with_account(a);
            }
            if let Some(e) = endpoint.clone() {
                b = b.with_endpoint(e);
            }
            if insecure {
                b = b.with_allow_http(true);
            }
            Arc::new(b.build().map_err(open_err)?)
        }
    };
    Ok(Opened {
        store,
        prefix,
        display: url.to_string(),
        local_root: None,
    })
}

fn open_local(path: &Path, url: &str) -> Result<Opened, StoreError> {
    std::fs::create_dir_all(path).map_err(|source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let root = std::fs::canonicalize(path).map_err(|source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let fs = LocalFileSystem::new_with_prefix(&root).map_err(|source| StoreError::Open {
        url: url.to_string(),
        source,
    })?;
    Ok(Opened {
        store: Arc::new(fs.with_automatic_cleanup(true)),
        prefix: String::new(),
        display: root.display().to_string(),
        local_root: Some(root),
    })
}

/// `url` without any `user:password@` part.
fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let end = rest.find('/').unwrap_or(rest.len());
            match rest[..end].rfind('@') {
                Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
                None => url.to_string(),
            }
        }
        None => url.to_string(),
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(url: &str) -> String {
        match open(url) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{url} opened"),
        }
    }

    #[test]
    fn refuses_credentials_unknown_schemes_and_options() {
        assert!(reason("s3://AKIA:secret@bucket/x").contains("credentials do not belong"));
        assert!(!reason("s3://AKIA:secret@bucket/x").contains("secret@"));
        assert!(reason("ftp://host/x").contains("unknown scheme 'ftp'"));
        assert!(
            reason("s3://b/x?secret_access_key=k").contains("unknown option 'secret_access_key'")
        );
        assert!(reason("s3:///x").contains("needs a bucket"));
    }

    #[test]
    fn opens_s3_with_endpoint_and_prefix() {
        let o = open("s3://bkt/some/prefix/?endpoint=http://127.0.0.1:9&path_style=true").unwrap();
        assert_eq!(o.prefix, "some/prefix");
    }
}
