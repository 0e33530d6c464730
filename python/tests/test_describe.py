"""The describer's flow document for each shape, decorators and parameters."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

from conftest import PYTHON_DIR, describe, doc, errors, write_flow

RUN = '"${FLOWPACK_PYTHON:-python3}" -m flowpack.task flow.py '


def test_linear_with_lines(tmp_path: Path) -> None:
    path = write_flow(
        tmp_path,
        '''
        from flowpack import FlowSpec, step

        class HelloFlow(FlowSpec):
            """Says hello.

            Details that are not the description."""

            @step
            def start(self):
                self.next(self.end)

            @step
            def end(self):
                pass
        ''',
    )
    result = describe(path)
    text = result["text"].splitlines()
    assert json.loads(result["text"]) == {
        "name": "HelloFlow",
        "code": ".",
        "description": "Says hello.",
        "steps": {
            "start": {"run": RUN + "start", "lazy_inputs": True, "next": "end"},
            "end": {"run": RUN + "end", "lazy_inputs": True},
        },
    }
    # Each step is one line of the text, mapped to its def line.
    start = next(i for i, t in enumerate(text) if t.startswith('"start"'))
    end = next(i for i, t in enumerate(text) if t.startswith('"end"'))
    assert result["lines"][start] == 9
    assert result["lines"][end] == 13


def test_split_join_foreach_switch_nested(tmp_path: Path) -> None:
    path = write_flow(
        tmp_path,
        """
        from flowpack import FlowSpec, step

        class ShapesFlow(FlowSpec):
            @step
            def start(self):
                self.next(self.a, self.b)

            @step
            def a(self):
                self.grid = [1, 2]
                self.next(self.outer, foreach="grid")

            @step
            def outer(self):
                self.inner_items = "xy"
                self.next(self.inner, foreach="inner_items")

            @step
            def inner(self):
                self.next(self.inner_join)

            @step
            def inner_join(self, inputs):
                self.next(self.outer_join)

            @step
            def outer_join(self, inputs):
                self.next(self.join)

            @step
            def b(self):
                self.next(self.join)

            @step
            def join(self, inputs):
                self.verdict = "ok"
                self.next({"ok": self.end, "bad": self.fix}, condition="verdict")

            @step
            def fix(self):
                self.next(self.end)

            @step
            def end(self):
                pass
        """,
    )
    steps = doc(path)["steps"]
    assert steps["start"]["next"] == ["a", "b"]
    assert steps["a"]["next"] == "outer" and steps["a"]["foreach"] == "grid.foreach"
    assert steps["outer"]["foreach"] == "inner_items.foreach"
    assert steps["inner_join"]["join"] is True and steps["outer_join"]["join"] is True
    assert steps["join"] == {
        "run": RUN + "join",
        "lazy_inputs": True,
        "join": True,
        "switch": {"on": "verdict.switch", "cases": {"ok": "end", "bad": "fix"}},
    }
    assert "join" not in steps["fix"]


def test_decorators_become_settings(tmp_path: Path) -> None:
    path = write_flow(
        tmp_path,
        """
        from flowpack import (FlowSpec, step, resources, retry, timeout, environment, catch,
                              kubernetes, pypi, pypi_base, schedule)

        @schedule(hourly=True, timezone="Europe/Paris")
        @pypi_base(packages={"scikit-learn": "1.5.0", "numpy": ""}, python="3.11")
        class DecoFlow(FlowSpec):
            @resources(cpu=2, memory=4096, gpu=1, disk="20Gi")
            @retry
            @timeout(minutes=2, seconds=5)
            @environment(vars={"LOG_LEVEL": "debug", "N": 3})
            @catch(var="failure")
            @step
            def start(self):
                self.next(self.train)

            @kubernetes(image="python:3.11", secrets={"DB": "db/password"},
                        node_selector="pool=gpu", service_account="trainer",
                        image_pull_policy="IfNotPresent", memory="8Gi",
                        tolerations=[{"key": "gpu", "operator": "Exists"}])
            @retry(times=1, minutes_between_retries=0.5)
            @pypi(packages={"torch": ">=2"})
            @step
            def train(self):
                self.next(self.end)

            @schedule
            class Nested:
                pass

            @step
            def end(self):
                pass
        """,
    )
    d = doc(path)
    assert d["schedule"] == {"cron": "0 * * * *", "timezone": "Europe/Paris"}
    assert d["env"] == {"packages": ["scikit-learn==1.5.0", "numpy"], "python": "3.11"}
    start = d["steps"]["start"]
    assert start["resources"] == {
        "cpu": "2",
        "memory": "4096Mi",
        "gpu": 1,
        "disk": "20Gi",
    }
    assert start["retry"] == {"times": 3, "delay": "120s"}
    assert start["timeout"] == 125
    assert start["env"] == {"LOG_LEVEL": "debug", "N": "3"}
    train = d["steps"]["train"]
    assert train["image"] == "python:3.11"
    assert train["secrets"] == {"DB": "db/password"}
    assert train["node_selector"] == {"pool": "gpu"}
    assert train["service_account"] == "trainer"
    assert train["image_pull_policy"] == "IfNotPresent"
    assert train["resources"] == {"memory": "8Gi"}
    assert train["tolerations"] == [{"key": "gpu", "operator": "Exists"}]
    assert train["retry"] == {"times": 1, "delay": "30s"}
    assert train["python_env"] == {"packages": ["torch>=2"]}


def test_parameters(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("line one\nline two\n")
    (tmp_path / "blob.bin").write_bytes(b"\x00\xff\x10")
    path = write_flow(
        tmp_path,
        """
        from flowpack import FlowSpec, step, Parameter, JSONType, IncludeFile

        class ParamFlow(FlowSpec):
            alpha = Parameter("alpha", default=0.01, help="Learning rate")
            epochs = Parameter("epochs", default=3)
            tag = Parameter("tag", required=True)
            verbose = Parameter("verbose", default=False)
            grid = Parameter("grid", type=JSONType, default='{"a": [1, 2]}')
            count = Parameter("count", type=int, default="7")
            notes = IncludeFile("notes", default="notes.txt", help="Notes")
            blob = IncludeFile("blob", default="blob.bin", is_text=False)

            @step
            def start(self):
                self.next(self.end)

            @step
            def end(self):
                pass
        """,
    )
    result = describe(path)
    params = json.loads(result["text"])["parameters"]
    assert params == {
        "alpha": {"type": "float", "default": 0.01, "help": "Learning rate"},
        "epochs": {"type": "int", "default": 3},
        "tag": {"type": "string"},
        "verbose": {"type": "bool", "default": False},
        "grid": {"type": "json", "default": {"a": [1, 2]}},
        "count": {"type": "int", "default": 7},
        "notes": {"type": "string", "default": "line one\nline two\n", "help": "Notes"},
        "blob": {
            "type": "string",
            "default": base64.b64encode(b"\x00\xff\x10").decode(),
        },
    }
    # Each parameter is one text line mapped to its Parameter(...) line.
    text = result["text"].splitlines()
    alpha = next(i for i, t in enumerate(text) if t.startswith('"alpha"'))
    blob = next(i for i, t in enumerate(text) if t.startswith('"blob"'))
    assert result["lines"][alpha] == 4
    assert result["lines"][blob] == 11


def test_include_file_missing_and_too_large(tmp_path: Path) -> None:
    (tmp_path / "big.txt").write_text("x" * (1024 * 1024 + 1))
    path = write_flow(
        tmp_path,
        """
        from flowpack import FlowSpec, step, IncludeFile

        class F(FlowSpec):
            big = IncludeFile("big", default="big.txt")
            gone = IncludeFile("gone", default="gone.txt")

            @step
            def start(self):
                self.next(self.end)

            @step
            def end(self):
                pass
        """,
    )
    found = [(e["line"], e["message"]) for e in describe(path)["errors"]]
    assert found[0][0] == 4 and "more than the 1048576" in found[0][1]
    assert found[1][0] == 5 and "cannot read" in found[1][1]


def test_valid_for_the_binary(tmp_path: Path) -> None:
    """The text passes the binary's own YAML validator (JSON is YAML)."""
    binary = PYTHON_DIR.parent / "target" / "debug" / "flowpack"
    path = write_flow(
        tmp_path,
        """
        from flowpack import FlowSpec, step, Parameter

        class CheckFlow(FlowSpec):
            n = Parameter("n", default=2)

            @step
            def start(self):
                self.items = list(range(self.n))
                self.next(self.body, foreach="items")

            @step
            def body(self):
                self.next(self.join)

            @step
            def join(self, inputs):
                self.next(self.end)

            @step
            def end(self):
                pass
        """,
    )
    (tmp_path / "flow.yaml").write_text(describe(path)["text"])
    if not binary.exists():
        import pytest

        pytest.skip("the flowpack binary is not built")
    out = subprocess.run(
        [str(binary), "check", str(tmp_path / "flow.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "valid" in out.stdout


def test_exit_hook_names_steps_outside_the_graph(tmp_path: Path) -> None:
    path = write_flow(
        tmp_path,
        """
        from flowpack import FlowSpec, exit_hook, step

        @exit_hook(on_failure="alert", on_exit="cleanup")
        class HookFlow(FlowSpec):
            @step
            def start(self):
                self.next(self.end)

            @step
            def end(self):
                pass

            @step
            def alert(self):
                pass

            @step
            def cleanup(self):
                pass
        """,
    )
    d = doc(path)
    assert d["on_failure"] == "alert"
    assert d["on_exit"] == "cleanup"
    assert d["steps"]["alert"] == {"run": RUN + "alert", "lazy_inputs": True}


def test_exit_hook_takes_step_names_not_functions(tmp_path: Path) -> None:
    path = write_flow(
        tmp_path,
        """
        from flowpack import FlowSpec, exit_hook, step

        def notify():
            pass

        @exit_hook(on_error=[notify])
        class HookFlow(FlowSpec):
            @step
            def start(self):
                self.next(self.end)

            @step
            def end(self):
                pass
        """,
    )
    assert errors(path) == [
        (6, "@exit_hook: unsupported argument(s) on_error; it takes on_failure, on_exit")
    ]
    path.write_text(path.read_text().replace("on_error=[notify]", "on_failure=notify"))
    [(line, message)] = errors(path)
    assert line == 6
    assert "flowpack's exit hooks are steps" in message, message


def test_cache_decorator_turns_the_step_cache_off(tmp_path: Path) -> None:
    path = write_flow(
        tmp_path,
        """
        from flowpack import FlowSpec, step, cache

        class CacheFlow(FlowSpec):
            @cache(enabled=False)
            @step
            def start(self):
                self.next(self.end)

            @cache(enabled=True)
            @step
            def end(self):
                pass
        """,
    )
    d = doc(path)
    assert d["steps"]["start"]["cache"] is False
    assert "cache" not in d["steps"]["end"]
