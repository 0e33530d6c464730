"""Flows ported from Metaflow's documentation with only the import changed: each describes
without error, and each step runs under the task runner (the runtime's folders chained by
hand: one parent's outputs become the next task's inputs)."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest
from conftest import FLOWS, Task, doc


def copy_flow(tmp_path: Path, name: str) -> Path:
    target = tmp_path / "code" / name
    target.parent.mkdir()
    shutil.copy(FLOWS / name, target)
    return target


def chain(t: Task, parents: list[tuple[Task, str]], join: bool) -> None:
    """Lays the parents' namespaces into ``t``'s inputs as InputLayout does."""
    spaces = []
    for parent, label in parents:
        space = {p.name: p.read_bytes() for p in parent.inputs.iterdir() if p.is_file()}
        space.update({p.name: p.read_bytes() for p in parent.outputs.iterdir()})
        spaces.append((label, space))
    if not join:
        for name, data in spaces[0][1].items():
            (t.inputs / name).write_bytes(data)
        return
    for label, space in spaces:
        (t.inputs / label).mkdir()
        for name, data in space.items():
            (t.inputs / label / name).write_bytes(data)
    first = spaces[0][1]
    for name, data in first.items():
        if all(s.get(name) == data for _, s in spaces):
            (t.inputs / name).write_bytes(data)


@pytest.mark.parametrize("name", ["catchflow.py", "branchflow.py", "paramflow.py"])
def test_ported_flows_describe(name: str) -> None:
    d = doc(FLOWS / name)
    assert "start" in d["steps"] and "end" in d["steps"]


def test_catch_flow_runs(tmp_path: Path) -> None:
    flow = copy_flow(tmp_path, "catchflow.py")
    n = [0]

    def task() -> Task:
        n[0] += 1
        return Task(tmp_path / f"t{n[0]}", flow)

    start = task()
    assert start.run("start").returncode == 0
    bodies = []
    for i in range(3):
        b = task()
        chain(b, [(start, "")], join=False)
        # Divide by zero fails on attempts 0 and 1; @catch keeps the third (retry times=2).
        attempt = 2 if i == 0 else 0
        out = b.run("divide", task_id=str(i), split_index=i, attempt=attempt)
        assert out.returncode == 0, out.stderr
        bodies.append((b, str(i)))
    first_try = task()
    chain(first_try, [(start, "")], join=False)
    assert first_try.run("divide", task_id="0", split_index=0, attempt=0).returncode == 1
    join = task()
    chain(join, bodies, join=True)
    out = join.run("join", parents=["divide/0", "divide/1", "divide/2"])
    assert out.returncode == 0, out.stderr
    assert join.out("results") == [10.0, 5.0]


def test_branch_flow_runs(tmp_path: Path) -> None:
    flow = copy_flow(tmp_path, "branchflow.py")
    start = Task(tmp_path / "s", flow)
    assert start.run("start").returncode == 0
    a, b = Task(tmp_path / "a", flow), Task(tmp_path / "b", flow)
    for t, step in ((a, "a"), (b, "b")):
        chain(t, [(start, "")], join=False)
        assert t.run(step).returncode == 0
    join = Task(tmp_path / "j", flow)
    chain(join, [(a, "a"), (b, "b")], join=True)
    out = join.run("join", parents=["a/0", "b/0"])
    assert out.returncode == 0, out.stderr
    assert "x is 1" in out.stdout and "from_a is 6" in out.stdout
    assert join.out("x") == 1 and join.out("from_a") == 6
    assert "y" not in join.outputs_named()


def test_foreach_flow_runs(tmp_path: Path) -> None:
    flow = copy_flow(tmp_path, "paramflow.py")
    start = Task(tmp_path / "s", flow)
    start.params = {"greeting": "hi"}
    assert start.run("start").returncode == 0
    bodies = []
    for i in range(3):
        t = Task(tmp_path / f"b{i}", flow)
        chain(t, [(start, "")], join=False)
        out = t.run("analyze_creatures", task_id=str(i), split_index=i)
        assert out.returncode == 0, out.stderr
        bodies.append((t, str(i)))
    join = Task(tmp_path / "j", flow)
    join.params = {"greeting": "hi"}
    chain(join, bodies, join=True)
    out = join.run("join", parents=[f"analyze_creatures/{i}" for i in range(3)])
    assert out.returncode == 0, out.stderr
    assert pickle.loads((join.outputs / "message").read_bytes()) == "hi, mouse"
