//! The retries flowpack adds on top of object_store's: transport failures object_store
//! does not repeat. object_store retries 5xx and 429 answers and failed connects with its
//! backoff ([`super::open::retry_config`]), but a connection reset or a body cut off on a
//! request it cannot prove idempotent (a create-only PUT, a HEAD whose connection dies) is
//! returned at once. flowpack's requests are safe to repeat — blobs are content-addressed,
//! create-only documents are compared on conflict ([`super::Store::create_json`]) — so they
//! are retried here, [`TRANSPORT_RETRIES`] times with exponential backoff and full jitter.
//! Failures object_store already retried (5xx, connect, a timeout of an idempotent request)
//! are not retried again, so the tries never multiply.

use std::future::Future;
use std::time::Duration;

use object_store::client::{HttpError, HttpErrorKind};

/// Extra tries after a transport failure object_store gave up on at once.
pub const TRANSPORT_RETRIES: u32 = 4;
/// The first backoff; it doubles per try (with full jitter): at most 0.2+0.4+0.8+1.6 s.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// Whether `e` is a transport failure object_store returned without retrying it, for a
/// request it treats as `idempotent` (reads, overwrites) or not (create-only writes).
pub fn is_unretried_transport(e: &object_store::Error, idempotent: bool) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    // A LIST whose answer was cut off fails while its body is read, after object_store's
    // retries of the request ("Error getting list response body"): nothing retried it,
    // whatever the kind of the HTTP error underneath.
    let mut reading_body = false;
    while let Some(s) = source {
        reading_body |= s.to_string().contains("response body:");
        if let Some(h) = s.downcast_ref::<HttpError>() {
            return match h.kind() {
                HttpErrorKind::Connect | HttpErrorKind::Request => reading_body && idempotent,
                HttpErrorKind::Timeout | HttpErrorKind::Interrupted => !idempotent || reading_body,
                _ => true,
            };
        }
        source = s.source();
    }
    false
}

/// Runs `op` until it succeeds, fails otherwise, or has been retried [`TRANSPORT_RETRIES`]
/// times. Returns the result and whether an earlier try failed after sending (its effect,
/// for a write, is unknown).
pub async fn retrying<T, F, Fut>(
    what: &str,
    idempotent: bool,
    mut op: F,
) -> (Result<T, object_store::Error>, bool)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, object_store::Error>>,
{
    let mut tries = 0;
    loop {
        match op().await {
            Err(e) if tries < TRANSPORT_RETRIES && is_unretried_transport(&e, idempotent) => {
                let sleep = backoff(tries);
                tries += 1;
                tracing::info!(
                    "{what}: transport failure, retry {tries} of {TRANSPORT_RETRIES} in {:.2}s: {e}",
                    sleep.as_secs_f64()
                );
                tokio::time::sleep(sleep).await;
            }
            r => return (r, tries > 0),
        }
    }
}

/// The wait before retry `tries + 1`: [`FIRST_BACKOFF`] doubled per earlier try, with full
/// jitter.
pub fn backoff(tries: u32) -> Duration {
    (FIRST_BACKOFF * 2u32.pow(tries)).mul_f64(jitter())
}

/// A number in [0, 1) that differs between calls and processes (full jitter; not crypto).
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}
