//! From a store URL to an `object_store` backend with flowpack's retry and timeout
//! settings, and how a store URL is shown ([`redact_url`]).
//!
//! | URL | backend |
//! |---|---|
//! | `/abs/path`, `rel/path`, `file:///abs/path` | local folder (created if missing) |
//! | `s3://bucket/prefix?endpoint=URL&region=R&path_style=true` | S3, MinIO, any S3-compatible server |
//! | `gs://bucket/prefix?endpoint=URL` | Google Cloud Storage (an emulator at `endpoint`) |
//! | `az://container/prefix?account=A&endpoint=URL` | Azure Blob Storage |
//!
//! Everything else, credentials first, comes only from the standard environment variables of each cloud,
//! read as object_store's `from_env` reads them; URL options win over them
//! (`AWS_ACCESS_KEY_ID`, `GOOGLE_APPLICATION_CREDENTIALS`, `AZURE_STORAGE_ACCOUNT_KEY`, …).
//! A store URL is printed, passed to every task on its command line and written into
//! compiled pipelines, so one that could hold a secret is refused: an `@` anywhere (plain
//! or `%40`: userinfo, also the endpoint's), an option the scheme does not take (its value
//! is never echoed), a `#fragment`, an endpoint with a query; an endpoint with credentials
//! from the environment too. Every error shows the URL through [`redact_url`], and a URL
//! is accepted only when [`redact_url`] leaves it unchanged.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::local::LocalFileSystem;
use object_store::{BackoffConfig, ClientConfigKey, ObjectStore, RetryConfig};
use url::Url;

use super::StoreError;
use super::error::{Cloud, ErrorContext};

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

/// flowpack's client settings: a dead store fails within seconds, an idle connection is
/// not kept for long. Each applies only where the environment set none (`AWS_TIMEOUT`,
/// `GOOGLE_CONNECT_TIMEOUT`, …).
const CLIENT_DEFAULTS: [(ClientConfigKey, &str); 3] = [
    (ClientConfigKey::ConnectTimeout, "5s"),
    (ClientConfigKey::Timeout, "300s"),
    (ClientConfigKey::PoolIdleTimeout, "30s"),
];

/// Applies [`CLIENT_DEFAULTS`] to a builder filled from the environment, key by key
/// (`get` and `set` reach its client options): replacing its client options whole would
/// drop what the environment set, such as `AWS_ALLOW_HTTP` or a proxy. An `http://`
/// `endpoint` (from the URL or the environment) allows plain HTTP, as aws-cli and s5cmd
/// take it, and skips loading the system's CA roots, which costs ~4.5 ms of a 17 ms task
/// start and is useless without TLS.
fn with_client_defaults<B>(
    mut b: B,
    get: impl Fn(&B, ClientConfigKey) -> Option<String>,
    set: impl Fn(B, ClientConfigKey, &str) -> B,
    endpoint: Option<&str>,
) -> B {
    for (key, value) in CLIENT_DEFAULTS {
        if get(&b, key).is_none() {
            b = set(b, key, value);
        }
    }
    if endpoint.is_some_and(|e| e.starts_with("http://")) {
        b = set(b, ClientConfigKey::AllowHttp, "true");
        b = set(b, ClientConfigKey::NoSystemCertificates, "true");
    }
    b
}

/// The EC2 instance metadata endpoint an S3 builder will ask for credentials, or None
/// when the environment names a source of its own (keys, web identity, container
/// credentials) or requests are unsigned. `AWS_METADATA_ENDPOINT` (object_store's name)
/// wins over `AWS_EC2_METADATA_SERVICE_ENDPOINT` (the AWS SDKs').
fn s3_metadata_endpoint(b: &AmazonS3Builder) -> Option<String> {
    use AmazonS3ConfigKey as K;
    let set = |k: K| b.get_config_value(&k).is_some();
    let explicit = set(K::AccessKeyId)
        || set(K::SecretAccessKey)
        || (set(K::WebIdentityTokenFile) && set(K::RoleArn))
        || set(K::ContainerCredentialsRelativeUri)
        || (set(K::ContainerCredentialsFullUri) && set(K::ContainerAuthorizationTokenFile))
        || b.get_config_value(&K::SkipSignature)
            .as_deref()
            .and_then(parse_bool)
            .unwrap_or(false);
    if explicit {
        return None;
    }
    let endpoint = b
        .get_config_value(&K::MetadataEndpoint)
        .or_else(|| std::env::var("AWS_EC2_METADATA_SERVICE_ENDPOINT").ok())
        .unwrap_or_else(|| "http://169.254.169.254".into());
    Some(endpoint.trim_end_matches('/').to_string())
}

