//! The flow file parser and validator on arbitrary UTF-8: it must never panic, every
//! error must have a position (and format, which exercises the `file:line:col`
//! reporting), and a valid flow must pass the manifest-side check (`Flow::check`, what a
//! package's flow goes through when it is read back).
#![no_main]

use std::path::Path;

use flowpack_core::flow::Flow;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Flow::parse(text, Path::new("fuzz.yaml")) {
        Ok(flow) => {
            // What a valid flow is used for next: its canonical JSON and its step order.
            let _ = flow.canonical_json();
            let _ = flow.order();
            if let Err(e) = flow.check() {
                panic!("a flow that parsed fails the manifest-side check: {e}");
            }
        }
        Err(errors) => {
            assert!(!errors.0.is_empty(), "an error without any problem in it");
            for e in &errors.0 {
                assert!(
                    e.pos.line >= 1 && e.pos.col >= 1,
                    "an error without a position: {e}"
                );
            }
            let _ = errors.to_string();
        }
    }
});
