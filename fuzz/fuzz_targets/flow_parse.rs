//! The flow file parser and validator on arbitrary UTF-8: it must never panic, and every
//! error must format (which exercises the `file:line:col` position reporting).
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
        }
        Err(errors) => {
            assert!(!errors.0.is_empty(), "an error without any problem in it");
            let _ = errors.to_string();
        }
    }
});