/// An opened backend: the object store, the key prefix inside it, and the URL to show.
pub(super) struct Opened {
    pub store: Arc<dyn ObjectStore>,
    pub prefix: String,
    pub display: String,
    pub local_root: Option<std::path::PathBuf>,
    pub errors: ErrorContext,
}

pub(super) fn open(url: &str) -> Result<Opened, StoreError> {
    let bad = |reason: String| StoreError::BadUrl {
        url: redact_url(url),
        reason,
    };
    if !url.contains("://") {
        if let Some(scheme) = scheme_of(url).filter(|s| KNOWN_SCHEMES.contains(&s.as_str())) {
            return Err(bad(format!(
                "write {scheme}://…: without '//' it would be taken for a folder"
            )));
        }
        return open_local(Path::new(url), url);
    }
    if has_at(url) {
        return Err(bad(CREDENTIALS.into()));
    }
    let parsed = Url::parse(url).map_err(|e| bad(e.to_string()))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad(CREDENTIALS.into()));
    }
    if parsed.fragment().is_some() {
        return Err(bad("a store URL has no #fragment".into()));
    }
    let scheme = parsed.scheme();
    if scheme == "file" {
        if parsed.query().is_some() {
            return Err(bad("a file:// URL takes no options".into()));
        }
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
    if parsed.port().is_some() {
        return Err(bad(format!(
            "{scheme}://{bucket}:… has a port: a bucket has none (a server's address goes in ?endpoint=)"
        )));
    }
    let prefix = parsed.path().trim_matches('/').to_string();
    let Some(allowed) = options_of(scheme) else {
        return Err(bad(format!(
            "unknown scheme '{scheme}': use a folder path, file://, s3://, gs:// or az://"
        )));
    };
    let mut options: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
    options.sort();
    for (i, (k, _)) in options.iter().enumerate() {
        // The value is never shown: an unknown option may well be a secret.
        if !allowed.contains(&k.as_str()) {
            let list = if allowed.is_empty() {
                "none".to_string()
            } else {
                allowed.join(", ")
            };
            let name = if is_option_name(k) {
                format!("'{k}'")
            } else {
                "(name not shown)".to_string()
            };
            return Err(bad(format!(
                "unknown option {name} for {scheme}:// (allowed: {list}); credentials go in the environment"
            )));
        }
        if options[..i].iter().any(|(n, _)| n == k) {
            return Err(bad(format!("option '{k}' is given twice")));
        }
    }
    // Every accepted URL is printed as it was given: nothing in it needs hiding.
    if redact_url(url) != url {
        return Err(bad(
            "parts of it would be hidden when it is printed: write it without them".into(),
        ));
    }
    let opt = |k: &str| options.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let endpoint = opt("endpoint");
    if let Some(e) = &endpoint {
        check_endpoint(e).map_err(|reason| bad(format!("the endpoint {reason}")))?;
    }
    let open_err = |source| StoreError::Open {
        url: redact_url(url),
        source,
    };
    let mut errors = ErrorContext {
        cloud: Cloud::S3,
        url: redact_url(url),
        bucket: bucket.clone(),
        metadata_endpoint: None,
    };
    // Each builder starts from the environment as object_store reads it (`from_env`), then
    // the URL's options, then flowpack's client settings where neither set one.
    let store: Arc<dyn ObjectStore> = match scheme {
        "s3" => {
            let mut b = AmazonS3Builder::from_env()
                .with_bucket_name(&bucket)
                .with_retry(retry_config());
            // Payloads are not hashed again for the request signature (SHA-256 is half of
            // an upload's CPU without SHA-NI): flowpack names and verifies every blob by
            // its digest on read, and TLS protects the bytes in transit on https.
            // AWS_UNSIGNED_PAYLOAD=false restores signed payloads.
            if std::env::var_os("AWS_UNSIGNED_PAYLOAD").is_none() {
                b = b.with_unsigned_payload(true);
            }
            if let Some(r) = opt("region") {
                b = b.with_region(r);
            }
            if let Some(e) = &endpoint {
                b = b.with_endpoint(e);
            }
            if let Some(p) = opt("path_style") {
                let path_style = parse_bool(&p)
                    .ok_or_else(|| bad(format!("path_style must be true or false, not '{p}'")))?;
                b = b.with_virtual_hosted_style_request(!path_style);
            }
            for key in [AmazonS3ConfigKey::Endpoint, AmazonS3ConfigKey::S3Endpoint] {
                refuse_env_credentials(
                    b.get_config_value(&key),
                    "AWS_ENDPOINT, AWS_ENDPOINT_URL or AWS_ENDPOINT_URL_S3",
                )
                .map_err(bad)?;
            }
            // The S3-specific endpoint wins, as in object_store's build.
            let effective = b
                .get_config_value(&AmazonS3ConfigKey::S3Endpoint)
                .or_else(|| b.get_config_value(&AmazonS3ConfigKey::Endpoint));
            b = with_client_defaults(
                b,
                |b, k| b.get_config_value(&AmazonS3ConfigKey::Client(k)),
                |b, k, v| b.with_config(AmazonS3ConfigKey::Client(k), v),
                effective.as_deref(),
            );
            errors.metadata_endpoint = s3_metadata_endpoint(&b);
            if let Some(endpoint) = &errors.metadata_endpoint {
                b = b.with_metadata_endpoint(endpoint);
                if std::env::var("AWS_EC2_METADATA_DISABLED")
                    .is_ok_and(|v| v.eq_ignore_ascii_case("true"))
                {
                    return Err(StoreError::NoCredentials {
                        url: redact_url(url),
                        metadata_endpoint: endpoint.clone(),
                        cause: "not asked: AWS_EC2_METADATA_DISABLED is true".into(),
                    });
                }
            }
            Arc::new(b.build().map_err(open_err)?)
        }
        "gs" => {
            errors.cloud = Cloud::Gcs;
            let mut b = GoogleCloudStorageBuilder::from_env()
                .with_bucket_name(&bucket)
                .with_retry(retry_config());
            if let Some(e) = &endpoint {
                b = b.with_config(GoogleConfigKey::BaseUrl, e);
            }
            refuse_env_credentials(
                b.get_config_value(&GoogleConfigKey::BaseUrl),
                "GOOGLE_BASE_URL",
            )
            .map_err(bad)?;
            let effective = b.get_config_value(&GoogleConfigKey::BaseUrl);
            b = with_client_defaults(
                b,
                |b, k| b.get_config_value(&GoogleConfigKey::Client(k)),
                |b, k, v| b.with_config(GoogleConfigKey::Client(k), v),
                effective.as_deref(),
            );
            Arc::new(b.build().map_err(open_err)?)
        }
        _ => {
            errors.cloud = Cloud::Azure;
            let mut b = MicrosoftAzureBuilder::from_env()
                .with_container_name(&bucket)
                .with_retry(retry_config());
            if let Some(a) = opt("account") {
                b = b.with_account(a);
            }
            if let Some(e) = endpoint.clone() {
                b = b.with_endpoint(e);
            }
            refuse_env_credentials(
                b.get_config_value(&AzureConfigKey::Endpoint),
                "AZURE_STORAGE_ENDPOINT or AZURE_ENDPOINT",
            )
            .map_err(bad)?;
            let effective = b.get_config_value(&AzureConfigKey::Endpoint);
            b = with_client_defaults(
                b,
                |b, k| b.get_config_value(&AzureConfigKey::Client(k)),
                |b, k, v| b.with_config(AzureConfigKey::Client(k), v),
                effective.as_deref(),
            );
            Arc::new(b.build().map_err(open_err)?)
        }
    };
    Ok(Opened {
        store,
        prefix,
        // Checked above to be `url` itself.
        display: redact_url(url),
        local_root: None,
        errors,
    })
}

