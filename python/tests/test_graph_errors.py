"""The describer's errors: every kind names the flow file's line (python -m flowpack.describe
run as a subprocess, as the binary runs it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import errors, write_flow

HEAD = "from flowpack import FlowSpec, step, Parameter, retry, catch, kubernetes, card\n"


def marked(path: Path) -> int:
    """The line holding the ``# HERE`` marker."""
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if "# HERE" in line:
            return i
    raise AssertionError("no marker")


def flow(tmp_path: Path, body: str) -> Path:
    return write_flow(tmp_path, HEAD + body)


CASES = {
    "missing_next": (
        """
class F(FlowSpec):
    @step
    def start(self):  # HERE
        self.x = 1

    @step
    def end(self):
        pass
""",
        "step 'start' has no self.next(...)",
    ),
    "next_not_last": (
        """
class F(FlowSpec):
    @step
    def start(self):
        if True:
            self.next(self.end)  # HERE

    @step
    def end(self):
        pass
""",
        "must be the last statement of step 'start'",
    ),
    "unknown_target": (
        """
class F(FlowSpec):
    @step
    def start(self):
        self.next(self.trian)  # HERE

    @step
    def train(self):
        self.next(self.end)

    @step
    def end(self):
        pass
""",
        "no step 'trian' (did you mean self.train?)",
    ),
    "join_without_inputs": (
        """
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
    def join(self):  # HERE
        self.next(self.end)

    @step
    def end(self):
        pass
""",
        "declare it as a join, def join(self, inputs)",
    ),
    "join_without_split": (
        """
class F(FlowSpec):
    @step
    def start(self):
        self.next(self.join)

    @step
    def join(self, inputs):  # HERE
        self.next(self.end)

    @step
    def end(self):
        pass
""",
        "no split or foreach is open",
    ),
    "reserved_step": (
        """
class F(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def merge_artifacts(self):  # HERE
        self.next(self.end)

    @step
    def end(self):
        pass
""",
        "step name 'merge_artifacts' is reserved",
    ),
    "unknown_decorator": (
        """
import functools

class F(FlowSpec):
    @functools.lru_cache  # HERE
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
""",
        "unknown decorator @functools.lru_cache on step 'start'",
    ),
    "unsupported_decorator": (
        """
class F(FlowSpec):
    @card  # HERE
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
""",
        "unsupported decorator @card",
    ),
    "decorator_argument_type": (
        """
class F(FlowSpec):
    @retry(times="3")  # HERE
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
""",
        "@retry: times must be a whole number",
    ),
    "decorator_unknown_argument": (
        """
class F(FlowSpec):
    @retry(tims=3)  # HERE
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
""",
        "unsupported argument(s) tims",
    ),
    "kubernetes_secret_list": (
        """
class F(FlowSpec):
    @kubernetes(secrets=["db"])  # HERE
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
""",
        "secrets={'DB_PASSWORD': 'db-credentials/password'}",
    ),
    "parameter_type": (
        """
class F(FlowSpec):
    grid = Parameter("grid", default=[1, 2])  # HERE

    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
""",
        "give type=JSONType",
    ),
    "parameter_name_mismatch": (
        """
class F(FlowSpec):
    rate = Parameter("alpha", default=0.1)  # HERE

    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
""",
        "write alpha = Parameter('alpha', ...)",
    ),
    "parameter_reserved": (
        """
class F(FlowSpec):
    index = Parameter("index", default=1)  # HERE

    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
""",
        "Parameter name 'index' is reserved",
    ),
    "missing_end": (
        """
class F(FlowSpec):  # HERE
    @step
    def start(self):
        self.next(self.start2)

    @step
    def start2(self):
        self.next(self.start)
""",
        "has no step 'end'",
    ),
    "catch_on_foreach": (
        """
class F(FlowSpec):
    @catch(var="e")
    @step
    def start(self):  # HERE
        self.items = [1]
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
        "@catch on step 'start' is not supported",
    ),
    "invalid_transition": (
        """
class F(FlowSpec):
    @step
    def start(self):
        self.next(self.end, foo=1)  # HERE

    @step
    def end(self):
        pass
""",
        "self.next(...) takes foreach='name' or condition='name'",
    ),
    "end_with_next": (
        """
class F(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        self.next(self.start)  # HERE
""",
        "step 'end' is the last step and must not call self.next",
    ),
    "import_exception": (
        """
import json

SETTINGS = json.loads("{not json")  # HERE

class F(FlowSpec):
    pass
""",
        "JSONDecodeError: Expecting property name",
    ),
    "syntax_error": (
        """
class F(FlowSpec):
    @step
    def start(self):
        self.next(self.end  # HERE

    @step
    def end(self):
        pass
""",
        "SyntaxError",
    ),
    "several_flows": (
        """
class F(FlowSpec):
    pass

class G(FlowSpec):  # HERE
    pass
""",
        "defines several flows (F, G)",
    ),
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_error_names_the_line(tmp_path: Path, kind: str) -> None:
    source, expected = CASES[kind]
    path = flow(tmp_path, source)
    found = errors(path)
    line = marked(path)
    assert any(expected in msg for _, msg in found), found
    lines = [ln for ln, msg in found if expected in msg]
    if kind == "syntax_error":
        # Python reports an unclosed bracket at its opening or at the next line.
        assert lines[0] in (line, line + 1), found
    else:
        assert lines == [line], found


def test_no_flow_class(tmp_path: Path) -> None:
    found = errors(write_flow(tmp_path, "x = 1\n"))
    assert found == [
        (1, "flow.py defines no flow: write class MyFlow(FlowSpec) with @step methods")
    ]


def test_all_errors_at_once(tmp_path: Path) -> None:
    path = flow(
        tmp_path,
        """
class F(FlowSpec):
    @step
    def start(self):
        self.next(self.nowhere)

    @step
    def middle(self):
        print("no next")

    @step
    def end(self):
        pass
""",
    )
    messages = [m for _, m in errors(path)]
    assert any("no step 'nowhere'" in m for m in messages), messages
    assert any("step 'middle' has no self.next" in m for m in messages), messages


def test_module_output_stays_off_stdout(tmp_path: Path) -> None:
    path = flow(
        tmp_path,
        """
print("hello from the module")

class F(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
""",
    )
    assert errors  # describe() itself asserts stdout is one JSON line
    from conftest import doc

    assert doc(path)["name"] == "F"
