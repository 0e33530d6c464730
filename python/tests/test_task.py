"""The task runner driven for real: folders laid out as flowpack step lays them, the step run
as ``python -m flowpack.task FLOW STEP``, the pickles it writes checked."""

from __future__ import annotations

import base64
import json
import pickle
from pathlib import Path

import pytest
from conftest import write_flow

FLOW = """
from flowpack import FlowSpec, step, Parameter, IncludeFile, JSONType, catch, retry, current

class Unpicklable:
    def __reduce__(self):
        raise TypeError("no pickling here")

class TestFlow(FlowSpec):
    alpha = Parameter("alpha", default=0.5)
    grid = Parameter("grid", type=JSONType, default="[1, 2]")
    blob = IncludeFile("blob", is_text=False)

    @step
    def start(self):
        self.x = self.alpha * 2
        self._private = "not an artifact"
        self.items = ["a", {"k": 1}, 3]
        self.where = [current.flow_name, current.run_id, current.step_name, current.task_id,
                      current.retry_count, current.pathspec, current.is_running_flow,
                      current.store]
        self.next(self.body, foreach="items")

    @step
    def body(self):
        self.seen = (self.input, self.index, self.foreach_stack())
        self.next(self.join)

    @step
    def join(self, inputs):
        self.seen = [(i.index, i.input, i.seen[0]) for i in inputs]
        self.n = len(inputs)
        self.next(self.split)

    @step
    def split(self):
        self.lst.append(4)
        self.verdict = "ok"
        self.next({"ok": self.a, "bad": self.b}, condition="verdict")

    @step
    def a(self):
        self.next(self.branches)

    @step
    def b(self):
        self.next(self.branches)

    @step
    def branches(self):
        self.next(self.left, self.right)

    @step
    def left(self):
        self.next(self.merge)

    @step
    def right(self):
        self.next(self.merge)

    @step
    def merge(self, inputs):
        self.from_left = inputs.left.score
        self.merge_artifacts(inputs, exclude=self.excluded())
        self.next(self.setparam)

    def excluded(self):
        import os
        return os.environ.get("EXCLUDE", "").split(",") if os.environ.get("EXCLUDE") else []

    @step
    def setparam(self):
        self.alpha = 3
        self.next(self.bad)

    @step
    def bad(self):
        self.thing = Unpicklable()
        self.next(self.fails)

    @catch(var="failure")
    @retry(times=1)
    @step
    def fails(self):
        self.before = 1
        raise ValueError("broken on purpose")
        self.next(self.include)

    @step
    def include(self):
        self.got = (self.blob, self.grid)
        self.next(self.early)

    @step
    def early(self):
        if True:
            return
        self.next(self.end)

    @step
    def end(self):
        self.read = self.needed
"""


@pytest.fixture
def flow(tmp_path: Path) -> Path:
    (tmp_path / "code").mkdir()
    return write_flow(tmp_path / "code", FLOW)


def test_artifacts_parameters_current_and_foreach_list(task_for, flow: Path) -> None:
    t = task_for(flow)
    t.params = {"alpha": 0.25, "grid": [1, 2], "blob": ""}
    out = t.run("start")
    assert out.returncode == 0, out.stderr
    assert t.outputs_named() == ["items", "items.foreach", "where", "x"]
    assert t.out("x") == 0.5
    assert json.loads((t.outputs / "items.foreach").read_text()) == ["a", "{'k': 1}", 3]
    assert t.out("where") == [
        "TestFlow",
        "local-test",
        "start",
        "0",
        0,
        "TestFlow/local-test/start/0",
        True,
        "/tmp/store",
    ]
    for name in t.outputs_named():
        if "." not in name:
            assert (t.outputs / name).read_bytes()[:1] == b"\x80"


def test_foreach_input_index_stack(task_for, flow: Path) -> None:
    t = task_for(flow)
    t.put("items", ["a", {"k": 1}, 3])
    (t.inputs / "items.foreach").write_text('["a", "{\'k\': 1}", 3]')
    out = t.run("body", task_id="1", split_index=1)
    assert out.returncode == 0, out.stderr
    assert t.out("seen") == ({"k": 1}, 1, [(1, 3, {"k": 1})])


