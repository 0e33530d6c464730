"""The describer: ``python -m flowpack.describe FLOWFILE`` prints the flow as a flow document.

Run by the ``flowpack`` binary for every ``.py`` flow file. It imports the module (top-level
code runs, no step does), parses the graph from the source (``flowpack.graph``), evaluates the
decorators and parameters, and prints ONE JSON object on stdout:
``{"text": <the flow document as JSON text>, "lines": [<source line of each text line>]}`` or
``{"errors": [{"line", "col", "message"}, ...]}``, and exits 0. The text puts each step and
each parameter on one line, mapped to its ``def`` or its ``Parameter(...)`` line, so that the
binary's own validator can name ``flow.py:LINE``. Anything the module prints while imported
goes to stderr.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import shlex
import sys
import traceback
from pathlib import Path
from typing import Any

from . import decorators as deco
from .exception import FlowpackException
from .flowspec import flow_parameters, load_flow
from .graph import FlowGraph, GraphError, reserved_names


class Described:
    """The describer's result: a flow document with its line map, or the errors."""

    def __init__(self) -> None:
        self.errors: list[GraphError] = []
        self.text_lines: list[str] = []
        self.line_map: list[int] = []

    def as_json(self) -> dict[str, Any]:
        """The object the describer prints."""
        if self.errors:
            errors = sorted(self.errors, key=lambda e: (e.line, e.col))
            return {
                "errors": [{"line": e.line, "col": e.col, "message": e.message} for e in errors]
            }
        return {"text": "\n".join(self.text_lines) + "\n", "lines": self.line_map}


def import_error(path: str, exc: BaseException) -> GraphError:
    """An exception raised while importing the flow file, at its innermost line in the file."""
    if isinstance(exc, SyntaxError) and exc.filename and os.path.abspath(exc.filename) == path:
        return GraphError(exc.lineno or 0, exc.offset or 0, f"SyntaxError: {exc.msg}")
    line = 0
    for frame in traceback.extract_tb(exc.__traceback__):
        if os.path.abspath(frame.filename) == path:
            line = frame.lineno or 0
    if isinstance(exc, FlowpackException):
        return GraphError(exc.line or line, exc.col, exc.message)
    return GraphError(line, 0, f"{type(exc).__name__}: {exc}")


def _decorator_target(node: ast.expr) -> ast.expr:
    return node.func if isinstance(node, ast.Call) else node


def _resolve(node: ast.expr, namespace: dict[str, Any]) -> Any:
    """The object a decorator expression names (``retry``, ``flowpack.retry``), or None."""
    if isinstance(node, ast.Name):
        return namespace.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _resolve(node.value, namespace)
        return getattr(base, node.attr, None) if base is not None else None
    return None


def _check_decorator_names(
    graph: FlowGraph, namespace: dict[str, Any], out: list[GraphError]
) -> None:
    tree = graph._tree(graph.path)
    if tree is None:
        return
    known = {id(getattr(deco, n)) for n in (*deco.STEP_DECORATORS, *deco.FLOW_DECORATORS)}
    known.add(id(deco.step))
    supported = ", ".join(f"@{n}" for n in ("step", *deco.STEP_DECORATORS))
    for node in graph:
        fn = graph._find_def(node.func)
        if fn is None or inspect.unwrap(node.func).__code__.co_filename != graph.path:
            continue
        for d in fn.decorator_list:
            obj = _resolve(_decorator_target(d), namespace)
            if obj is None or id(obj) not in known:
                text = ast.get_source_segment(graph._source(), d) or "?"
                out.append(
                    GraphError(
                        d.lineno,
                        d.col_offset,
                        f"unknown decorator @{text.split('(')[0]} on step '{node.name}': "
                        f"flowpack supports {supported}; remove it",
                    )
                )


def _step_doc(graph: FlowGraph, node: Any, filename: str, out: list[GraphError]) -> dict[str, Any]:
    run = f'"${{FLOWPACK_PYTHON:-python3}}" -m flowpack.task {shlex.quote(filename)} {node.name}'
    # Inputs on demand: the task runner asks for each artifact it reads, so an artifact no
    # step reads is never downloaded (docs/runtime.md, "Inputs on demand").
    doc: dict[str, Any] = {"run": run, "lazy_inputs": True}
    if node.type == "foreach":
        doc["next"] = node.out_funcs[0]
        doc["foreach"] = f"{node.foreach_param}.foreach"
    elif node.type == "split-switch":
        doc["switch"] = {
            "on": f"{node.condition}.switch",
            "cases": dict(node.switch_cases),
        }
    elif node.out_funcs:
        doc["next"] = node.out_funcs[0] if len(node.out_funcs) == 1 else list(node.out_funcs)
    if node.has_inputs:
        doc["join"] = True
    # @kubernetes's resources override @resources' field by field, whatever their order.
    decos = sorted(deco.step_decorators(node.func), key=lambda d: d.name == "kubernetes")
    for d in decos:
        if d.name == "catch" and node.type in ("foreach", "split-switch"):
            kind = "foreach" if node.type == "foreach" else "switch"
            out.append(
                GraphError(
                    node.func_lineno,
                    0,
                    f"@catch on step '{node.name}' is not supported: a {kind} step must write "
                    "its value; catch the exception in the steps after it",
                )
            )
        for key, value in d.settings().items():
            if isinstance(value, dict) and isinstance(doc.get(key), dict):
                doc[key] = {**doc[key], **value}
            else:
                doc[key] = value
    return doc


