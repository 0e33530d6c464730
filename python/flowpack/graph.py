"""The flow's graph, parsed from its source with ``ast``: no step code runs to find it.

Each step's LAST statement must be ``self.next(...)`` (``end`` and the exit hooks that
``@exit_hook`` names have none); its arguments give
the transition: linear, split, foreach or switch. :class:`FlowGraph` collects every mistake it
finds as a :class:`GraphError` with the flow file's line, walks the graph from ``start`` to
find which steps are joins and which foreaches enclose each step, and is what the describer
and the task runner share.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Callable, Iterator

from .decorators import hook_steps, step_decorators

# `typing` only for type checkers: importing it costs every task's start ~3 ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class GraphError:
    """A mistake in the flow, at a line (and column, 1-based; 0 when unknown) of a file."""

    __slots__ = ("line", "col", "message")

    def __init__(self, line: int, col: int, message: str) -> None:
        self.line = line
        self.col = col
        self.message = message

    def __repr__(self) -> str:
        return f"GraphError({self.line}, {self.col}, {self.message!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GraphError) and (self.line, self.col, self.message) == (
            other.line,
            other.col,
            other.message,
        )


class DAGNode:
    """One step as parsed from its source.

    Attributes:
        name: the step's name.
        func_lineno: the line of its ``def``.
        type: ``linear``, ``split``, ``foreach``, ``split-switch``, ``join`` (it takes
            ``inputs`` and goes to one step) or ``end``.
        out_funcs: the steps it goes to (a switch's cases in order).
        in_funcs: the steps that lead to it.
        has_inputs: it is declared ``def NAME(self, inputs)``.
        foreach_param: the artifact a foreach fans out over.
        condition: the artifact a switch chooses by.
        switch_cases: a switch's case values to steps.
        foreaches: the foreach steps that enclose this step, outermost first.
        next_lineno: the line of its ``self.next``.
    """

    def __init__(self, name: str, func_lineno: int, func: Callable[..., Any]) -> None:
        # A plain class, not a dataclass: `dataclasses` imports `inspect`, ~5 ms of every
        # task's start.
        self.name = name
        self.func_lineno = func_lineno
        self.func = func
        self.type = "linear"
        self.out_funcs: list[str] = []
        self.in_funcs: list[str] = []
        self.has_inputs = False
        self.foreach_param: str | None = None
        self.condition: str | None = None
        self.switch_cases: dict[str, str] = {}
        self.foreaches: list[str] = []
        self.next_lineno = 0


def _is_self_next(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "next"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "self"
    )


def _self_attr(node: ast.AST) -> str | None:
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    ):
        return node.attr
    return None


_FORMS = (
    "self.next(self.a), self.next(self.a, self.b), self.next(self.a, foreach='items') or "
    "self.next({'x': self.a, 'y': self.b}, condition='var')"
)


@functools.cache
def reserved_names() -> frozenset[str]:
    """Names a step or a parameter may not have: everything FlowSpec defines."""
    from .flowspec import FlowSpec

    return frozenset(n for n in dir(FlowSpec) if not n.startswith("_")) | {
        "run_id",
        "script_name",
    }


class FlowGraph:
    """The graph of a flow class whose source is in the file ``path``.

    Attributes:
        name: the flow's name (the class name).
        nodes: the steps by name, in source order.
        errors: every mistake found, with its line.
        class_lineno: the line of the ``class`` statement.
    """

    def __init__(self, flow_cls: type, path: str) -> None:
        self.name = flow_cls.__name__
        self.path = path
        self.errors: list[GraphError] = []
        self.nodes: dict[str, DAGNode] = {}
        self._trees: dict[str, ast.Module] = {}
        self._sources: dict[str, str] = {}
        self.class_lineno = self._class_line(flow_cls)
        # The exit hooks' steps: outside the graph, no self.next(...) (docs/python.md).
        self.hooks = set(hook_steps(flow_cls).values())
        self._parse(flow_cls)
        for must in ("start", "end"):
            if must not in self.nodes and not self.errors:
                self._error(
                    self.class_lineno,
                    0,
                    f"flow {self.name} has no step '{must}': every flow starts at "
                    "@step def start(self) and finishes at @step def end(self)",
                )
        self._link()
        if not self.errors:
            self._traverse()

    def __getitem__(self, name: str) -> DAGNode:
        return self.nodes[name]

    def __iter__(self) -> Iterator[DAGNode]:
        return iter(self.nodes.values())

    def __contains__(self, name: object) -> bool:
        return name in self.nodes

    def _error(self, line: int, col: int, message: str) -> None:
        self.errors.append(GraphError(line, col, message))

    def _tree(self, filename: str) -> ast.Module | None:
        if filename not in self._trees:
            try:
                with open(filename, encoding="utf-8") as f:
                    text = f.read()
                self._trees[filename] = ast.parse(text, filename)
                self._sources[filename] = text
            except (OSError, SyntaxError, ValueError):
                return None
        return self._trees[filename]

    def _source(self, filename: str | None = None) -> str:
        """The text of ``filename`` (the flow file by default), as parsed."""
        return self._sources.get(filename or self.path, "")

    def _class_line(self, cls: type) -> int:
        tree = self._tree(self.path)
        for node in ast.walk(tree) if tree else ():
            if isinstance(node, ast.ClassDef) and node.name == cls.__name__:
                return node.lineno
        return 1

    def _find_def(self, func: Callable[..., Any]) -> ast.FunctionDef | None:
        code = getattr(unwrap(func), "__code__", None)
        if code is None:
            return None
        tree = self._tree(code.co_filename)
        for node in ast.walk(tree) if tree else ():
            if isinstance(node, ast.FunctionDef) and node.name == code.co_name:
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                if code.co_firstlineno in (first, node.lineno):
                    return node
        return None

    def _parse(self, flow_cls: type) -> None:
        reserved = reserved_names()
        found: dict[str, Callable[..., Any]] = {}
        for klass in flow_cls.__mro__:
            for name, value in klass.__dict__.items():
                if callable(value) and getattr(value, "is_step", False):
                    found.setdefault(name, value)
        steps = []
        for name, func in found.items():
            node = self._find_def(func)
            if node is None:
                self._error(
                    self.class_lineno,
                    0,
                    f"step '{name}': its source was not found; define steps in a .py file",
                )
                continue
            if unwrap(func).__code__.co_filename != self.path:
                # An inherited step from another file: report at the class line.
                node.lineno = self.class_lineno
                node.col_offset = -1
            steps.append((node.lineno, name, func, node))
        for lineno, name, func, node in sorted(steps, key=lambda s: s[0]):
            if name in reserved:
                self._error(
                    lineno,
                    node.col_offset + 1,
                    f"step name '{name}' is reserved (FlowSpec defines it): choose another name",
                )
                continue
            self.nodes[name] = self._parse_step(name, func, node)

    def _check_assignments(self, name: str, body: list[ast.stmt]) -> None:
        """An assignment to ``self.<name FlowSpec defines>`` would fail when the step runs
        (as in Metaflow): say so at its line before anything runs."""
        reserved = reserved_names()
        for stmt in body:
            for n in _walk_no_defs(stmt):
                targets: list[ast.expr] = []
                if isinstance(n, ast.Assign):
                    targets = n.targets
                elif isinstance(n, (ast.AugAssign, ast.AnnAssign)):
                    targets = [n.target]
                for t in targets:
                    for a in ast.walk(t):
                        if (
                            isinstance(a, ast.Attribute)
                            and isinstance(a.value, ast.Name)
                            and a.value.id == "self"
                            and a.attr in reserved
                        ):
                            self._error(
                                a.lineno,
                                a.col_offset + 1,
                                f"step '{name}' assigns self.{a.attr}, which FlowSpec defines: "
                                "name the artifact differently",
                            )

    def _parse_step(self, name: str, func: Callable[..., Any], fn: ast.FunctionDef) -> DAGNode:
        node = DAGNode(name=name, func_lineno=fn.lineno, func=func)
        args = [a.arg for a in fn.args.posonlyargs + fn.args.args]
        extra = fn.args.vararg or fn.args.kwarg or fn.args.kwonlyargs
        if len(args) > 2 or extra or not args:
            self._error(
                fn.lineno,
                fn.col_offset + 1,
                f"step '{name}' must be def {name}(self) or, for a join, def {name}(self, inputs)",
            )
        node.has_inputs = len(args) == 2
        body = [s for s in fn.body if not _is_docstring(s)]
        self._check_assignments(name, body)
        calls = [
            n
            for stmt in body
            for n in _walk_no_defs(stmt)
            if isinstance(n, ast.Call) and _is_self_next(n)
        ]
        last = body[-1] if body else None
        last_call = last.value if isinstance(last, ast.Expr) and _is_self_next(last.value) else None
        if name == "end" or name in self.hooks:
            node.type = "end" if name == "end" else "hook"
            what = "the last step" if name == "end" else "an exit hook (it runs after the flow),"
            for call in calls:
                self._error(
                    call.lineno,
                    call.col_offset + 1,
                    f"step '{name}' is {what} and must not call self.next(...): remove it",
                )
            if node.has_inputs:
                self._error(
                    fn.lineno,
                    fn.col_offset + 1,
                    f"step '{name}' must be def {name}(self): "
                    + (
                        "join the branches in a step before it"
                        if name == "end"
                        else "an exit hook joins nothing"
                    ),
                )
            return node
        if last_call is None:
            if calls:
                self._error(
                    calls[0].lineno,
                    calls[0].col_offset + 1,
                    f"self.next(...) must be the last statement of step '{name}': move it to "
                    "the end of the step, out of any if, loop or with block",
                )
            else:
                self._error(
                    fn.lineno,
                    fn.col_offset + 1,
                    f"step '{name}' has no self.next(...): end it with a transition, "
                    f"e.g. self.next(self.end)",
                )
            return node
        for call in calls:
            if call is not last_call:
                self._error(
                    call.lineno,
                    call.col_offset + 1,
                    f"step '{name}' calls self.next(...) more than once: a step has one "
                    "transition, its last statement",
                )
        node.next_lineno = last_call.lineno
        self._parse_next(node, last_call)
        if node.has_inputs:
            node.type = "join" if node.type == "linear" else node.type
        return node

    def _parse_next(self, node: DAGNode, call: ast.Call) -> None:
        where = (call.lineno, call.col_offset + 1)
        kwargs = {}
        for kw in call.keywords:
            if kw.arg not in ("foreach", "condition") or not (
                isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str)
            ):
                self._error(
                    *where,
                    f"step '{node.name}': self.next(...) takes foreach='name' or "
                    f"condition='name' (an artifact name as a literal text); write {_FORMS}",
                )
                return
            kwargs[kw.arg] = kw.value.value
        args = call.args
        if len(args) == 1 and isinstance(args[0], ast.Dict):
            if "condition" not in kwargs or "foreach" in kwargs:
                self._error(
                    *where,
                    f"step '{node.name}': a switch self.next({{...}}) needs condition='name' "
                    "(and no foreach)",
                )
                return
            for k, v in zip(args[0].keys, args[0].values):
                target = _self_attr(v)
                if not (isinstance(k, ast.Constant) and isinstance(k.value, str)) or not target:
                    self._error(
                        *where,
                        f"step '{node.name}': each case of a switch is 'value': self.step",
                    )
                    return
                node.switch_cases[k.value] = target
            node.out_funcs = list(dict.fromkeys(node.switch_cases.values()))
            node.condition = kwargs["condition"]
            node.type = "split-switch"
            return
        targets = [_self_attr(a) for a in args]
        if not targets or None in targets or "condition" in kwargs:
            self._error(
                *where,
                f"step '{node.name}' has an invalid self.next(...) transition: write {_FORMS}",
            )
            return
        node.out_funcs = [t for t in targets if t]
        if "foreach" in kwargs:
            if len(node.out_funcs) != 1:
                self._error(
                    *where,
                    f"step '{node.name}': a foreach goes to exactly one step: "
                    f"self.next(self.body, foreach='{kwargs['foreach']}')",
                )
                return
            node.foreach_param = kwargs["foreach"]
            node.type = "foreach"
        elif len(node.out_funcs) > 1:
            node.type = "split"

    def _link(self) -> None:
        for node in self.nodes.values():
            for target in node.out_funcs:
                if target not in self.nodes:
                    import difflib  # only for this message: a task never needs it

                    close = difflib.get_close_matches(target, list(self.nodes), n=1)
                    hint = f" (did you mean self.{close[0]}?)" if close else ""
                    self._error(
                        node.next_lineno,
                        0,
                        f"step '{node.name}' goes to self.{target}, but the flow has no step "
                        f"'{target}'{hint}",
                    )
                else:
                    self.nodes[target].in_funcs.append(node.name)

    def _traverse(self) -> None:
        """Walks from ``start`` with the stack of open splits; finds misplaced joins."""
        if self.errors:
            return
        stacks: dict[str, tuple[tuple[str, int], ...]] = {}
        reported: set[str] = set()
        work: list[tuple[str, tuple[tuple[str, int], ...], str]] = [("start", (), "")]
        while work:
            name, stack, came_from = work.pop()
            node = self.nodes[name]
            if node.has_inputs:
                if not stack:
                    if name not in reported:
                        reported.add(name)
                        self._error(
                            node.func_lineno,
                            0,
                            f"step '{name}' takes inputs, so it is a join, but no split or "
                            f"foreach is open where it is reached (from '{came_from}'): "
                            f"declare it def {name}(self)",
                        )
                    continue
                here = stack[:-1]
            else:
                here = stack
            if name in stacks:
                if stacks[name] != here and name not in reported:
                    reported.add(name)
                    if node.has_inputs:
                        msg = (
                            f"join step '{name}' is reached from branches of different splits "
                            "or foreaches: each split and foreach needs its own join step"
                        )
                    else:
                        split = (stacks[name] or here)[-1][0]
                        msg = (
                            f"step '{name}' is reached from parallel branches (of '{split}') "
                            f"but takes no inputs: declare it as a join, def {name}(self, inputs)"
                        )
                    self._error(node.func_lineno, 0, msg)
                continue
            stacks[name] = here
            node.foreaches = [s for s, _ in here if self.nodes[s].type == "foreach"]
            for i, target in enumerate(node.out_funcs):
                if node.type in ("split", "foreach"):
                    child = here + ((name, i),)
                else:
                    child = here
                work.append((target, child, name))


def _is_docstring(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
    )


def _walk_no_defs(node: ast.AST) -> Iterator[ast.AST]:
    """``ast.walk`` without descending into nested functions, lambdas and classes."""
    yield node
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        yield from _walk_no_defs(child)


def step_function(flow_cls: type, name: str) -> Callable[..., Any]:
    """The function of step ``name`` of ``flow_cls``."""
    return static_attr(flow_cls, name)


def static_attr(cls: type, name: str, default: Any = None) -> Any:
    """``inspect.getattr_static`` for a class attribute: the value in the first class of
    the MRO that defines ``name``, no descriptor run. (``inspect`` costs every task ~5 ms
    to import.)"""
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return klass.__dict__[name]
    return default


def unwrap(func: Any) -> Any:
    """``inspect.unwrap``: the function under ``functools.wraps`` layers."""
    seen = set()
    while hasattr(func, "__wrapped__") and id(func) not in seen:
        seen.add(id(func))
        func = func.__wrapped__
    return func


__all__ = ["DAGNode", "FlowGraph", "GraphError", "reserved_names", "step_decorators"]
