//! Flow validation: one snapshot per error kind, and the normalized form of a flow that
//! uses every construct.

use std::path::Path;

use super::*;

const FULL: &str = r#"name: train-flow
description: Train two models, tune over shards, check, report
image: localhost/flowpack-python:3.11
code: .
env:
  requirements: requirements.txt
parameters:
  alpha: {type: float, default: 0.01, help: Learning rate}
  epochs: 3
  tag: {type: string}
  grid: {type: json, default: [1, 2]}
  fast: false
defaults:
  resources: {cpu: "1", memory: 2Gi}
  retry: {times: 2, delay: 30s}
  timeout: 2h
  env: {LOG_LEVEL: info}
steps:
  start:   {run: python prep.py, next: [train_a, train_b]}
  train_a: {run: python train.py a, next: pick, outputs: [model_a]}
  train_b:
    run: [python, train.py, b]
    next: pick
    resources: {gpu: 1, gpu_type: nvidia.com/gpu}
    secrets: {WANDB_KEY: wandb/api-key}
    tolerations: [{key: gpu, operator: Exists, effect: NoSchedule}]
    node_selector: {pool: gpu}
    outputs: [model_b]
  pick:    {run: python pick.py, join: true, next: shard, outputs: [best]}
  shard:   {run: python shard.py, foreach: shards, next: work}
  work:    {run: python work.py, next: collect, cache: false, service_account: trainer}
  collect: {run: python collect.py, join: true, next: check}
  check:   {run: python check.py, switch: {on: verdict, cases: {ok: end, retrain: start_over}}}
  start_over: {run: python reset.py, next: end, image_pull_policy: Always, retry: 0}
  end:     {run: python report.py, timeout: 90, inputs: [best]}
"#;