def test_foreach_join_inputs_in_order(task_for, flow: Path) -> None:
    t = task_for(flow)
    t.put("items", ["a", "b"])  # equal in every parent: also at the top
    for i, item in enumerate(["a", "b"]):
        t.put("items", ["a", "b"], under=str(i))
        t.put("seen", (item, i, []), under=str(i))
    out = t.run("join", parents=["body/0", "body/1"])
    assert out.returncode == 0, out.stderr
    assert t.out("seen") == [(0, "a", "a"), (1, "b", "b")]
    assert t.out("n") == 2


def test_lazy_inputs_are_never_touched_unless_read(task_for, flow: Path) -> None:
    t = task_for(flow)
    t.put("lst", [1, 2, 3])
    t.put("garbage", b"\x80this is not a pickle")
    out = t.run("split")
    assert out.returncode == 0, out.stderr
    # lst was read and changed in place: written again; garbage untouched, not rewritten.
    assert t.out("lst") == [1, 2, 3, 4]
    assert "garbage" not in t.outputs_named()
    assert (t.outputs / "verdict.switch").read_text() == "ok"


def test_inherited_artifact_read_unchanged_is_not_rewritten(task_for, tmp_path: Path) -> None:
    flow = write_flow(
        tmp_path,
        """
        from flowpack import FlowSpec, step

        class F(FlowSpec):
            @step
            def start(self):
                self.total = sum(self.numbers)
                self.next(self.end)

            @step
            def end(self):
                pass
        """,
        name="reader.py",
    )
    t = task_for(flow)
    t.put("numbers", [1, 2, 3])
    out = t.run("start")
    assert out.returncode == 0, out.stderr
    assert t.outputs_named() == ["total"]


def test_split_join_names_branches_and_merges(task_for, flow: Path) -> None:
    t = task_for(flow)
    t.put("common", "same", under="left")
    t.put("common", "same", under="right")
    t.put("score", 0.9, under="left")
    t.put("only_right", "r", under="right")
    out = t.run("merge", parents=["left/0", "right/0"])
    assert out.returncode == 0, out.stderr
    assert t.out("from_left") == 0.9
    assert t.out("common") == "same"
    assert t.out("score") == 0.9
    assert t.out("only_right") == "r"


def test_merge_conflict_names_artifacts_and_steps(task_for, flow: Path) -> None:
    t = task_for(flow)
    t.put("score", 0.9, under="left")
    t.put("score", 0.1, under="right")
    out = t.run("merge", parents=["left/0", "right/0"])
    assert out.returncode == 1
    assert "cannot merge the following artifacts" in out.stderr
    assert "score (differs between left/0, right/0)" in out.stderr
    assert t.outputs_named() == []
    # Excluding the conflicting artifact lets the join go on.
    t2_out = t.run
    t.env["EXCLUDE"] = "score"
    out = t2_out("merge", parents=["left/0", "right/0"])
    assert out.returncode == 0, out.stderr


def test_merge_include_and_exclude_rules(task_for, tmp_path: Path) -> None:
    flow = write_flow(
        tmp_path,
        """
        import os
        from flowpack import FlowSpec, step

        class F(FlowSpec):
            @step
            def start(self):
                self.next(self.a, self.b)

            @step
            def a(self):
                self.next(self.join)

            @step
            def b(self):
                self.next(self.join)

            @step
            def join(self, inputs):
                mode = os.environ["MODE"]
                if mode == "both":
                    self.merge_artifacts(inputs, include=["x"], exclude=["y"])
                elif mode == "missing":
                    self.merge_artifacts(inputs, include=["x", "nope"])
                else:
                    self.x = "mine"
                    self.merge_artifacts(inputs)
                self.next(self.end)

            @step
            def end(self):
                pass
        """,
        name="merging.py",
    )
    results = {}
    for mode in ("both", "missing", "set_first"):
        t = task_for(flow)
        t.put("x", 1, under="a")
        t.put("x", 2, under="b")
        t.env["MODE"] = mode
        results[mode] = (t.run("join", parents=["a/0", "b/0"]), t)
    assert "mutually exclusive" in results["both"][0].stderr
    missing = results["missing"][0].stderr
    assert "include [nope], which no input has" in missing or "conflicting" in missing
    ok, t = results["set_first"]
    assert ok.returncode == 0, ok.stderr
    assert t.out("x") == "mine"


def test_parameters_are_read_only(task_for, flow: Path) -> None:
    t = task_for(flow)
    t.params = {"alpha": 0.5, "grid": [1], "blob": ""}
    out = t.run("setparam")
    assert out.returncode == 1
    assert "'alpha' is a Parameter and cannot be assigned" in out.stderr
    assert "Traceback" in out.stderr


