//! The documents `flowpack step`, `show` and `resume` read back from the store on arbitrary
//! bytes: a task's `artifacts.json`, a task record (`task.json`) and a run record
//! (`run.json`). Any of them may have been written by someone else with access to the
//! bucket.
//!
//! Oracles: parsing never panics; what parses survives a round trip; every name in it is
//! a name of its kind, so the keys built from a record have exactly the segments of the
//! layout; and restoring a parsed `artifacts.json` as the parent of a task (alone, as two
//! branches of a split, as two foreach tasks) places every artifact in a new file inside
//! the inputs folder — checked on disk: after the placement nothing exists outside it.
#![no_main]

use std::fs;
use std::path::Component;

use flowpack_core::run::{Artifacts, InputLayout, RunRecord, TaskRecord, TaskRef};
use flowpack_core::store::layout;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(arts) = serde_json::from_slice::<Artifacts>(data) {
        round_trip(&arts);
        restore_and_check(&arts);
    }
    if let Ok(rec) = serde_json::from_slice::<TaskRecord>(data) {
        round_trip(&rec);
        let key = layout::attempt("f", &rec.run, &rec.step, &rec.task, rec.attempt);
        assert_segments(&key, 7);
        for p in &rec.parents {
            p.parse::<TaskRef>().expect("a parsed record's parents are tasks");
        }
        if let Some(from) = &rec.reused_from {
            let parts: Vec<&str> = from.split('/').collect();
            assert_eq!(parts.len(), 4, "{from}");
            assert_segments(&layout::attempt("f", parts[0], parts[1], parts[2], 0), 7);
        }
    }
    if let Ok(rec) = serde_json::from_slice::<RunRecord>(data) {
        round_trip(&rec);
        assert_segments(&layout::run_record(&rec.flow, &rec.run), 5);
    }
});

fn round_trip<T>(value: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let bytes = serde_json::to_vec(value).expect("serializes");
    let again: T = serde_json::from_slice(&bytes).expect("its own JSON parses");
    assert_eq!(&again, value);
}

/// `key` has `n` segments, none empty, `.` or `..` (after the layout's own).
fn assert_segments(key: &str, n: usize) {
    let segs: Vec<&str> = key.trim_end_matches('/').split('/').collect();
    assert_eq!(segs.len(), n, "{key}");
    for s in segs {
        assert!(!s.is_empty() && s != "." && s != "..", "{key}");
    }
}

fn restore_and_check(arts: &Artifacts) {
    let task = |step: &str, task: &str| TaskRef {
        step: step.into(),
        task: task.into(),
    };
    let shapes = [
        vec![(task("start", "0"), arts.clone())],
        vec![(task("a", "0"), arts.clone()), (task("b", "0"), arts.clone())],
        vec![(task("body", "0"), arts.clone()), (task("body", "1"), arts.clone())],
    ];
    for parents in shapes {
        let layout = InputLayout::of(&parents, None);
        let root = tempfile::tempdir().expect("temp dir");
        let inputs = root.path().join("inputs");
        fs::create_dir(&inputs).expect("inputs");
        for (rel, _) in &layout.placements {
            let n = rel.components().count();
            assert!((1..=2).contains(&n), "{}", rel.display());
            assert!(
                rel.components().all(|c| matches!(c, Component::Normal(_))),
                "{}",
                rel.display()
            );
            // As the runtime places them: the folder, then a new file.
            let dest = inputs.join(rel);
            if let Some(dir) = dest.parent() {
                let _ = fs::create_dir_all(dir);
            }
            let _ = fs::OpenOptions::new().write(true).create_new(true).open(&dest);
        }
        let outside: Vec<_> = fs::read_dir(root.path())
            .expect("root")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(outside, vec![std::ffi::OsString::from("inputs")]);
    }
}

