"""The Client API against real runs: YAML flows run by the real binary in a temporary store,
read back through ``flowpack client`` (no mocks)."""

from __future__ import annotations

import datetime
import json
import os
import pickle
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

import flowpack
from flowpack import Flow, FlowpackNotFound, Run, Step, Task, get_metadata, namespace

# One script for every step: `python3 step.py NAME` (the flow folder is the code layer).
STEP_PY = textwrap.dedent(
    """
    import json, os, pickle, sys
    out = os.environ["FLOWPACK_OUTPUT_DIR"]
    inp = os.environ.get("FLOWPACK_INPUT_DIR", "")
    params = json.load(open(os.environ["FLOWPACK_PARAMS"]))

    def put(name, value):
        with open(os.path.join(out, name), "wb") as f:
            pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)

    def get(*path):
        with open(os.path.join(inp, *path), "rb") as f:
            return pickle.load(f)

    step = sys.argv[1]
    if step == "start":
        if params["fail"]:
            raise ValueError("asked to fail")
        put("greeting", {"hello": "world"})
        with open(os.path.join(out, "items"), "w") as f:
            json.dump(list(range(params["n"])), f)
        print("starting", params["n"])
    elif step == "body":
        i = int(os.environ["FLOWPACK_SPLIT_INDEX"])
        put("square", i * i)
        print("square of", i)
        print("to stderr", i, file=sys.stderr)
    elif step == "gather":
        names = sorted(d for d in os.listdir(inp) if os.path.isdir(os.path.join(inp, d)))
        put("total", sum(get(d, "square") for d in names))
    elif step == "end":
        put("result", get("total") + 1)
        os.makedirs(os.path.join(out, "report"))
        with open(os.path.join(out, "report", "summary.txt"), "w") as f:
            f.write("ok\\n")
    """
)

FLOW_YAML = textwrap.dedent(
    """
    name: ClientFlow
    parameters:
      n: {type: int, default: 3}
      fail: {type: bool, default: false}
    steps:
      start:  {run: python3 step.py start, foreach: items, next: body}
      body:   {run: python3 step.py body, next: gather}
      gather: {run: python3 step.py gather, join: true, next: end}
      end:    {run: python3 step.py end}
    """
)


