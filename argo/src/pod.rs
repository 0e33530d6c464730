//! A step's pod: its container (image, command, env, secrets, resources) and the
//! template-level Kubernetes settings (retries, deadline, node selector, tolerations,
//! service account) of its container template.

use flowpack_core::flow::{PullPolicy, Step};
use serde_json::{Map, Value, json};

/// The GPU resource when the flow names no `gpu_type`.
pub const DEFAULT_GPU: &str = "nvidia.com/gpu";

/// The container template of `step` (without name, inputs, outputs and metadata) running
/// `command step ARGS`.
pub(crate) fn template(step: &Step, command: &str, args: Vec<String>) -> Value {
    let s = &step.settings;
    let mut container = json!({
        "image": s.image,
        "command": [command, "step"],
        "args": args,
    });
    if let Some(p) = s.image_pull_policy {
        container["imagePullPolicy"] = json!(match p {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        });
    }
    let mut env: Vec<Value> = s
        .env
        .iter()
        .map(|(k, v)| json!({"name": k, "value": v}))
        .collect();
    env.extend(s.secrets.iter().map(|(var, r)| {
        json!({"name": var, "valueFrom": {"secretKeyRef": {"name": r.secret, "key": r.key}}})
    }));
    if !env.is_empty() {
        container["env"] = json!(env);
    }
    if let Some(r) = resources(step) {
        container["resources"] = r;
    }
    let mut t = json!({"container": container});
    if s.retry.times > 0 {
        t["retryStrategy"] = json!({
            "limit": s.retry.times.to_string(),
            "retryPolicy": "Always",
            "backoff": {
                "duration": format!("{}s", s.retry.delay_seconds),
                "factor": 2,
                "cap": "1h",
            },
        });
    }
    if let Some(secs) = s.timeout_seconds {
        t["activeDeadlineSeconds"] = json!(secs);
    }
    if !s.node_selector.is_empty() {
        t["nodeSelector"] = json!(s.node_selector);
    }
    if !s.tolerations.is_empty() {
        let list: Vec<Value> = s
            .tolerations
            .iter()
            .map(|t| {
                let mut v = Map::new();
                v.insert("operator".into(), json!(t.operator));
                for (k, x) in [("key", &t.key), ("value", &t.value), ("effect", &t.effect)] {
                    if let Some(x) = x {
                        v.insert(k.into(), json!(x));
                    }
                }
                if let Some(x) = t.toleration_seconds {
                    v.insert("tolerationSeconds".into(), json!(x));
                }
                Value::Object(v)
            })
            .collect();
        t["tolerations"] = json!(list);
    }
    if let Some(sa) = &s.service_account {
        t["serviceAccountName"] = json!(sa);
    }
    t
}

/// Requests and limits (equal: the step gets what it asks for and no more): CPU, memory,
/// ephemeral storage (`disk`), and GPUs under their resource name as a limit only (an
/// extended resource's request defaults to its limit).
fn resources(step: &Step) -> Option<Value> {
    let r = &step.settings.resources;
    let mut requests = Map::new();
    for (k, v) in [
        ("cpu", &r.cpu),
        ("memory", &r.memory),
        ("ephemeral-storage", &r.disk),
    ] {
        if let Some(v) = v {
            requests.insert(k.into(), json!(v));
        }
    }
    let mut limits = requests.clone();
    if let Some(n) = r.gpu {
        let name = r.gpu_type.as_deref().unwrap_or(DEFAULT_GPU);
        limits.insert(name.into(), json!(n.to_string()));
    }
    if limits.is_empty() {
        return None;
    }
    let mut out = json!({"limits": limits});
    if !requests.is_empty() {
        out["requests"] = Value::Object(requests);
    }
    Some(out)
}
