"""Runs a WorkflowTemplate that `flowpack compile --target argo` wrote, on this machine.

A test oracle for the executor contract, not an Argo controller: it runs each container's
command as Argo would substitute it (`{{workflow.uid}}`, `{{workflow.parameters.X}}`,
`{{inputs.parameters.X}}`, `{{item}}`, `{{tasks.T.outputs.parameters.X}}`,
`{{workflow.status}}`), on the host, one task at a time in an order Argo's DAG semantics
allow: a task runs when every task in its `depends` succeeded or was skipped; `when` false
skips it; `withParam` runs its template once per item of the JSON list (an empty list
skips it); a failed task stops what depends on it and fails the workflow; `retryStrategy`
runs a failed container again up to its limit; `activeDeadlineSeconds` kills it;
`onExit` runs after the entry DAG with `workflow.status` set. Output parameters are read
from their `valueFrom.path` after the container exits.

It reads only the subset flowpack emits and stops with an error on any field or variable
it does not implement, so it cannot silently run something other than what was written.
Usage: argo_local.py FILE [-p NAME=VALUE]... ; prints the run id and the status last.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import uuid

import yaml

SPEC_KEYS = {
    "entrypoint",
    "arguments",
    "parallelism",
    "workflowMetadata",
    "templates",
    "onExit",
}
DAG_TASK_KEYS = {"name", "template", "arguments", "depends", "when", "withParam"}
CONTAINER_TEMPLATE_KEYS = {
    "name",
    "inputs",
    "outputs",
    "metadata",
    "container",
    "retryStrategy",
    "activeDeadlineSeconds",
    "nodeSelector",
    "tolerations",
    "serviceAccountName",
}
CONTAINER_KEYS = {"image", "command", "args", "env", "resources", "imagePullPolicy"}
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
TAG = re.compile(r"\{\{([^{}]*)\}\}")


class Unsupported(Exception):
    """The manifest uses something this runner does not implement."""


def substitute(text: str, scope: dict[str, str]) -> str:
    """Replaces every `{{name}}` with its value in scope; an unknown one is an error."""

    def one(m: re.Match[str]) -> str:
        key = m.group(1).strip()
        if key not in scope:
            raise Unsupported(f"unresolved variable {{{{{key}}}}} in {text!r}")
        return scope[key]

    out = TAG.sub(one, text)
    if "{{" in out:
        raise Unsupported(f"unterminated or nested variable in {text!r}")
    return out


def check_keys(obj: dict, allowed: set[str], what: str) -> None:
    extra = set(obj) - allowed
    if extra:
        raise Unsupported(f"{what} has fields this runner does not implement: {sorted(extra)}")


class Runner:
    def __init__(self, spec: dict, params: dict[str, str]) -> None:
        check_keys(spec, SPEC_KEYS, "spec")
        self.templates = {t["name"]: t for t in spec["templates"]}
        self.spec = spec
        self.uid = str(uuid.uuid4())
        self.globals = {"workflow.uid": self.uid}
        for p in spec.get("arguments", {}).get("parameters", []):
            name = p["name"]
            if name in params:
                value = params.pop(name)
            elif "value" in p:
                value = p["value"]
            else:
                raise SystemExit(f"parameter {name} has no value: pass -p {name}=VALUE")
            if "enum" in p and value not in p["enum"]:
                raise SystemExit(f"parameter {name}: {value!r} is not one of {p['enum']}")
            self.globals[f"workflow.parameters.{name}"] = value
        if params:
            raise SystemExit(f"no such workflow parameters: {sorted(params)}")

    def run(self) -> str:
        ok = self.template(self.spec["entrypoint"], {})[0]
        status = "Succeeded" if ok else "Failed"
        if "onExit" in self.spec:
            self.globals["workflow.status"] = status
            self.template(self.spec["onExit"], {})
        return status

    def template(self, name: str, inputs: dict[str, str]) -> tuple[bool, dict[str, str]]:
        t = self.templates[name]
        declared = [p["name"] for p in t.get("inputs", {}).get("parameters", [])]
        if sorted(declared) != sorted(inputs):
            raise Unsupported(f"template {name} takes {declared}, given {sorted(inputs)}")
        scope = dict(self.globals)
        scope.update({f"inputs.parameters.{k}": v for k, v in inputs.items()})
        if "dag" in t:
            check_keys(t, {"name", "inputs", "dag"}, f"DAG template {name}")
            return self.dag(t["dag"]["tasks"], scope), {}
        check_keys(t, CONTAINER_TEMPLATE_KEYS, f"template {name}")
        return self.container(t, scope)

    def dag(self, tasks: list[dict], scope: dict[str, str]) -> bool:
        state: dict[str, str] = {}
        outputs: dict[str, dict[str, str]] = {}
        pending = list(tasks)
        ok = True
        while pending:
            if not ok:  # failFast: a DAG starts nothing new once a task failed
                state.update({t["name"]: "Omitted" for t in pending})
                break
            ready = None
            for task in pending:
                check_keys(task, DAG_TASK_KEYS, f"task {task['name']}")
                deps = [d for d in task.get("depends", "").split(" && ") if d]
                for d in deps:
                    if not re.fullmatch(r"[A-Za-z0-9-]+", d):
                        raise Unsupported(f"depends {task['depends']!r}")
                if all(state.get(d) in ("Succeeded", "Skipped") for d in deps):
                    ready = task
                    break
                if any(state.get(d) in ("Failed", "Omitted") for d in deps):
                    state[task["name"]] = "Omitted"
                    pending.remove(task)
                    ready = False
                    break
            if ready is None:
                raise Unsupported(f"no task can run: {[t['name'] for t in pending]}")
            if ready is False:
                continue
            pending.remove(ready)
            local = dict(scope)
            for t, outs in outputs.items():
                local.update({f"tasks.{t}.outputs.parameters.{k}": v for k, v in outs.items()})
            state[ready["name"]], outputs[ready["name"]] = self.task(ready, local)
            ok = ok and state[ready["name"]] != "Failed"
        return ok and all(s != "Omitted" for s in state.values())

    def task(self, task: dict, scope: dict[str, str]) -> tuple[str, dict[str, str]]:
        if "when" in task:
            m = re.fullmatch(r"\s*(\S+)\s*(==|!=)\s*(\S+)\s*", substitute(task["when"], scope))
            if not m:
                raise Unsupported(f"when {task['when']!r}")
            equal = m.group(1) == m.group(3)
            if equal != (m.group(2) == "=="):
                return "Skipped", {}
        args = task.get("arguments", {}).get("parameters", [])
        items = [None]
        if "withParam" in task:
            items = json.loads(substitute(task["withParam"], scope))
            if not items:
                return "Skipped", {}
        outs: dict[str, str] = {}
        for item in items:
            local = dict(scope)
            if item is not None:
                local["item"] = item if isinstance(item, str) else json.dumps(item)
            given = {a["name"]: substitute(a["value"], local) for a in args}
            ok, outs = self.template(task["template"], given)
            if not ok:
                return "Failed", {}
        return "Succeeded", outs if len(items) == 1 else {}

    def container(self, t: dict, scope: dict[str, str]) -> tuple[bool, dict[str, str]]:
        c = t["container"]
        check_keys(c, CONTAINER_KEYS, f"container of {t['name']}")
        for k, v in t.get("metadata", {}).get("labels", {}).items():
            if not LABEL_VALUE.match(substitute(v, scope)):
                raise SystemExit(f"template {t['name']}: label {k} is no label value")
        argv = [substitute(a, scope) for a in c["command"] + c.get("args", [])]
        env = dict(os.environ)
        for e in c.get("env", []):
            if "value" not in e:
                raise Unsupported(f"env {e['name']} from {list(e.get('valueFrom', {}))}")
            env[e["name"]] = e["value"]
        outputs = [p for p in t.get("outputs", {}).get("parameters", [])]
        limit = int(t.get("retryStrategy", {}).get("limit", 0))
        for _attempt in range(limit + 1):
            for p in outputs:
                if os.path.exists(p["valueFrom"]["path"]):
                    os.remove(p["valueFrom"]["path"])
            print(f"argo-local: {t['name']}: {' '.join(argv)}", flush=True)
            try:
                done = subprocess.run(argv, env=env, timeout=t.get("activeDeadlineSeconds"))
            except subprocess.TimeoutExpired:
                continue
            if done.returncode == 0:
                values = {}
                for p in outputs:
                    with open(p["valueFrom"]["path"]) as f:
                        values[p["name"]] = f.read()
                return True, values
        return False, {}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("-p", action="append", default=[], metavar="NAME=VALUE")
    a = ap.parse_args()
    with open(a.file) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    template = next(d for d in docs if d["kind"] == "WorkflowTemplate")
    params = dict(p.split("=", 1) for p in a.p)
    runner = Runner(template["spec"], params)
    print(f"argo-local: run argo-{runner.uid}", flush=True)
    try:
        status = runner.run()
    except Unsupported as e:
        print(f"argo-local: unsupported: {e}", flush=True)
        sys.exit(2)
    print(f"argo-local: workflow {status}", flush=True)
    sys.exit(0 if status == "Succeeded" else 1)


if __name__ == "__main__":
    main()