def run_flow(folder: Path, store: Path, *params: str) -> str:
    """Runs the flow with the real binary; returns the run id (failed runs too)."""
    args = [os.environ["FLOWPACK_BIN"], "run", "flow.yaml", "--store", str(store), "--json"]
    for p in params:
        args += ["--param", p]
    env = {**os.environ, "FLOWPACK_CACHE_DIR": str(folder / ".cache")}
    env.pop("FLOWPACK_STORE", None)
    out = subprocess.run(args, cwd=folder, env=env, capture_output=True, text=True, check=False)
    assert out.stdout, f"flowpack run printed nothing: {out.stderr}"
    return json.loads(out.stdout)["run"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A store with a succeeded run (n=3) and, later, a failed one."""
    folder = tmp_path_factory.mktemp("flow")
    (folder / "flow.yaml").write_text(FLOW_YAML)
    (folder / "step.py").write_text(STEP_PY)
    store = folder / "store"
    ok = run_flow(folder, store, "n=3")
    time.sleep(0.01)  # created_at has millisecond precision: keep the order certain
    failed = run_flow(folder, store, "fail=true")
    return {"store": str(store), "ok": ok, "failed": failed}


def test_flow_lists_runs_newest_first(runs: dict[str, str]) -> None:
    flow = Flow("ClientFlow", store=runs["store"])
    ids = [r.id for r in flow.runs()]
    assert ids == [runs["failed"], runs["ok"]]
    assert flow.latest_run.id == runs["failed"]
    assert flow.latest_successful_run.id == runs["ok"]
    assert flow[runs["ok"]].pathspec == f"ClientFlow/{runs['ok']}"
    assert runs["ok"] in flow and "local-nope" not in flow


def test_successful_run_data_steps_and_times(runs: dict[str, str]) -> None:
    run = Run(f"ClientFlow/{runs['ok']}", store=runs["store"])
    assert run.successful and run.finished and run.status == "succeeded"
    assert run.data.result == 0 + 1 + 4 + 1
    assert run.data.greeting == {"hello": "world"}  # inherited down to end
    assert run.parameters == {"n": 3, "fail": False}
    assert run.origin == "local"
    assert isinstance(run.created_at, datetime.datetime)
    assert run.created_at.tzinfo is not None
    assert run.created_at <= run.finished_at
    assert [s.id for s in run.steps()] == ["start", "body", "gather", "end"]
    assert run.end_task.pathspec == f"ClientFlow/{runs['ok']}/end/0"


def test_artifacts_plain_bytes_and_folders(runs: dict[str, str]) -> None:
    run = Run(f"ClientFlow/{runs['ok']}", store=runs["store"])
    start = run["start"].task
    # A YAML step's plain file comes back as bytes; a pickle as its value.
    assert json.loads(start.data.items) == [0, 1, 2]
    art = start.artifacts.greeting
    assert art.sha.startswith("sha256:") and art.size == len(pickle.dumps({"hello": "world"}, 5))
    assert art.data is art.data  # read once, cached
    report = run.data.report
    assert isinstance(report, Path) and (report / "summary.txt").read_text() == "ok\n"
    assert {a.id for a in run.end_task} >= {"result", "report", "total", "greeting"}


def test_foreach_tasks_join_parents_and_logs(runs: dict[str, str]) -> None:
    run = Run(f"ClientFlow/{runs['ok']}", store=runs["store"])
    body = run["body"]
    tasks = list(body.tasks())
    assert [t.id for t in tasks] == ["0", "1", "2"]
    assert [t.index for t in tasks] == [0, 1, 2]
    assert [t.data.square for t in tasks] == [0, 1, 4]
    assert all(t.successful and t.finished for t in tasks)
    assert tasks[2].stdout == "square of 2\n"
    assert tasks[2].stderr == "to stderr 2\n"
    assert tasks[2].exception is None
    assert [p.pathspec for p in tasks[1].parent_tasks] == [f"ClientFlow/{runs['ok']}/start/0"]
    gather = run["gather"].task
    assert [p.id for p in gather.parent_tasks] == ["0", "1", "2"]
    assert all(p.step_name == "body" for p in gather.parent_tasks)
    assert gather.data.total == 5
    assert body.created_at <= body.finished_at
    assert run["start"].task.stdout == "starting 3\n"


def test_failed_run(runs: dict[str, str]) -> None:
    run = Run(f"ClientFlow/{runs['failed']}", store=runs["store"])
    assert not run.successful and run.finished and run.status == "failed"
    assert run.data is None and run.end_task is None
    assert run.finished_at is not None
    task = run["start"].task
    assert not task.successful and task.finished and task.exit_code == 1
    exc = task.exception
    assert exc.type == "ValueError" and exc.message == "asked to fail"
    assert "Traceback (most recent call last)" in exc.traceback
    assert "ValueError: asked to fail" in task.stderr
    assert len(task.artifacts) == 0


def test_pathspec_constructors(runs: dict[str, str]) -> None:
    store = runs["store"]
    task = Task(f"ClientFlow/{runs['ok']}/body/1", store=store)
    assert task.data.square == 1
    step = Step(f"ClientFlow/{runs['ok']}/gather", store=store)
    assert step.task.data.total == 5
    assert run_of(task) == Run(f"ClientFlow/{runs['ok']}", store=store)


def run_of(task: Task) -> Run:
    return task.run


def test_bad_names_are_clear_key_errors(runs: dict[str, str]) -> None:
    store = runs["store"]
    with pytest.raises(KeyError, match="flow 'NoFlow' has no runs in the store"):
        Flow("NoFlow", store=store)
    with pytest.raises(FlowpackNotFound, match="run 'ClientFlow/local-nope' is not in the store"):
        Run("ClientFlow/local-nope", store=store)
    run = Run(f"ClientFlow/{runs['ok']}", store=store)
    with pytest.raises(KeyError, match=r"has no task of a step 'trian' \(it has: "):
        run["trian"]
    with pytest.raises(KeyError, match="has no task 'body/7'"):
        run["body"]["7"]
    with pytest.raises(AttributeError, match="has no artifact 'nope'"):
        _ = run.data.nope
    with pytest.raises(KeyError, match="has no artifact 'nope'"):
        run.end_task["nope"]
    with pytest.raises(ValueError, match="must be written FLOW/RUN_ID"):
        Run("ClientFlow", store=store)
    # Its text is the message, not KeyError's quoted repr.
    try:
        Flow("NoFlow", store=store)
    except KeyError as e:
        assert not str(e).startswith("'")


def test_default_store_from_environment(runs: dict[str, str], monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FLOWPACK_STORE", runs["store"])
    assert get_metadata() == runs["store"]
    assert Flow("ClientFlow").latest_successful_run.id == runs["ok"]


def test_default_store_is_the_nearest_flowpack_folder(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / ".flowpack").mkdir()
    (tmp_path / "a" / "b").mkdir(parents=True)
    monkeypatch.delenv("FLOWPACK_STORE", raising=False)
    monkeypatch.chdir(tmp_path / "a" / "b")
    assert get_metadata() == str(tmp_path / ".flowpack")
    assert flowpack.default_store() == str(tmp_path / ".flowpack")


def test_without_a_store_the_client_says_so_and_creates_none(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("FLOWPACK_STORE", raising=False)
    monkeypatch.chdir(tmp_path)
    if any((d / ".flowpack").exists() for d in (tmp_path, *tmp_path.parents)):
        pytest.fail("a .flowpack above the test folder hides this test's point: remove it")
    with pytest.raises(flowpack.client.BinaryError, match="no flowpack store found in"):
        Flow("HelloFlow")
    with pytest.raises(flowpack.client.BinaryError, match="no flowpack store found in"):
        get_metadata()
    assert not (tmp_path / ".flowpack").exists()


def test_namespace_is_global_only() -> None:
    assert namespace(None) is None
    with pytest.raises(ValueError, match="flowpack has no namespaces"):
        namespace("user:alice")


def test_a_store_that_cannot_be_opened_says_why(tmp_path: Path) -> None:
    with pytest.raises(flowpack.client.BinaryError, match="flowpack client --store"):
        Flow("X", store="nosuch://bucket")


def test_package_version_is_the_binary_version(flowpack_bin: str) -> None:
    out = subprocess.run([flowpack_bin, "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.split()[-1] == flowpack.__version__


def copy_runs(store: Path, flow: str, count: int) -> None:
    """Makes ``count`` more runs of ``flow`` by copying its one run's records (ids rewritten):
    real records and blobs, without running anything."""
    root = store / "v1" / "runs" / flow
    (src,) = os.listdir(root)
    for i in range(count):
        new = f"local-20260101T{i // 3600 % 24:02d}{i // 60 % 60:02d}{i % 60:02d}Z-{i:04x}"
        for dirpath, _, files in os.walk(root / src):
            rel = Path(dirpath).relative_to(root / src)
            (root / new / rel).mkdir(parents=True, exist_ok=True)
            for f in files:
                data = (Path(dirpath) / f).read_bytes().replace(src.encode(), new.encode())
                (root / new / rel / f).write_bytes(data)


def test_thousand_runs_and_an_artifact_each_in_seconds(tmp_path: Path) -> None:
    (tmp_path / "flow.yaml").write_text(FLOW_YAML)
    (tmp_path / "step.py").write_text(STEP_PY)
    store = tmp_path / "store"
    run_flow(tmp_path, store, "n=1")
    copy_runs(store, "ClientFlow", 999)
    began = time.monotonic()
    listed = list(Flow("ClientFlow", store=str(store)).runs())
    values = [r.data.result for r in listed]
    took = time.monotonic() - began
    assert len(listed) == 1000 and values == [1] * 1000
    print(f"\n1,000 runs listed and one artifact of each read in {took:.2f} s")
    # Seconds, not minutes (a debug build on a shared 2-core machine: about 2 s).
    assert took < 20, f"listing 1,000 runs and reading an artifact each took {took:.1f} s"


def test_a_large_artifact_is_streamed_through_a_file(tmp_path: Path) -> None:
    """Past the pipe's limit the binary writes the artifact to a private file (streamed) and
    the client unpickles from it; the value is the same either way."""
    big = 17 << 20
    (tmp_path / "flow.yaml").write_text(
        "name: BigFlow\nsteps:\n  start: {run: python3 big.py, next: end}\n  end: {run: 'true'}\n"
    )
    (tmp_path / "big.py").write_text(
        "import os, pickle\n"
        "out = os.environ['FLOWPACK_OUTPUT_DIR']\n"
        f"pickle.dump(bytes(range(256)) * ({big} // 256), open(out + '/blob', 'wb'), protocol=5)\n"
        "pickle.dump(7, open(out + '/small', 'wb'))\n"
    )
    run_id = run_flow(tmp_path, tmp_path / "store")
    task = Run(f"BigFlow/{run_id}", store=str(tmp_path / "store"))["start"].task
    assert task.artifacts.blob.size > flowpack.client._PIPE_MAX
    assert task.data.blob == bytes(range(256)) * (big // 256)
    assert task.data.small == 7