/// Why a store URL with credentials is refused, and what to do instead.
const CREDENTIALS: &str = "it holds an '@': credentials do not belong in a store URL (it is printed, passed to every task and written into pipelines); set them in the environment, e.g. AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY";

/// The schemes a store URL may have.
const KNOWN_SCHEMES: &[&str] = &["file", "s3", "gs", "az", "azure"];

/// The options each scheme takes; None for an unknown scheme.
fn options_of(scheme: &str) -> Option<&'static [&'static str]> {
    match scheme {
        "s3" => Some(&["endpoint", "path_style", "region"]),
        "az" | "azure" => Some(&["account", "endpoint"]),
        "gs" => Some(&["endpoint"]),
        _ => None,
    }
}

/// An endpoint is an http:// or https:// address with nothing else: no credentials
/// (refused before, with any '@'), no query, no fragment.
fn check_endpoint(e: &str) -> Result<(), String> {
    let u = Url::parse(e).map_err(|err| format!("is not a URL: {err}"))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err("must start with http:// or https://".into());
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err("takes no query or fragment".into());
    }
    Ok(())
}

/// Refuses an endpoint taken from the environment (`vars`) that holds credentials: it
/// would be shown in every error and log line about a request. Its value is never shown.
fn refuse_env_credentials(value: Option<String>, vars: &str) -> Result<(), String> {
    match value {
        Some(v) if has_at(&v) => Err(format!(
            "the endpoint set in the environment ({vars}) holds credentials or an '@': credentials go in their own variables"
        )),
        _ => Ok(()),
    }
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
        url: redact_url(url),
        source,
    })?;
    Ok(Opened {
        store: Arc::new(fs.with_automatic_cleanup(true)),
        prefix: String::new(),
        errors: ErrorContext {
            cloud: Cloud::Local,
            url: root.display().to_string(),
            bucket: root.display().to_string(),
            metadata_endpoint: None,
        },
        display: root.display().to_string(),
        local_root: Some(root),
    })
}

