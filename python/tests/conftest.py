"""Helpers of the package's tests: write a flow file, run the describer or the task runner
as the binary does (a real Python subprocess, real folders), read what they wrote.

Every test uses the ``flowpack`` binary of this checkout: ``FLOWPACK_BIN`` names it
(tests/run.sh sets it to ``target/debug/flowpack``); without it the test build is used, and
the tests fail with what to run when it is missing.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYTHON_DIR = ROOT / "python"
FLOWS = Path(__file__).resolve().parent / "flows"
sys.path.insert(0, str(PYTHON_DIR))


def _binary() -> str:
    path = os.environ.get("FLOWPACK_BIN") or str(ROOT / "target" / "debug" / "flowpack")
    if not os.access(path, os.X_OK):
        pytest.exit(f"no flowpack binary at {path}: run `cargo build` or set FLOWPACK_BIN", 2)
    return path


os.environ["FLOWPACK_BIN"] = _binary()


@pytest.fixture
def flowpack_bin() -> str:
    """The absolute path of the binary under test."""
    return os.environ["FLOWPACK_BIN"]


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWPACK_")}
    env["PYTHONPATH"] = str(PYTHON_DIR)
    env.update(extra or {})
    return env


def write_flow(folder: Path, source: str, name: str = "flow.py") -> Path:
    """Writes a flow file (dedented) into ``folder``."""
    path = folder / name
    path.write_text(textwrap.dedent(source).lstrip("\n"))
    return path


def describe(path: Path) -> dict[str, Any]:
    """Runs ``python -m flowpack.describe`` as the binary does; returns its JSON."""
    out = subprocess.run(
        [sys.executable, "-m", "flowpack.describe", path.name],
        cwd=path.parent,
        env=_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 1, f"one JSON line expected, got: {out.stdout!r}"
    return json.loads(lines[0])


def doc(path: Path) -> dict[str, Any]:
    """The flow document the describer writes (asserting it had no errors)."""
    result = describe(path)
    assert "errors" not in result, result
    assert len(result["text"].splitlines()) == len(result["lines"])
    return json.loads(result["text"])


def errors(path: Path) -> list[tuple[int, str]]:
    """The describer's errors as (line, message)."""
    result = describe(path)
    assert "errors" in result, result
    return [(e["line"], e["message"]) for e in result["errors"]]


class Task:
    """One task's folders, laid out as ``flowpack step`` lays them (docs/runtime.md)."""

    def __init__(self, root: Path, flow: Path) -> None:
        self.root = root
        self.flow = flow
        self.inputs = root / "inputs"
        self.outputs = root / "outputs"
        self.inputs.mkdir(parents=True)
        self.outputs.mkdir()
        self.params: dict[str, Any] = {}
        self.env: dict[str, str] = {}

    def put(self, name: str, value: Any, under: str | None = None) -> Path:
        """Puts a pickled artifact into the inputs (under a join's parent folder)."""
        folder = self.inputs / under if under else self.inputs
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        path.write_bytes(value if isinstance(value, bytes) else pickle.dumps(value, protocol=4))
        return path

    def run(
        self,
        step: str,
        task_id: str = "0",
        parents: list[str] | None = None,
        attempt: int = 0,
        split_index: int | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Runs ``python -m flowpack.task FLOW STEP`` with the environment of a task."""
        params = self.root / "params.json"
        params.write_text(json.dumps(self.params))
        env = {
            "FLOWPACK_FLOW": "TestFlow",
            "FLOWPACK_RUN_ID": "local-test",
            "FLOWPACK_STEP": step,
            "FLOWPACK_TASK_ID": task_id,
            "FLOWPACK_ATTEMPT": str(attempt),
            "FLOWPACK_INPUT_DIR": str(self.inputs),
            "FLOWPACK_OUTPUT_DIR": str(self.outputs),
            "FLOWPACK_PARAMS": str(params),
            "FLOWPACK_PARENTS": json.dumps(parents or []),
            "FLOWPACK_STORE": "/tmp/store",
            "TMPDIR": str(self.root),
            **self.env,
        }
        if split_index is not None:
            env["FLOWPACK_SPLIT_INDEX"] = str(split_index)
        return subprocess.run(
            [sys.executable, "-m", "flowpack.task", self.flow.name, step],
            cwd=self.flow.parent,
            env=_env(env),
            capture_output=True,
            text=True,
            check=False,
        )

    def outputs_named(self) -> list[str]:
        """The names written to the outputs folder."""
        return sorted(p.name for p in self.outputs.iterdir())

    def out(self, name: str) -> Any:
        """An output artifact, unpickled."""
        data = (self.outputs / name).read_bytes()
        assert data[:1] == b"\x80", f"{name} is not a pickle"
        return pickle.loads(data)


@pytest.fixture
def task_for(tmp_path: Path):
    """``task_for(flow_path)`` → a fresh :class:`Task` for that flow."""
    count = [0]

    def make(flow: Path) -> Task:
        count[0] += 1
        return Task(tmp_path / f"task{count[0]}", flow)

    return make