def test_unpicklable_artifact_is_named_and_nothing_written(task_for, flow: Path) -> None:
    t = task_for(flow)
    out = t.run("bad")
    assert out.returncode == 1
    assert "artifact self.thing cannot be pickled" in out.stderr
    assert t.outputs_named() == []


def test_exception_fails_with_traceback_before_the_last_attempt(task_for, flow: Path) -> None:
    t = task_for(flow)
    out = t.run("fails", attempt=0)
    assert out.returncode == 1
    assert "ValueError: broken on purpose" in out.stderr
    assert "Traceback (most recent call last)" in out.stderr
    assert t.outputs_named() == []


def test_catch_stores_the_exception_on_the_last_attempt(task_for, flow: Path) -> None:
    t = task_for(flow)
    out = t.run("fails", attempt=1)
    assert out.returncode == 0, out.stderr
    assert "@catch caught an exception from step 'fails'" in out.stderr
    failure = t.out("failure")
    assert failure.type == "builtins.ValueError"
    assert failure.message == "broken on purpose"
    assert "raise ValueError" in failure.traceback
    assert t.out("before") == 1


def test_catch_sets_var_to_none_on_success(task_for, tmp_path: Path) -> None:
    flow = write_flow(
        tmp_path,
        """
        from flowpack import FlowSpec, step, catch

        class F(FlowSpec):
            @catch(var="err")
            @step
            def start(self):
                self.next(self.end)

            @step
            def end(self):
                pass
        """,
        name="catching.py",
    )
    t = task_for(flow)
    assert t.run("start").returncode == 0
    assert t.out("err") is None


def test_include_file_and_json_parameter(task_for, flow: Path) -> None:
    t = task_for(flow)
    t.params = {
        "alpha": 0.5,
        "grid": {"a": [1]},
        "blob": base64.b64encode(b"\x00\x01").decode(),
    }
    out = t.run("include")
    assert out.returncode == 0, out.stderr
    assert t.out("got") == (b"\x00\x01", {"a": [1]})


def test_return_before_next_is_an_error(task_for, flow: Path) -> None:
    out = task_for(flow).run("early")
    assert out.returncode == 1
    assert "finished without calling self.next" in out.stderr


def test_reading_a_missing_artifact_says_so(task_for, flow: Path) -> None:
    out = task_for(flow).run("end")
    assert out.returncode == 1
    assert "step 'end' reads self.needed, but no step before it set it" in out.stderr


def test_nested_foreach_stack(task_for, tmp_path: Path) -> None:
    flow = write_flow(
        tmp_path,
        """
        from flowpack import FlowSpec, step

        class F(FlowSpec):
            @step
            def start(self):
                self.outer = ["x", "y"]
                self.next(self.mid, foreach="outer")

            @step
            def mid(self):
                self.inner = [10, 20, 30]
                self.next(self.leaf, foreach="inner")

            @step
            def leaf(self):
                self.stack = self.foreach_stack()
                self.next(self.leaf2)

            @step
            def leaf2(self):
                self.again = (self.input, self.index)
                self.next(self.inner_join)

            @step
            def inner_join(self, inputs):
                self.next(self.outer_join)

            @step
            def outer_join(self, inputs):
                self.next(self.end)

            @step
            def end(self):
                pass
        """,
        name="nested.py",
    )
    t = task_for(flow)
    t.put("outer", ["x", "y"])
    (t.inputs / "outer.foreach").write_text('["x", "y"]')
    t.put("inner", [10, 20, 30])
    out = t.run("leaf", task_id="1.2", split_index=2)
    assert out.returncode == 0, out.stderr
    assert t.out("stack") == [(1, 2, "y"), (2, None, 30)]
    t2 = task_for(flow)
    t2.put("outer", ["x", "y"])
    t2.put("inner", [10, 20, 30])
    out = t2.run("leaf2", task_id="0.1")
    assert out.returncode == 0, out.stderr
    assert t2.out("again") == (20, 1)


def test_outputs_are_protocol_4_or_higher(task_for, flow: Path) -> None:
    t = task_for(flow)
    t.params = {"alpha": 1.0, "grid": [], "blob": ""}
    assert t.run("start").returncode == 0
    data = (t.outputs / "x").read_bytes()
    assert data[0] == 0x80 and data[1] >= 4
    assert pickle.loads(data) == 2.0
