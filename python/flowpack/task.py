"""The task runner: ``python -m flowpack.task FILE STEP`` runs one step of a Python flow.

Run by ``flowpack step`` as the task's child (docs/runtime.md, "What the child sees"). It
imports the flow file, parses its graph, builds the flow object without the command line,
binds the parameters (read-only) and the inputs (lazy), runs the step method (with ``inputs``
for a join), checks the transition, and writes the artifacts to ``$FLOWPACK_OUTPUT_DIR``.

Exit codes: 0 when the step succeeded (or ``@catch`` caught its exception on the last
attempt); 1 when it raised (the traceback is on stderr) or an artifact cannot be stored; 2
for a wrong command line.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from .current import Current
from .decorators import find, step_decorators
from .exception import ExceptionWrapper, FlowpackException
from .flowspec import FlowSpec, TaskContext, build_inputs, flow_parameters, load_flow
from .graph import FlowGraph
from .parameters import IncludeFile

# `typing` only for type checkers: importing it costs every task's start ~3 ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _fail(message: str) -> int:
    print(f"flowpack: {message}", file=sys.stderr)
    return 1


def _parameters(flow_cls: type, flow_dir: Path) -> dict[str, Any]:
    """The parameters' values as the step sees them, from ``$FLOWPACK_PARAMS``."""
    given: dict[str, Any] = {}
    params_file = os.environ.get("FLOWPACK_PARAMS")
    if params_file:
        given = json.loads(Path(params_file).read_text(encoding="utf-8"))
    values = {}
    for p in flow_parameters(flow_cls):
        if p.name in given:
            values[p.name] = p.value_from_run(given[p.name])
        elif isinstance(p, IncludeFile) and p.default is not None:
            values[p.name] = p.value_from_run(p.encode_file(flow_dir / p.default))
        else:
            values[p.name] = p.default
    return values


def _write(outputs: dict[str, bytes | Path], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in outputs.items():
        target = folder / name
        if isinstance(data, Path):
            import shutil  # artifacts passed on as files only

            if data.is_dir():
                shutil.copytree(data, target)
            else:
                shutil.copyfile(data, target)
        else:
            target.write_bytes(data)


def _print_traceback() -> None:
    """The current exception's traceback on stderr (``traceback`` imported only then)."""
    import traceback

    traceback.print_exc()


def run_task(path: str, step: str) -> int:
    """Runs step ``step`` of the flow file ``path``; returns the exit code."""
    flow_dir = Path(path).parent
    try:
        _, flow_cls = load_flow(path)
    except Exception:  # noqa: BLE001 - the user's import failed: show its traceback
        _print_traceback()
        return 1
    graph = FlowGraph(flow_cls, path)
    if graph.errors:
        for e in graph.errors:
            print(f"{path}:{e.line}: {e.message}", file=sys.stderr)
        return 1
    if step not in graph:
        return _fail(f"flow {graph.name} has no step '{step}' (steps: {', '.join(graph.nodes)})")
    node = graph[step]
    env = os.environ
    input_dir = Path(env["FLOWPACK_INPUT_DIR"]) if env.get("FLOWPACK_INPUT_DIR") else None
    output_dir = Path(env.get("FLOWPACK_OUTPUT_DIR") or "")
    if not env.get("FLOWPACK_OUTPUT_DIR"):
        return _fail("$FLOWPACK_OUTPUT_DIR is not set: a step runs under `flowpack step`")
    split = env.get("FLOWPACK_SPLIT_INDEX")
    try:
        params = _parameters(flow_cls, flow_dir)
    except FlowpackException as e:
        return _fail(e.message)
    ctx = TaskContext(
        graph,
        step,
        env.get("FLOWPACK_TASK_ID", "0"),
        input_dir,
        params,
        json.loads(env.get("FLOWPACK_PARENTS") or "[]"),
        int(split) if split and split.isdigit() else None,
    )
    Current._parameter_names = list(params)
    flow: FlowSpec = flow_cls(use_cli=False)
    flow._flowpack_bind(ctx)
    decos = step_decorators(node.func)
    catch = find(decos, "catch")
    retry = find(decos, "retry")
    var = catch.attributes["var"] if catch else None
    try:
        method = getattr(flow, step)
        if node.has_inputs:
            method(build_inputs(flow, ctx))
        else:
            method()
        if node.type not in ("end", "hook") and flow.__dict__.get("_fp_transition") is None:
            raise FlowpackException(
                f"step '{step}' finished without calling self.next(...): a return before it "
                "skips the transition"
            )
        if var:
            setattr(flow, var, None)
    except Exception as e:  # noqa: BLE001 - the step's own failure: traceback, or @catch
        attempt = int(env.get("FLOWPACK_ATTEMPT") or 0)
        times = retry.attributes["times"] if retry else 0
        if catch is None or attempt < times:
            _print_traceback()
            return 1
        if catch.attributes["print_exception"]:
            print(f"@catch caught an exception from step '{step}':", file=sys.stderr)
            _print_traceback()
        if var:
            setattr(flow, var, ExceptionWrapper(e))
    try:
        outputs = flow._flowpack_outputs()
    except FlowpackException as e:
        return _fail(e.message)
    _write(outputs, output_dir)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m flowpack.task FILE STEP``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m flowpack.task FLOWFILE STEP", file=sys.stderr)
        return 2
    path = os.path.abspath(args[0])
    folder = os.path.dirname(path)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    code = run_task(path, args[1])
    sys.stdout.flush()
    sys.stderr.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
