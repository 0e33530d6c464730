"""``python flow.py COMMAND …``: the translation into the binary's command line, --help and
usage errors (the process exits before any binary is needed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FLOWS, _env

from flowpack.cli import UsageError, translate
from flowpack.flowspec import load_flow


@pytest.fixture(scope="module")
def foreach_flow() -> type:
    return load_flow(str(FLOWS / "paramflow.py"))[1]


def test_run_maps_parameters_and_store(foreach_flow: type, tmp_path: Path) -> None:
    # No --store: none is passed, and the binary resolves the store by its one rule.
    os.environ["FLOWPACK_STORE"] = str(tmp_path / "store")
    try:
        args = translate(foreach_flow, "paramflow.py", ["run", "--greeting", "hey", "--json"])
        args2 = translate(foreach_flow, "paramflow.py", ["run", "--greeting=yo", "--store", "s"])
    finally:
        del os.environ["FLOWPACK_STORE"]
    path = os.path.abspath("paramflow.py")
    assert args == ["run", path, "--param", "greeting=hey", "--json"]
    assert args2 == ["run", path, "--param", "greeting=yo", "--store", "s"]


def test_show_and_unknown_options(foreach_flow: type) -> None:
    assert translate(foreach_flow, "f.py", ["show"]) == [
        "check",
        os.path.abspath("f.py"),
    ]
    with pytest.raises(UsageError, match="unknown option --alpha"):
        translate(foreach_flow, "f.py", ["run", "--alpha", "1"])
    with pytest.raises(UsageError, match="unknown command 'walk'"):
        translate(foreach_flow, "f.py", ["walk"])
    with pytest.raises(UsageError, match="--greeting needs a value"):
        translate(foreach_flow, "f.py", ["run", "--greeting"])


def test_resume_takes_a_run_or_a_step(foreach_flow: type) -> None:
    # The flow file goes along: the resumed run runs the current code.
    flow = os.path.abspath("f.py")
    assert translate(foreach_flow, "f.py", ["resume", "local-1", "--store", "s"]) == [
        "resume",
        "local-1",
        flow,
        "--store",
        "s",
    ]
    assert translate(
        foreach_flow,
        "f.py",
        ["resume", "join", "--origin-run-id", "local-2", "--store", "s"],
    ) == ["resume", "local-2", flow, "--from", "join", "--store", "s"]


def test_argo_workflows_create_and_trigger_speak_metaflows_commands(foreach_flow: type) -> None:
    flow = os.path.abspath("f.py")
    server = ["--argo-server", "https://argo:2746"]
    assert translate(foreach_flow, "f.py", ["argo-workflows", "create", *server]) == [
        "push",
        flow,
        *server,
    ]
    assert translate(
        foreach_flow, "f.py", ["argo-workflows", "trigger", "--greeting", "hi", *server]
    ) == ["trigger", flow, "--param", "greeting=hi", *server, "--target", "argo"]
    os.environ.pop("FLOWPACK_ARGO_SERVER", None)
    with pytest.raises(UsageError, match="pass --argo-server URL"):
        translate(foreach_flow, "f.py", ["argo-workflows", "create"])
    with pytest.raises(UsageError, match="takes create"):
        translate(foreach_flow, "f.py", ["argo-workflows", "delete"])


def test_help_lists_commands_and_parameters(tmp_path: Path) -> None:
    flow = tmp_path / "paramflow.py"
    flow.write_text((FLOWS / "paramflow.py").read_text())
    out = subprocess.run(
        [sys.executable, str(flow), "--help"],
        env=_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    for word in ("run", "resume", "show", "push", "compile", "trigger", "--greeting"):
        assert word in out.stdout
    bad = subprocess.run(
        [sys.executable, str(flow), "run", "--nope", "1"],
        env=_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    assert "unknown option --nope" in bad.stderr