/// The options whose values are shown when a URL is printed: names of places, never secrets.
const SHOWN_OPTIONS: &[&str] = &["account", "endpoint", "path_style", "region"];

/// `url` as it may be printed: the one function every printer of a store URL goes through
/// (errors, logs, `Store::url`, task arguments, compiled pipelines).
///
/// It needs no parser, so it also hides secrets in URLs that do not parse: everything up to
/// the last `@` (or `%40`) after the scheme becomes `***@`; after a `?` or `&`, the values of
/// options other than [`SHOWN_OPTIONS`] become `***` (and their names too, unless they look
/// like option names); a `#fragment` becomes `#***`. A folder path (neither `://` nor a
/// store scheme) is returned as it is. A URL [`super::Store::open`] accepts is returned unchanged.
pub fn redact_url(url: &str) -> String {
    // Leading spaces and control characters are skipped, as URL parsers do.
    let body = url.trim_start_matches(|c: char| c <= ' ');
    let lead = &url[..url.len() - body.len()];
    let Some(scheme) = scheme_of(body)
        .filter(|s| body[s.len()..].starts_with("://") || KNOWN_SCHEMES.contains(&s.as_str()))
    else {
        return url.to_string();
    };
    let mut out = format!("{lead}{scheme}:");
    let rest = &body[scheme.len() + 1..];
    let slashes = rest.len() - rest.trim_start_matches('/').len();
    out.push_str(&rest[..slashes]);
    let mut rest = &rest[slashes..];
    if let Some(end) = last_at(rest) {
        out.push_str("***@");
        rest = &rest[end..];
    }
    let (rest, fragment) = match rest.find('#') {
        Some(i) => (&rest[..i], true),
        None => (rest, false),
    };
    match rest.find(['?', '&']) {
        None => out.push_str(rest),
        Some(i) => {
            out.push_str(&rest[..=i]);
            let shown: Vec<String> = rest[i + 1..].split('&').map(redact_option).collect();
            out.push_str(&shown.join("&"));
        }
    }
    if fragment {
        out.push_str("#***");
    }
    out
}

