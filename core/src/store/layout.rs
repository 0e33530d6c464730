//! The bucket layout, version 1 (`docs/format.md` is its specification). Every key the
//! store reads or writes is made here, relative to the store's root prefix.
//!
//! ```text
//! v1/blobs/sha256/<first 2 hex>/<64 hex>       immutable, zstd; named by the content's digest
//! v1/flows/<flow>/versions/<version>.json      version pointer -> package digest
//! ```
//! No key is also a prefix of another key (some S3 servers store keys as file paths).

use crate::Digest;

/// The layout version; it is the first segment of every key.
pub const FORMAT_VERSION: &str = "v1";

/// The key of the blob named `d`.
pub fn blob(d: &Digest) -> String {
    let hex = d.hex();
    format!("{FORMAT_VERSION}/blobs/sha256/{}/{hex}", &hex[..2])
}

/// The folder of a flow's version pointers.
pub fn versions(flow: &str) -> String {
    format!("{FORMAT_VERSION}/flows/{flow}/versions/")
}

/// The key of one version pointer of a flow.
pub fn version(flow: &str, version: &str) -> String {
    format!("{}{version}.json", versions(flow))
}

/// Whether `v` may name a version: 1 to 128 letters, digits, `.`, `_` or `-`, not
/// starting with `.`.
pub fn is_version_name(v: &str) -> bool {
    crate::name::is_name(v, 128, b"._-", false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        let d = Digest::of(b"abc");
        assert_eq!(
            blob(&d),
            "v1/blobs/sha256/ba/ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(version("f", "2026"), "v1/flows/f/versions/2026.json");
        assert!(is_version_name("20261122T120000Z") && !is_version_name("../x"));
    }
}
