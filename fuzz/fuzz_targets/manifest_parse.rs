//! Manifest parsing on arbitrary bytes: it must never panic, and a manifest that parses
//! must survive its canonical form: the canonical bytes parse again to an equal manifest
//! whose canonical bytes are the same (the package id is the digest of those bytes).
#![no_main]

use flowpack_core::Digest;
use flowpack_core::manifest::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(m) = Manifest::parse(data, Digest::of(data)) else {
        return;
    };
    let canonical = m.to_canonical();
    let again = Manifest::parse(&canonical, Digest::of(&canonical))
        .unwrap_or_else(|e| panic!("the canonical form of a valid manifest does not parse: {e}"));
    assert_eq!(again, m, "the canonical form parses to another manifest");
    assert_eq!(
        again.to_canonical(),
        canonical,
        "the canonical form is not a fixed point"
    );
});