/// One `name=value` of a query, as [`redact_url`] shows it.
fn redact_option(pair: &str) -> String {
    let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
    let decoded = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let name_plain = decoded(name);
    let value_plain = decoded(value);
    if SHOWN_OPTIONS.contains(&name_plain.as_str()) && !value_plain.contains(['@', '?', '#', '&']) {
        pair.to_string()
    } else if is_option_name(&name_plain) {
        format!("{name}=***")
    } else {
        "***".to_string()
    }
}

/// The scheme `url` starts with (`s3` of `s3://…`, also without the `//`, after leading
/// spaces and control characters): at least two characters, so that no folder path has one.
fn scheme_of(url: &str) -> Option<String> {
    let (scheme, _) = url.trim_start_matches(|c: char| c <= ' ').split_once(':')?;
    let mut chars = scheme.chars();
    let valid = scheme.len() >= 2
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    valid.then(|| scheme.to_string())
}

/// Whether `s` holds an `@`, plain or percent-encoded: the end of a URL's credentials.
fn has_at(s: &str) -> bool {
    last_at(s).is_some()
}

/// The position just after the last `@` or `%40` in `s`.
fn last_at(s: &str) -> Option<usize> {
    let plain = s.rfind('@').map(|i| i + 1);
    let encoded = s.to_ascii_lowercase().rfind("%40").map(|i| i + 3);
    plain.max(encoded)
}