def describe(path: str) -> Described:
    """Describes the flow file ``path`` (absolute)."""
    result = Described()
    try:
        module, cls = load_flow(path)
    except Exception as e:  # noqa: BLE001 - any import failure is the user's, shown at its line
        result.errors.append(import_error(path, e))
        return result
    graph = FlowGraph(cls, path)
    errors = list(graph.errors)
    _check_decorator_names(graph, vars(module), errors)
    flow_dir = Path(path).parent
    filename = Path(path).name

    # Parameters: the class attribute is the parameter's name.
    param_lines: dict[str, int] = {}
    tree = graph._tree(path)
    for node in ast.walk(tree) if tree else ():
        if isinstance(node, ast.ClassDef):
            for stmt in node.body:
                if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
                    t = stmt.targets[0]
                    if isinstance(t, ast.Name):
                        param_lines.setdefault(t.id, stmt.lineno)
    params: list[tuple[str, dict[str, Any], int]] = []
    reserved = reserved_names()
    for p in flow_parameters(cls):
        line = param_lines.get(p.attr or "", graph.class_lineno)
        if p.attr != p.name:
            errors.append(
                GraphError(
                    line,
                    0,
                    f"Parameter '{p.name}' is assigned to the attribute '{p.attr}': flowpack "
                    f"needs them equal, write {p.name} = Parameter('{p.name}', ...)",
                )
            )
            continue
        if p.name in reserved or p.name in graph.nodes:
            errors.append(
                GraphError(
                    line,
                    0,
                    f"Parameter name '{p.name}' is reserved: choose another name",
                )
            )
            continue
        try:
            params.append((p.name, p.flow_spec(flow_dir), line))
        except FlowpackException as e:
            errors.append(GraphError(line, 0, e.message))

    doc: dict[str, Any] = {"name": cls.__name__, "code": "."}
    if cls.__doc__ and cls.__doc__.strip():
        doc["description"] = cls.__doc__.strip().split("\n\n")[0].strip()
    for d in deco.flow_decorators(cls):
        if d.name == "pypi_base":
            env = {"packages": deco._packages("pypi_base", d.attributes["packages"])}
            if d.attributes["python"]:
                env["python"] = d.attributes["python"]
            doc["env"] = env
        elif d.name == "schedule":
            doc["schedule"] = deco.schedule_spec(d.attributes)
        elif d.name == "exit_hook":
            doc.update(deco.exit_hook_spec(d.attributes))
    steps = [(n.name, _step_doc(graph, n, filename, errors), n.func_lineno) for n in graph]
    if errors:
        result.errors = errors
        return result

    cl = graph.class_lineno
    emit = result
    emit.text_lines.append("{")
    emit.line_map.append(cl)
    for key, value in doc.items():
        emit.text_lines.append(f"{json.dumps(key)}: {json.dumps(value)},")
        emit.line_map.append(cl)
    for section, entries in (("parameters", params), ("steps", steps)):
        if section == "parameters" and not entries:
            continue
        emit.text_lines.append(f"{json.dumps(section)}: {{")
        emit.line_map.append(cl)
        for i, (name, value, line) in enumerate(entries):
            comma = "," if i + 1 < len(entries) else ""
            emit.text_lines.append(f"{json.dumps(name)}: {json.dumps(value)}{comma}")
            emit.line_map.append(line)
        emit.text_lines.append("}," if section == "parameters" else "}")
        emit.line_map.append(cl)
    emit.text_lines.append("}")
    emit.line_map.append(cl)
    return result


def main(argv: list[str] | None = None) -> int:
    """``python -m flowpack.describe FLOWFILE``: prints the JSON object, returns 0."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m flowpack.describe FLOWFILE", file=sys.stderr)
        return 2
    path = os.path.abspath(args[0])
    # The user's module may print while imported: keep stdout for the one JSON object.
    out = os.fdopen(os.dup(1), "w")
    sys.stdout.flush()
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    folder = os.path.dirname(path)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    result = describe(path)
    out.write(json.dumps(result.as_json()) + "\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
