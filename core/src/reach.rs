//! What a compiled flow needs that only this machine has: a store in a local folder or
//! behind a loopback endpoint, and step images named `localhost/…` (podman's name for an
//! image built here and pushed nowhere). A cluster's pods can reach none of them, so
//! `compile` and `push` to an engine (KFP, Argo) refuse such a flow unless told it is meant
//! for this machine (`--allow-local`: KFP's local orchestrator, the Argo executor contract
//! test, or a cluster that mounts the folder or has the image preloaded). The rule reads
//! only the flow and the store URL, the same for every engine.

use std::collections::BTreeMap;
use std::net::IpAddr;

use url::Url;

use crate::Flow;
use crate::store::Store;

/// Something a pipeline needs that only this machine has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MachineOnly {
    /// The store is a folder on this machine.
    LocalStore {
        /// Its folder.
        folder: String,
    },
    /// The store's endpoint is a loopback address (a pod's loopback is the pod).
    LoopbackEndpoint {
        /// The endpoint as written.
        endpoint: String,
    },
    /// Steps use an image that is in this machine's image storage only.
    LocalImage {
        /// The image.
        image: String,
        /// The steps using it, by name.
        steps: Vec<String>,
    },
}

impl std::fmt::Display for MachineOnly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::LocalStore { folder } => write!(
                f,
                "the store {folder} is a folder on this machine: use a store the pods can \
                 reach (--store s3://BUCKET/PREFIX, gs://…, az://…, or FLOWPACK_STORE)"
            ),
            Self::LoopbackEndpoint { endpoint } => write!(
                f,
                "the store's endpoint {endpoint} is this machine (in a pod, it is the pod): \
                 use an address the cluster can reach"
            ),
            Self::LocalImage { image, steps } => write!(
                f,
                "the image {image} (steps {}) exists only in this machine's image storage: \
                 set `image:` (at the top of the flow or per step) to an image in a registry \
                 the cluster pulls from (docs/images.md)",
                steps.join(", ")
            ),
        }
    }
}

/// Everything `flow` compiled against `store` would need from this machine, store first,
/// then images by name.
pub fn machine_only(flow: &Flow, store: &Store) -> Vec<MachineOnly> {
    let mut found = Vec::new();
    if let Some(folder) = store.local_root() {
        found.push(MachineOnly::LocalStore {
            folder: folder.display().to_string(),
        });
    } else if let Some(endpoint) = loopback_endpoint(store.url()) {
        found.push(MachineOnly::LoopbackEndpoint { endpoint });
    }
    let mut images: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (name, step) in &flow.steps {
        if step.settings.image.starts_with("localhost/") {
            images
                .entry(&step.settings.image)
                .or_default()
                .push(name.clone());
        }
    }
    for (image, steps) in images {
        found.push(MachineOnly::LocalImage {
            image: image.to_string(),
            steps,
        });
    }
    found
}

/// Refuses `flow` on `store` when [`machine_only`] finds anything: `Err` lists each and
/// says how to compile it anyway.
pub fn refuse_machine_only(flow: &Flow, store: &Store) -> Result<(), String> {
    let found = machine_only(flow, store);
    if found.is_empty() {
        return Ok(());
    }
    let list: String = found.iter().map(|m| format!("\n  - {m}")).collect();
    Err(format!(
        "its pods could not reach what it needs on this machine:{list}\n\
         Pass --allow-local if it is meant to run where they can be reached (KFP's local \
         orchestrator on this machine, or a cluster that mounts the folder or has the image \
         preloaded)."
    ))
}

/// The `endpoint` option of a store URL when its host is a loopback or unspecified address.
fn loopback_endpoint(store_url: &str) -> Option<String> {
    let url = Url::parse(store_url).ok()?;
    let endpoint = url
        .query_pairs()
        .find(|(k, _)| k == "endpoint")
        .map(|(_, v)| v.into_owned())?;
    let host = Url::parse(&endpoint).ok()?.host_str()?.to_ascii_lowercase();
    let ip = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>();
    let local = match ip {
        Ok(ip) => ip.is_loopback() || ip.is_unspecified(),
        Err(_) => host == "localhost" || host.ends_with(".localhost"),
    };
    local.then_some(endpoint)
}

#[cfg(test)]
mod tests {
    use super::loopback_endpoint;

    #[test]
    fn loopback_endpoints_are_found_and_others_are_not() {
        for (url, found) in [
            ("s3://b/p?endpoint=http://127.0.0.1:9000", true),
            ("s3://b/p?endpoint=http://127.8.0.1:9000&region=x", true),
            ("s3://b/p?endpoint=http://localhost:9000", true),
            ("s3://b/p?endpoint=http://minio.localhost", true),
            ("s3://b/p?endpoint=http://[::1]:9000", true),
            ("s3://b/p?endpoint=http://0.0.0.0:9000", true),
            ("az://c/p?endpoint=http://127.0.0.1:10000", true),
            ("s3://b/p?endpoint=http://10.0.0.5:9000", false),
            ("s3://b/p?endpoint=https://s3.example.com", false),
            ("s3://b/p", false),
            ("gs://b/p", false),
        ] {
            assert_eq!(loopback_endpoint(url).is_some(), found, "{url}");
        }
    }
}