/// Whether `name` looks like an option name (lowercase letters and `_`), so that naming it
/// in an error shows no secret.
fn is_option_name(name: &str) -> bool {
    (1..=40).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
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
        assert!(reason("s3://AKIA:secret@bucket/x").contains("s3://***@bucket/x"));
        assert!(!reason("s3://AKIA:secret@bucket/x").contains("secret@"));
        assert!(reason("ftp://host/x").contains("unknown scheme 'ftp'"));
        assert!(
            reason("s3://b/x?secret_access_key=k").contains("unknown option 'secret_access_key'")
        );
        assert!(reason("s3:///x").contains("needs a bucket"));
    }

    /// Fake credentials, and every piece of them a careless printer could show.
    const KEY: &str = "AKIAFAKEKEY1";
    const SECRET: &str = "wJal/rXUt+nFEMI/K7MDENG";

    fn leaks(text: &str) -> Option<&'static str> {
        [
            KEY,
            SECRET,
            "wJal",
            "rXUt",
            "nFEMI",
            "K7MDENG",
            "wJal%2FrXUt",
        ]
        .into_iter()
        .find(|s| text.contains(s))
    }

    #[test]
    fn redaction_hides_credentials_in_every_part_of_a_url_even_unparsable() {
        let se = SECRET.replace('/', "%2F");
        let cases = [
            format!("s3://{KEY}:{SECRET}@bucket/p?region=r"),
            format!("s3://{KEY}:{se}@bucket/p"),
            format!("s3://{KEY}:1234/{SECRET}@bucket/p"),
            format!("s3://{KEY}%3A{se}%40bucket/p"),
            format!("s3://{KEY}:{SECRET}?x@bucket/p"),
            format!("s3://bucket/p?region=r&secret_access_key={SECRET}"),
            format!("s3://bucket/p?{KEY}={SECRET}"),
            format!("s3://bucket/p?{KEY}"),
            format!("s3://bucket/p&token={SECRET}"),
            format!("s3://bucket/p?endpoint=http://{KEY}:{se}@host:9000&region=r"),
            format!("s3://bucket/p?endpoint=http%3A%2F%2F{KEY}%3A{se}%40host&region=r"),
            format!("s3://bucket/p?endpoint=http%3A%2F%2Fhost%3Ftoken%3D{se}"),
            format!("s3://bucket/p#{SECRET}"),
            format!("s3://{KEY}:{SECRET} x@[bucket/p"),
            format!("s3:/{KEY}:{SECRET}@bucket/p"),
            format!(" s3://{KEY}:{SECRET}@bucket/p"),
            format!("\ts3:/{KEY}:{SECRET}@bucket/p"),
            format!("az://c/p?account=a&sas_token={SECRET}"),
            format!("file://{KEY}:{se}@localhost/tmp/x"),
        ];
        for url in &cases {
            let shown = redact_url(url);
            assert_eq!(leaks(&shown), None, "{url} is shown as {shown}");
            let err = reason(url);
            assert_eq!(leaks(&err), None, "{url} is refused as {err}");
        }
        assert_eq!(
            redact_url(&format!(
                "s3://{KEY}:{SECRET}@bucket/p?region=r&sas={SECRET}#x"
            )),
            "s3://***@bucket/p?region=r&sas=***#***"
        );
        assert_eq!(
            redact_url(&format!(
                "s3://bucket/p?endpoint=http://{KEY}:x@h:9&region=r"
            )),
            "s3://***@h:9&region=r"
        );
        assert_eq!(
            redact_url(&format!("s3://b/p?{KEY}=1&secret_access_key=2")),
            "s3://b/p?***&secret_access_key=***"
        );
        // Folder paths stay as they are.
        assert_eq!(redact_url("/data/me@work/store"), "/data/me@work/store");
        assert_eq!(redact_url("my:store@2"), "my:store@2");
    }

    #[test]
    fn redaction_never_panics_and_is_stable_on_random_text() {
        // URL-ish characters, some multi-byte, in random strings.
        const PARTS: &[&str] = &[
            "s3",
            "://",
            ":",
            "/",
            "@",
            "%40",
            "%4",
            "?",
            "&",
            "=",
            "#",
            "endpoint",
            "region",
            "x",
            "é",
            "%",
            "[",
            " ",
            "az",
            "file",
            "sas_token",
            "AKIA",
        ];
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for _ in 0..20_000 {
            let mut url = String::new();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            for k in 0..(x % 12) {
                url.push_str(PARTS[((x >> (k * 5)) % PARTS.len() as u64) as usize]);
            }
            let shown = redact_url(&url);
            assert_eq!(redact_url(&shown), shown, "{url}");
            // Remote URLs only: opening a folder path or a file:// URL creates it.
            let remote =
                url.contains("://") && Url::parse(&url).is_ok_and(|u| u.scheme() != "file");
            if let Some(Ok(o)) = remote.then(|| open(&url)) {
                assert_eq!(o.display, url, "an accepted URL is shown as given");
            }
        }
    }

    #[test]
    fn accepted_urls_are_shown_unchanged() {
        for url in [
            "s3://bkt/some/prefix?endpoint=http://127.0.0.1:9000&path_style=true&region=eu-west-1",
            "s3://bkt",
            "gs://bkt/p",
            "az://c/p?account=devstoreaccount1&endpoint=http://127.0.0.1:10000/devstoreaccount1",
        ] {
            let o = open(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(o.display, url);
            assert_eq!(redact_url(url), url);
        }
    }

    #[test]
    fn refuses_what_could_hide_a_secret() {
        assert!(reason("s3://b/p?endpoint=http://h:9%3Ftoken").contains("hidden"));
        assert!(reason("s3://b/p?endpoint=ftp://h").contains("http:// or https://"));
        assert!(reason("s3://b:9000/p").contains("has a port"));
        assert!(reason("s3://b/p?region=a&region=b").contains("given twice"));
        assert!(reason("s3://b/p#frag").contains("fragment"));
        assert!(reason("s3:/b/p").contains("write s3://"));
        assert!(reason("s3://b/pre@fix").contains("'@'"));
        assert!(reason(&format!("s3://b/p?{KEY}=1")).contains("(name not shown)"));
    }

    #[test]
    fn opens_s3_with_endpoint_and_prefix() {
        let o = open("s3://bkt/some/prefix/?endpoint=http://127.0.0.1:9&path_style=true").unwrap();
        assert_eq!(o.prefix, "some/prefix");
    }
}