fn errors(text: &str) -> String {
    match Flow::parse(text, Path::new("flow.yaml")) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_flow_with_every_construct_normalizes() {
    let flow = Flow::parse(FULL, Path::new("flow.yaml")).unwrap();
    assert_eq!(
        flow.order(),
        [
            "start",
            "train_a",
            "train_b",
            "pick",
            "shard",
            "work",
            "collect",
            "check",
            "end",
            "start_over"
        ]
    );
    let w = &flow.steps["work"].settings;
    assert_eq!(
        w.retry,
        Retry {
            times: 2,
            delay_seconds: 30
        }
    );
    assert_eq!(w.timeout_seconds, Some(7200));
    assert!(!w.cache);
    assert_eq!(flow.steps["start_over"].settings.retry.times, 0);
    assert_eq!(flow.steps["end"].settings.timeout_seconds, Some(90));
    assert_eq!(
        flow.parameters["alpha"].default,
        Some(serde_json::json!(0.01))
    );
    assert_eq!(flow.parameters["epochs"].ty, ParamType::Int);
    assert!(flow.steps["shard"].outputs.contains("shards"));
    insta::assert_snapshot!(
        "normalized_full",
        serde_json::to_string_pretty(&flow).unwrap()
    );
    // The normalized form reads back unchanged: the pod side reads it from the manifest.
    let back: Flow = serde_json::from_str(&flow.canonical_json()).unwrap();
    assert_eq!(back, flow);
}

#[test]
fn parameters_parse_command_line_text() {
    assert_eq!(
        ParamType::Float.parse_text("0.5"),
        Ok(serde_json::json!(0.5))
    );
    assert_eq!(ParamType::Int.parse_text("7"), Ok(serde_json::json!(7)));
    assert_eq!(
        ParamType::Bool.parse_text("true"),
        Ok(serde_json::json!(true))
    );
    assert_eq!(
        ParamType::Json.parse_text("[1]"),
        Ok(serde_json::json!([1]))
    );
    assert!(ParamType::Int.parse_text("x").is_err());
}

macro_rules! error_case {
    ($name:ident, $text:expr) => {
        #[test]
        fn $name() {
            insta::assert_snapshot!(stringify!($name), errors($text));
        }
    };
}

error_case!(
    yaml_syntax,
    "name: x\nsteps:\n  start: {run: a, next: end\n  end: {run: b}\n"
);
error_case!(
    unknown_field,
    "name: x\nsteps:\n  start: {run: a, nxt: end}\n  end: {run: b}\n"
);
error_case!(missing_steps, "name: x\n");
error_case!(
    missing_name,
    "steps:\n  start: {run: a, next: end}\n  end: {run: b}\n"
);
error_case!(
    bad_flow_name,
    "name: 'my flow'\nsteps:\n  start: {run: a, next: end}\n  end: {run: b}\n"
);
error_case!(
    unknown_next_step,
    "name: x\nsteps:\n  start: {run: a, next: evl}\n  eval: {run: b, next: end}\n  end: {run: c}\n"
);
error_case!(
    missing_start_and_end,
    "name: x\nsteps:\n  first: {run: a}\n"
);
error_case!(
    no_run,
    "name: x\nsteps:\n  start: {next: end}\n  end: {run: b}\n"
);
error_case!(
    no_next,
    "name: x\nsteps:\n  start: {run: a}\n  end: {run: b}\n"
);
error_case!(
    end_with_next,
    "name: x\nsteps:\n  start: {run: a, next: end}\n  end: {run: b, next: start}\n"
);
// The switch's case leads forward; the edge that closes the cycle is a plain `next`.
error_case!(
    cycle,
    "name: x\nsteps:\n  start: {run: a, next: a}\n  a: {run: a, switch: {on: v, cases: {go: b, done: end}}}\n  b: {run: b, next: a}\n  end: {run: c}\n"
);
error_case!(
    recursive_switch_into_a_join_or_out_of_a_foreach,
    "name: x\nsteps:\n  start: {run: a, foreach: items, next: body}\n  body: {run: b, switch: {on: v, cases: {again: start2, done: j}}}\n  start2: {run: b, next: j2}\n  j2: {run: b, join: true, switch: {on: v, cases: {again: j2, on: end}}}\n  j: {run: c, join: true, next: end}\n  end: {run: c}\n"
);
error_case!(
    recursive_switch_leaving_its_foreach,
    "name: x\nsteps:\n  start: {run: a, next: fan}\n  fan: {run: a, foreach: items, next: body}\n  body: {run: b, switch: {on: v, cases: {again: fan, done: j}}}\n  j: {run: c, join: true, next: end}\n  end: {run: c}\n"
);
error_case!(
    bad_hooks,
    "name: x\non_failure: notfy\non_exit: start\nsteps:\n  start: {run: a, next: end}\n  notify: {run: n}\n  end: {run: c}\n"
);
error_case!(
    hooks_inside_the_graph,
    "name: x\non_failure: notify\non_exit: notify\nsteps:\n  start: {run: a, next: notify}\n  notify: {run: n, join: true, next: end}\n  end: {run: c}\n"
);

#[test]
fn exit_hooks_are_steps_outside_the_graph() {
    let flow = Flow::parse(
        "name: x\non_failure: alert\non_exit: cleanup\nsteps:\n  start: {run: a, next: end}\n  end: {run: c}\n  alert: {run: n}\n  cleanup: {run: m}\n",
        Path::new("flow.yaml"),
    )
    .unwrap();
    assert_eq!(
        flow.hooks(),
        [
            (HookKind::OnFailure, "alert"),
            (HookKind::OnExit, "cleanup")
        ]
    );
    assert_eq!(flow.hook_kind("cleanup"), Some(HookKind::OnExit));
    assert_eq!(flow.hook_kind("end"), None);
    flow.check().unwrap();
    let back: Flow = serde_json::from_str(&flow.canonical_json()).unwrap();
    assert_eq!(back, flow);
    // A flow without hooks serializes as before (its package id does not change).
    let plain = Flow::parse(
        "name: x\nsteps:\n  start: {run: a, next: end}\n  end: {run: c}\n",
        Path::new("flow.yaml"),
    )
    .unwrap();
    assert!(!plain.canonical_json().contains("on_exit"));
    assert!(!plain.canonical_json().contains("max_visits"));
}

#[test]
fn recursive_switches_are_valid() {
    // To its own step, and to an earlier step of its chain, inside a foreach body.
    let flow = Flow::parse(
        "name: x\nmax_visits: 7\nsteps:\n  start: {run: a, next: s}\n  s: {run: b, switch: {on: v, cases: {again: s, done: fan}}}\n  fan: {run: a, foreach: items, next: a}\n  a: {run: a, next: b}\n  b: {run: b, switch: {on: v, cases: {back: a, 'on': j}}}\n  j: {run: j, join: true, next: end}\n  end: {run: c}\n",
        Path::new("flow.yaml"),
    )
    .unwrap();
    assert_eq!(
        flow.recursive_cases(),
        [("s", "again", "s"), ("b", "back", "a")]
    );
    assert_eq!(flow.visit_limit(), 7);
    flow.check().unwrap();
    let acyclic = Flow::parse(FULL, Path::new("flow.yaml")).unwrap();
    assert!(acyclic.recursive_cases().is_empty());
    assert_eq!(acyclic.visit_limit(), DEFAULT_MAX_VISITS);
    assert_eq!(
        errors("name: x\nmax_visits: 0\nsteps:\n  start: {run: a, next: end}\n  end: {run: c}\n"),
        "flow.yaml:2:13: `max_visits` must be at least 1"
    );
}
error_case!(
    unreachable,
    "name: x\nsteps:\n  start: {run: a, next: end}\n  orphan: {run: b, next: end}\n  end: {run: c}\n"
);
error_case!(
    join_joins_nothing,
    "name: x\nsteps:\n  start: {run: a, next: j}\n  j: {run: b, join: true, next: end}\n  end: {run: c}\n"
);
error_case!(
    split_without_join,
    "name: x\nsteps:\n  start: {run: a, next: [a, b]}\n  a: {run: a, next: end}\n  b: {run: b, next: end}\n  end: {run: c}\n"
);
error_case!(
    branches_meet_without_join,
    "name: x\nsteps:\n  start: {run: a, next: [a, b]}\n  a: {run: a, next: m}\n  b: {run: b, next: m}\n  m: {run: m, next: j}\n  j: {run: j, join: true, next: end}\n  end: {run: c}\n"
);
error_case!(
    unresolved_artifact_collision,
    "name: x\nsteps:\n  start: {run: a, next: [a, b]}\n  a: {run: a, next: j, outputs: [model]}\n  b: {run: b, next: j, outputs: [model, extra]}\n  j: {run: j, join: true, next: end}\n  end: {run: c}\n"
);
error_case!(
    bad_step_name,
    "name: x\nsteps:\n  start: {run: a, next: 'bad.name'}\n  'bad.name': {run: b, next: end}\n  end: {run: c}\n"
);
error_case!(
    foreach_shapes,
    "name: x\nsteps:\n  start: {run: a, foreach: items, next: [a, b]}\n  a: {run: a, foreach: items}\n  b: {run: b, next: end, switch: {on: v, cases: {x: end}}}\n  end: {run: c}\n"
);
error_case!(
    bad_parameters,
    "name: x\nparameters:\n  alpha: {type: float, default: fast}\n  n: {type: integer, default: 1.5}\n  mode: {type: enum}\n  bad-name: 1\n  x: {default: 1, hlep: typo}\nsteps:\n  start: {run: a, next: end}\n  end: {run: c}\n"
);
error_case!(
    bad_settings,
    "name: x\ndefaults:\n  run: nope\n  resources: {cpu: two, memory: 2GB}\n  timeout: soon\n  retry: {times: -1, delay: 5x}\nsteps:\n  start:\n    run: a\n    next: end\n    secrets: {TOKEN: just-a-name}\n    env: {FLOWPACK_RUN_ID: x, GOOD: 1}\n    tolerations: [{operator: Maybe}]\n  end: {run: c}\n"
);
error_case!(
    bad_pull_policy,
    "name: x\nsteps:\n  start: {run: a, next: end}\n  end: {run: c, image_pull_policy: Sometimes}\n"
);
error_case!(
    bad_env,
    "name: x\nenv: {requirements: r.txt, path: site}\nsteps:\n  start: {run: a, next: end}\n  end: {run: c}\n"
);
error_case!(
    join_of_two_splits,
    "name: x\nsteps:\n  start: {run: a, next: [a, b]}\n  a: {run: a, next: [c, d]}\n  b: {run: b, next: j}\n  c: {run: c, next: j}\n  d: {run: d, next: j}\n  j: {run: j, join: true, next: end}\n  end: {run: c}\n"
);
error_case!(
    plain_cycle,
    "name: x\nsteps:\n  start: {run: a, next: a}\n  a: {run: a, next: [b, end]}\n  b: {run: b, next: a}\n  end: {run: c}\n"
);
error_case!(
    duplicate_keys,
    "name: x\nparameters:\n  alpha: 1\n  alpha: 2\nsteps:\n  train: {run: a, next: end}\n  start: {run: a, next: train}\n  train:\n    run: b\n    next: end\n    env: {A: 1, B: 2, A: 3}\n    resources: {cpu: 1, cpu: 2}\n  end: {run: c, run: d}\n"
);
error_case!(
    duplicate_keys_in_values,
    "name: x\nparameters:\n  grid: {type: json, default: [{a: 1, \"a\": 2}]}\ndefaults:\n  secrets: {T: s/k, T: s/j}\n  node_selector: {pool: a, pool: b}\nenv: {path: a, path: b}\nsteps:\n  start: {run: a, next: end}\n  end: {run: c}\n"
);
error_case!(
    duplicate_key_through_an_alias,
    "name: x\nsteps:\n  &s start: {run: a, next: end}\n  end: {run: c}\n  *s : {run: b, next: end}\n"
);
error_case!(
    billion_laughs,
    "name: x\nparameters:\n  p:\n    default:\n      a0: &a0 [lol]\n      a1: &a1 [*a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0]\n      a2: &a2 [*a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1]\n      a3: &a3 [*a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2]\n      a4: &a4 [*a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3]\n      a5: &a5 [*a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4]\n      a6: &a6 [*a5, *a5, *a5, *a5, *a5, *a5, *a5, *a5, *a5, *a5]\nsteps:\n  start: {run: a, next: end}\n  end: {run: c}\n"
);
error_case!(
    recursive_alias,
    "name: x\nparameters:\n  p: &p {default: [*p]}\nsteps:\n  start: {run: a, next: end}\n  end: {run: c}\n"
);
error_case!(
    two_documents,
    "name: x\nsteps:\n  start: {run: a, next: end}\n  end: {run: c}\n---\nname: y\n"
);

#[test]
fn nesting_is_bounded() {
    let deep = format!(
        "name: x\nparameters:\n  p:\n    default: {}{}\nsteps:\n  start: {{run: a, next: end}}\n  end: {{run: c}}\n",
        "[".repeat(200),
        "]".repeat(200)
    );
    insta::assert_snapshot!("nesting_is_bounded", errors(&deep));
    // At the limit, the flow is fine (and its default nests within serde_json's limit too,
    // inside a manifest).
    let depth = super::locate::MAX_DEPTH - 3;
    let ok = format!(
        "name: x\nparameters:\n  p:\n    default: {}{}\nsteps:\n  start: {{run: a, next: end}}\n  end: {{run: c}}\n",
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let flow = Flow::parse(&ok, Path::new("flow.yaml")).unwrap();
    let manifest = format!("{{\"flow\": {}}}", flow.canonical_json());
    serde_json::from_str::<serde_json::Value>(&manifest).unwrap();
}

#[test]
fn aliases_count_as_what_they_stand_for() {
    // An anchor of 45,000 items, used twice: 135,000 nodes from 180 KB.
    let items = vec!["1"; 45_000].join(",");
    let text = format!(
        "name: x\nparameters:\n  a: {{type: json, default: &a [{items}]}}\n  b: {{type: json, default: [*a, *a]}}\nsteps:\n  start: {{run: a, next: end}}\n  end: {{run: c}}\n"
    );
    assert_eq!(
        errors(&text),
        "flow.yaml:4:33: this alias stands for 45001 nodes, which takes the document past 100000 nodes (keys, values and list items, an alias counting as all it stands for): a flow file describes a flow; keep data in files the steps read"
    );
    // Used once, it is fine.
    let text = text.replace("[*a, *a]", "[*a]");
    Flow::parse(&text, Path::new("flow.yaml")).unwrap();
}

/// Random graphs (linear steps, splits, joins, foreaches, switches, cycles, self-loops,
/// missing targets, steps defined twice) as flow text: parsing and validating never
/// panics, every error has a position, and a flow that passes reads back unchanged and
/// passes the manifest-side check too. The same graphs built as [`Flow`] values, as a
/// manifest could hold them (duplicate split targets and all), never make
/// [`Flow::check`] panic either.
mod random_graphs {
    use proptest::collection::vec;
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;

    use super::*;

    /// Step names; the last one is never defined.
    const NAMES: [&str; 8] = ["start", "end", "a", "b", "c", "d", "e", "missing"];

    #[derive(Clone, Debug)]
    enum Edge {
        End,
        Linear(usize),
        Split(Vec<usize>),
        Foreach(usize),
        Switch(Vec<usize>),
    }

    #[derive(Clone, Debug)]
    struct GraphStep {
        name: usize,
        edge: Edge,
        join: bool,
        outputs: Vec<usize>,
    }

    /// A target: mostly a step that may exist, now and then one that never does.
    fn target() -> impl Strategy<Value = usize> {
        prop_oneof![15 => 1..NAMES.len() - 1, 1 => Just(NAMES.len() - 1)]
    }

    fn edge() -> impl Strategy<Value = Edge> {
        prop_oneof![
            1 => Just(Edge::End),
            4 => target().prop_map(Edge::Linear),
            2 => vec(target(), 1..4).prop_map(Edge::Split),
            1 => target().prop_map(Edge::Foreach),
            2 => vec(target(), 1..4).prop_map(Edge::Switch),
        ]
    }

    /// `start`, `end` (which mostly ends), some of the other names, and now and then one
    /// step defined twice.
    fn steps() -> impl Strategy<Value = Vec<GraphStep>> {
        let step = (edge(), prop::bool::weighted(0.2), vec(0..3usize, 0..3));
        (
            vec((any::<bool>(), step), NAMES.len() - 1),
            prop::bool::weighted(0.9),
            prop::option::weighted(0.05, 0..NAMES.len() - 1),
        )
            .prop_map(|(all, end_ends, twice)| {
                let present: Vec<bool> =
                    all.iter().enumerate().map(|(i, s)| i < 2 || s.0).collect();
                // A target that is not defined becomes 'end', unless it is the missing one.
                let fix = |t: usize| {
                    if t < present.len() && !present[t] {
                        1
                    } else {
                        t
                    }
                };
                let mut out: Vec<GraphStep> = all
                    .into_iter()
                    .enumerate()
                    .filter(|(i, _)| present[*i])
                    .map(|(name, (_, (edge, join, outputs)))| GraphStep {
                        edge: match edge {
                            _ if name == 1 && end_ends => Edge::End,
                            Edge::End => Edge::End,
                            Edge::Linear(t) => Edge::Linear(fix(t)),
                            Edge::Foreach(t) => Edge::Foreach(fix(t)),
                            Edge::Split(ts) => Edge::Split(ts.into_iter().map(fix).collect()),
                            Edge::Switch(ts) => Edge::Switch(ts.into_iter().map(fix).collect()),
                        },
                        join: join && name != 0,
                        name,
                        outputs,
                    })
                    .collect();
                if let Some(again) = twice.and_then(|t| out.iter().find(|s| s.name == t).cloned()) {
                    out.push(again);
                }
                out
            })
    }

    fn text(steps: &[GraphStep]) -> String {
        let mut out = String::from("name: g\nsteps:\n");
        for s in steps {
            let list = |v: &[usize]| v.iter().map(|t| NAMES[*t]).collect::<Vec<_>>().join(", ");
            let edge = match &s.edge {
                Edge::End => String::new(),
                Edge::Linear(t) => format!(", next: {}", NAMES[*t]),
                Edge::Split(ts) => format!(", next: [{}]", list(ts)),
                Edge::Foreach(t) => format!(", foreach: items, next: {}", NAMES[*t]),
                Edge::Switch(ts) => {
                    let cases: Vec<String> = ts
                        .iter()
                        .enumerate()
                        .map(|(i, t)| format!("c{i}: {}", NAMES[*t]))
                        .collect();
                    format!(", switch: {{on: v, cases: {{{}}}}}", cases.join(", "))
                }
            };
            let outputs: Vec<String> = s.outputs.iter().map(|o| format!("o{o}")).collect();
            out.push_str(&format!(
                "  {}: {{run: x{edge}, join: {}, outputs: [{}]}}\n",
                NAMES[s.name],
                s.join,
                outputs.join(", ")
            ));
        }
        out
    }

    fn flow(steps: &[GraphStep]) -> Flow {
        let mut flow = Flow::parse(
            "name: g\nsteps:\n  start: {run: x, next: end}\n  end: {run: x}\n",
            Path::new("flow.yaml"),
        )
        .unwrap();
        let base = flow.steps["end"].clone();
        flow.steps.clear();
        for s in steps {
            let name = |t: &usize| NAMES[*t].to_string();
            let next = match &s.edge {
                Edge::End => Transition::End,
                Edge::Linear(t) => Transition::Linear(name(t)),
                Edge::Split(ts) => Transition::Split(ts.iter().map(name).collect()),
                Edge::Foreach(t) => Transition::Foreach {
                    over: "items".into(),
                    body: name(t),
                },
                Edge::Switch(ts) => Transition::Switch {
                    on: "v".into(),
                    cases: ts
                        .iter()
                        .enumerate()
                        .map(|(i, t)| (format!("c{i}"), name(t)))
                        .collect(),
                },
            };
            let step = Step {
                next,
                join: s.join,
                outputs: s.outputs.iter().map(|o| format!("o{o}")).collect(),
                ..base.clone()
            };
            flow.steps.insert(NAMES[s.name].to_string(), step);
        }
        flow
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn parsing_and_validating_random_graphs_never_panics(steps in steps()) {
            let text = text(&steps);
            match Flow::parse(&text, Path::new("flow.yaml")) {
                Ok(flow) => {
                    prop_assert!(flow.check().is_ok(), "{}", text);
                    let back: Flow = serde_json::from_str(&flow.canonical_json()).unwrap();
                    prop_assert_eq!(&back, &flow);
                    prop_assert_eq!(flow.order().len(), flow.steps.len());
                }
                Err(errors) => {
                    prop_assert!(!errors.0.is_empty());
                    for e in &errors.0 {
                        prop_assert!(e.pos.line >= 1 && e.pos.col >= 1, "{}\n{}", e, text);
                    }
                }
            }
        }

        #[test]
        fn checking_random_graphs_without_positions_never_panics(steps in steps()) {
            let _ = flow(&steps).check();
        }
    }

    #[test]
    fn the_generator_reaches_valid_flows_and_every_graph_error() {
        // A guard on the generator itself: it must produce valid flows and cycles too,
        // or the properties above test little.
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let (mut valid, mut cycles, mut recursive) = (0, 0, 0);
        for _ in 0..3000 {
            let steps = steps().new_tree(&mut runner).unwrap().current();
            match Flow::parse(&text(&steps), Path::new("flow.yaml")) {
                Ok(flow) => {
                    valid += 1;
                    recursive += usize::from(!flow.recursive_cases().is_empty());
                }
                Err(e) => {
                    let e = e.to_string();
                    cycles += usize::from(e.contains("cycle"));
                }
            }
        }
        assert!(
            valid > 10 && cycles > 10 && recursive > 3,
            "{valid} {cycles} {recursive}"
        );
    }
}

/// A flow read back from a manifest was never parsed from YAML: [`Flow::check`] holds its
/// names to the flow file's rules, so none can become a path or a key that leaves its
/// folder.
#[test]
fn a_manifest_flow_with_names_a_file_would_not_allow_is_refused() {
    let flow = Flow::parse(FULL, Path::new("flow.yaml")).unwrap();
    flow.check().unwrap();
    type Mutation = fn(&mut Flow);
    let cases: [(Mutation, &str); 6] = [
        (|f| f.name = "../other".into(), "flow name '../other'"),
        (
            |f| {
                let s = f.steps.remove("end").unwrap();
                f.steps.insert("../end".into(), s);
            },
            "step name '../end'",
        ),
        (
            |f| {
                let s = f.steps.get_mut("start").unwrap();
                s.next = Transition::Foreach {
                    over: "../../etc/passwd".into(),
                    body: "train_a".into(),
                };
            },
            "artifact name '../../etc/passwd'",
        ),
        (
            |f| {
                let s = f.steps.get_mut("pick").unwrap();
                s.settings.inputs = Some(["/abs".to_string()].into());
            },
            "artifact name '/abs'",
        ),
        (
            |f| {
                let s = f.steps.get_mut("pick").unwrap();
                s.settings.env.insert("FLOWPACK_STORE".into(), "x".into());
            },
            "environment variable name 'FLOWPACK_STORE'",
        ),
        (
            |f| {
                let p = f.parameters.remove("alpha").unwrap();
                f.parameters.insert("a=b".into(), p);
            },
            "parameter name 'a=b'",
        ),
    ];
    for (mutate, expected) in cases {
        let mut f = flow.clone();
        mutate(&mut f);
        let err = f.check().unwrap_err().to_string();
        assert!(err.contains(expected), "{expected}: {err}");
    }
}

#[test]
fn inline_packages_and_a_schedule_are_carried_and_left_out_when_unset() {
    let text = "name: x\nenv:\n  packages: [scikit-learn==1.5.2, 'numpy>=2']\n  python: '3.12'\nschedule: {cron: ' 0  0 * * mon', timezone: Europe/Berlin}\nsteps:\n  start: {run: a, next: end}\n  end: {run: c}\n";
    let flow = Flow::parse(text, Path::new("flow.yaml")).unwrap();
    assert_eq!(
        flow.env,
        Some(EnvSpec::Packages {
            packages: vec!["scikit-learn==1.5.2".into(), "numpy>=2".into()],
            python: "3.12".into(),
            platform: DEFAULT_PLATFORM.into(),
        })
    );
    assert_eq!(
        flow.schedule,
        Some(Schedule {
            cron: "0 0 * * mon".into(),
            timezone: "Europe/Berlin".into(),
        })
    );
    let json = flow.canonical_json();
    assert!(json.contains(r#""schedule":{"cron":"0 0 * * mon","timezone":"Europe/Berlin"}"#));
    assert_eq!(serde_json::from_str::<Flow>(&json).unwrap(), flow);
    // The timezone defaults to UTC.
    let daily = "name: x\nschedule: {cron: 0 0 * * *}\nsteps:\n  start: {run: a, next: end}\n  end: {run: c}\n";
    let flow = Flow::parse(daily, Path::new("flow.yaml")).unwrap();
    assert_eq!(flow.schedule.unwrap().timezone, "UTC");
    // Unset, neither appears: manifests of flows without them are unchanged.
    let plain = Flow::parse(crate::flow::tests::PLAIN, Path::new("flow.yaml")).unwrap();
    let json = plain.canonical_json();
    assert!(
        !json.contains("schedule") && !json.contains("packages"),
        "{json}"
    );
}

const PLAIN: &str = "name: x\nsteps:\n  start: {run: a, next: end}\n  end: {run: c}\n";

error_case!(
    bad_packages_and_schedule,
    "name: x\nenv: {packages: ['numpy==2', '', \"a\\nb\"], python: three}\nschedule: {cron: '0 24 * * *', timezone: 'Mars Base'}\nsteps:\n  start: {run: a, next: end}\n  end: {run: c}\n"
);
error_case!(
    bad_env_sources,
    "name: x\nenv: {packages: [numpy], requirements: r.txt}\nschedule: {cron: '0 0 * *'}\nsteps:\n  start: {run: a, next: end}\n  end: {run: c}\n"
);
error_case!(
    empty_packages_and_bad_timezone,
    "name: x\nenv: {packages: []}\nschedule: {cron: '*/5 * * * *', timezone: 'Europe/'}\nsteps:\n  start: {run: a, next: end}\n  end: {run: c}\n"
);

#[test]
fn a_steps_python_env_merges_over_the_flows_packages_as_pypi_over_pypi_base() {
    let text = "name: x
env: {packages: [numpy==2.1.0, Scikit_Learn==1.5.0, --no-index], python: '3.11'}
defaults:
  python_env: {packages: ['pandas>=2']}
steps:
  start: {run: a, next: train, python_env: {packages: []}}
  train:
    run: b
    next: end
    python_env: {packages: ['scikit-learn==1.6.1', '--no-index', torch], python: '3.12', platform: aarch64-manylinux_2_28}
  end: {run: c}
";
    let flow = Flow::parse(text, Path::new("flow.yaml")).unwrap();
    // defaults add pandas to every step; the flow's python and platform stay.
    assert_eq!(
        flow.steps["start"].settings.python_env,
        Some(PythonEnv {
            packages: vec![
                "numpy==2.1.0".into(),
                "Scikit_Learn==1.5.0".into(),
                "--no-index".into(),
                "pandas>=2".into()
            ],
            python: "3.11".into(),
            platform: DEFAULT_PLATFORM.into(),
        })
    );
    // The step's scikit-learn replaces the base's in its place (names compare as PyPI
    // normalizes them), an option line is kept once, new ones come last; its python and
    // platform win.
    assert_eq!(
        flow.steps["train"].settings.python_env,
        Some(PythonEnv {
            packages: vec![
                "numpy==2.1.0".into(),
                "scikit-learn==1.6.1".into(),
                "--no-index".into(),
                "pandas>=2".into(),
                "torch".into()
            ],
            python: "3.12".into(),
            platform: "aarch64-manylinux_2_28".into(),
        })
    );
    let json = flow.canonical_json();
    assert_eq!(serde_json::from_str::<Flow>(&json).unwrap(), flow);
    flow.check().unwrap();

    // Without a base, a step's list stands alone, with the default python; steps without
    // `python_env` have none, so flows without it normalize as before.
    let alone = "name: x\nsteps:\n  start: {run: a, next: end, python_env: {packages: [six==1.16.0]}}\n  end: {run: c}\n";
    let flow = Flow::parse(alone, Path::new("flow.yaml")).unwrap();
    let env = flow.steps["start"].settings.python_env.clone().unwrap();
    assert_eq!(env.packages, ["six==1.16.0"]);
    assert_eq!(env.python, DEFAULT_PYTHON);
    assert_eq!(flow.steps["end"].settings.python_env, None);
    let plain = Flow::parse(PLAIN, Path::new("flow.yaml")).unwrap();
    assert!(!plain.canonical_json().contains("python_env"));

    // A requirements file cannot be merged by name: its python is kept, its lines are not.
    let req = "name: x\nenv: {requirements: r.txt, python: '3.10'}\nsteps:\n  start: {run: a, next: end, python_env: {packages: [six]}}\n  end: {run: c}\n";
    let flow = Flow::parse(req, Path::new("flow.yaml")).unwrap();
    let env = flow.steps["start"].settings.python_env.clone().unwrap();
    assert_eq!(
        (env.packages, env.python),
        (vec!["six".into()], "3.10".into())
    );

    // A manifest's step environment is checked like the flow file's.
    let mut bad = flow.clone();
    bad.steps.get_mut("start").unwrap().settings.python_env = Some(PythonEnv {
        packages: vec!["six\n--index-url http://evil".into()],
        python: "3.11".into(),
        platform: DEFAULT_PLATFORM.into(),
    });
    let err = bad.check().unwrap_err().to_string();
    assert!(err.contains("step 'start': `python_env`"), "{err}");
}

#[test]
fn requirement_lines_merge_by_project_name() {
    let base: Vec<String> = ["six==1.16.0", "idna>=3", "./local.whl", "git+https://x/y"]
        .map(String::from)
        .to_vec();
    let over: Vec<String> = [
        "SIX [extra] ==1.17.0",
        "IDNA",
        "./local.whl",
        "git+https://x/z",
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(
        merge_requirements(base, &over),
        [
            "SIX [extra] ==1.17.0",
            "IDNA",
            "./local.whl",
            "git+https://x/y",
            "git+https://x/z"
        ]
    );
}

error_case!(
    bad_python_env,
    "name: x\nenv: {path: site}\ndefaults:\n  python_env: {python: 3}\nsteps:\n  start: {run: a, next: end, python_env: {packages: ['', six], platform: ''}}\n  end: {run: c, python_env: {}}\n"
);
error_case!(
    python_env_without_packages,
    "name: x\nsteps:\n  start: {run: a, next: end, python_env: {python: '3.12'}}\n  end: {run: c}\n"
);
