"""``FlowSpec``: the base class of a Python flow, and a task's view of its artifacts.

A step is a method; what it sets on ``self`` are its artifacts. This module owns how that
works inside a task (:class:`TaskContext` is bound by ``flowpack.task``):

- reading ``self.x`` unpickles ``$FLOWPACK_INPUT_DIR/x`` on first access (lazy: an artifact
  no step reads is never opened);
- ``self.next(...)`` records the transition (the graph itself comes from the source);
- joins get :class:`Inputs`; ``merge_artifacts`` follows Metaflow's rules, comparing the
  artifacts' bytes;
- foreach bodies get ``self.input``, ``self.index``, ``self.foreach_stack()``;
- at the step's end :meth:`FlowSpec._flowpack_outputs` pickles what the step set (and what it
  read and changed in place) — all in memory first, so an unpicklable value fails the step
  before anything is written.

Outside a task a FlowSpec has no artifacts; constructing it in the ``__main__`` module (the
``if __name__ == "__main__": MyFlow()`` idiom) runs the command line (``flowpack.cli``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

from .exception import FlowpackException, MergeArtifactsError
from .parameters import Parameter

# `typing` only for type checkers: importing it costs every task's start ~3 ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

if TYPE_CHECKING:
    from .graph import FlowGraph

PICKLE_PROTOCOL = max(4, pickle.HIGHEST_PROTOCOL)


def decode_artifact(data: bytes) -> Any:
    """An artifact's value from its bytes: a pickle (starting ``\\x80``) is unpickled; any
    other file (a YAML flow's artifact) is returned as bytes."""
    if data[:1] == b"\x80":
        return pickle.loads(data)
    return data


def _item(seq: Any, i: int) -> Any:
    try:
        return seq[i]
    except (TypeError, KeyError):
        return list(seq)[i]


class OnDemandInputs:
    """A step with ``lazy_inputs`` (every Python step): ``flowpack step`` wrote only the index
    of the inputs folder, ``$FLOWPACK_INPUT_DIR/.flowpack-inputs.json``, and places each
    input when asked through ``$FLOWPACK_INPUTS_SOCKET`` (docs/runtime.md, "Inputs on
    demand") — so an artifact no step reads is never downloaded."""

    INDEX = ".flowpack-inputs.json"

    def __init__(self, input_dir: Path, socket_path: str) -> None:
        self.input_dir = input_dir
        self.index: dict[str, dict[str, Any]] = json.loads((input_dir / self.INDEX).read_bytes())
        self._socket_path = socket_path
        self._conn: Any = None

    @classmethod
    def of(cls, input_dir: Path | None) -> OnDemandInputs | None:
        """The index of ``input_dir`` when the task's inputs come on demand, else None."""
        socket_path = os.environ.get("FLOWPACK_INPUTS_SOCKET")
        if input_dir is None or not socket_path or not (input_dir / cls.INDEX).is_file():
            return None
        return cls(input_dir, socket_path)

    def fetch(self, rel: str) -> None:
        """Has ``flowpack step`` place input ``rel`` (a path of the index) in the folder.

        Raises:
            FlowpackException: it could not (the store's or the cache's error).
        """
        if self._conn is None:
            import socket

            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(self._socket_path)
            self._conn = sock.makefile("rwb")
        self._conn.write(rel.encode() + b"\n")
        self._conn.flush()
        answer = self._conn.readline().decode(errors="replace").rstrip("\n")
        if answer != "ok":
            raise FlowpackException(f"input '{rel}' could not be restored: {answer}")


class Namespace:
    """A folder of artifacts (one task's namespace), read lazily, one file per artifact.

    With inputs on demand, ``prefix`` is the folder's path in the index (``train_a`` or
    ``3`` for a join's parent, none for the top) and a file is placed when first needed."""

    def __init__(
        self,
        folder: Path | None,
        on_demand: OnDemandInputs | None = None,
        prefix: str | None = None,
    ) -> None:
        self.folder = folder
        self.on_demand = on_demand
        self.prefix = prefix

    def _rel(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def has(self, name: str) -> bool:
        """Whether the artifact exists (nothing is placed to find out)."""
        if self.on_demand is not None:
            return self._rel(name) in self.on_demand.index
        return self.path(name) is not None

    def path(self, name: str) -> Path | None:
        """The artifact's file or folder, if it exists (placed first, on demand)."""
        if self.folder is None or not name or "/" in name or name in (".", ".."):
            return None
        p = self.folder / name
        if self.on_demand is not None and self._rel(name) in self.on_demand.index:
            if not p.exists():
                self.on_demand.fetch(self._rel(name))
            return p
        return p if p.exists() else None

    def names(self) -> list[str]:
        """The artifacts' names (hidden ``.foreach``/``.switch`` files and subfolders of other
        parents' namespaces at a join are not artifacts of a step)."""
        if self.on_demand is not None:
            depth = 1 if self.prefix else 0
            found = (
                rel.split("/")
                for rel in self.on_demand.index
                if rel.count("/") == depth
                and (not self.prefix or rel.startswith(self.prefix + "/"))
            )
            return sorted(parts[-1] for parts in found if parts[-1].isidentifier())
        if self.folder is None or not self.folder.is_dir():
            return []
        return sorted(p.name for p in self.folder.iterdir() if p.name.isidentifier())

    def load(self, name: str) -> tuple[Any, str]:
        """The artifact's value and ``PROTOCOL:SHA256`` of its bytes ("" when not a pickle).

        Raises:
            KeyError: no such artifact.
        """
        p = self.path(name)
        if p is None:
            raise KeyError(name)
        if p.is_dir():
            return p, ""
        data = p.read_bytes()
        if data[:1] != b"\x80":
            return data, ""
        # The protocol goes with the digest: re-pickling with it reproduces the bytes of an
        # unchanged value.
        return pickle.loads(data), f"{data[1]}:{_sha256(data)}"

    def digest(self, name: str) -> str:
        """A digest of the artifact's content (for ``merge_artifacts``): the store's, with
        inputs on demand (nothing is placed to compare)."""
        if self.on_demand is not None:
            entry = self.on_demand.index.get(self._rel(name))
            if entry is None:
                raise KeyError(name)
            return str(entry["digest"])
        p = self.path(name)
        if p is None:
            raise KeyError(name)
        import hashlib

        h = hashlib.sha256()
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                h.update(str(f.relative_to(p)).encode() + b"\0")
                if f.is_file():
                    h.update(f.read_bytes())
        else:
            with open(p, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
        return h.hexdigest()


class TaskContext:
    """Everything a task knows about where it runs (docs/runtime.md, "What the child sees").

    Attributes:
        graph: the flow's graph.
        step: the step being run.
        task_id: the task's id (``0``, or foreach indices ``3.1``).
        top: the inherited namespace (top of ``$FLOWPACK_INPUT_DIR``).
        params: the parameters' values by name, as a step sees them.
        parents: the parent tasks, ``STEP/TASK``, in order.
        split_index: ``$FLOWPACK_SPLIT_INDEX``, inside a foreach.
    """

    def __init__(
        self,
        graph: FlowGraph,
        step: str,
        task_id: str,
        input_dir: Path | None,
        params: dict[str, Any],
        parents: list[str],
        split_index: int | None,
    ) -> None:
        self.graph = graph
        self.step = step
        self.node = graph[step]
        self.task_id = task_id
        self.input_dir = input_dir
        self.on_demand = OnDemandInputs.of(input_dir)
        self.top = Namespace(input_dir, self.on_demand)
        self.params = params
        self.parents = parents
        self.split_index = split_index

    def foreach_indices(self) -> list[int]:
        """The index of this task in each enclosing foreach, outermost first."""
        depth = len(self.node.foreaches)
        if depth == 0:
            return []
        parts = self.task_id.split(".")
        if len(parts) == depth and all(p.isdigit() for p in parts):
            return [int(p) for p in parts]
        if depth == 1 and self.split_index is not None:
            return [self.split_index]
        raise FlowpackException(
            f"step '{self.step}' is inside {depth} foreach(es) but its task id is "
            f"'{self.task_id}': flowpack step gives foreach tasks ids like 3 or 3.1"
        )


class FlowSpec:
    """The base class of a flow: subclass it and write ``@step`` methods.

    Args:
        use_cli: run the command line when the class is defined in ``__main__`` (the
            ``python flow.py run`` idiom); False builds the object only.
    """

    def __init__(self, use_cli: bool = True) -> None:
        object.__setattr__(self, "_fp_ctx", None)
        object.__setattr__(self, "_fp_set", {})
        object.__setattr__(self, "_fp_loaded", {})
        object.__setattr__(self, "_fp_merged", {})
        object.__setattr__(self, "_fp_transition", None)
        if use_cli and type(self).__module__ == "__main__":
            from .cli import main

            main(type(self))

    # -- the task's state -------------------------------------------------------------------

    def _flowpack_bind(self, ctx: TaskContext) -> None:
        object.__setattr__(self, "_fp_ctx", ctx)

    def _flowpack_parameter(self, param: Parameter) -> Any:
        ctx = self.__dict__.get("_fp_ctx")
        if ctx is None or param.name not in ctx.params:
            return param.default
        return ctx.params[param.name]

    @property
    def name(self) -> str:
        """The flow's name: its class name."""
        return type(self).__name__

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        ctx: TaskContext | None = self.__dict__.get("_fp_ctx")
        if ctx is None:
            raise AttributeError(
                f"flow {type(self).__name__} has no attribute '{name}' (artifacts exist only "
                "while a step runs)"
            )
        merged = self.__dict__["_fp_merged"]
        if name in merged:
            value, _ = Namespace(merged[name].parent).load(name)
        else:
            try:
                value, digest = ctx.top.load(name)
            except KeyError:
                hint = (
                    f"; at a join, read it from an input (inputs[0].{name}) or merge the "
                    "inputs' artifacts first with self.merge_artifacts(inputs)"
                    if ctx.node.has_inputs
                    else ""
                )
                raise AttributeError(
                    f"step '{ctx.step}' reads self.{name}, but no step before it set it{hint}"
                ) from None
            self.__dict__["_fp_loaded"][name] = digest
        object.__setattr__(self, name, value)
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        from .graph import static_attr

        static = static_attr(type(self), name)
        if isinstance(static, Parameter):
            static.__set__(self, value)
        if not name.startswith("_"):
            from .graph import reserved_names

            if name in reserved_names():
                raise AttributeError(
                    f"self.{name} is reserved (FlowSpec defines it): name the artifact differently"
                )
            if getattr(static, "is_step", False):
                raise AttributeError(
                    f"self.{name} is a step of the flow: name the artifact differently"
                )
        object.__setattr__(self, name, value)
        if not name.startswith("_"):
            self.__dict__["_fp_set"][name] = None
            self.__dict__["_fp_merged"].pop(name, None)

    def __delattr__(self, name: str) -> None:
        if name in self.__dict__.get("_fp_set", {}):
            del self.__dict__["_fp_set"][name]
            object.__delattr__(self, name)
            return
        raise AttributeError(
            f"del self.{name}: only an artifact set in this step can be deleted; an inherited "
            "one is passed on by the runtime"
        )

    # -- transitions --------------------------------------------------------------------------

    def next(self, *dsts: Any, foreach: str | None = None, condition: str | None = None) -> None:
        """Names the next step(s): ``self.next(self.a)``, a split ``self.next(self.a,
        self.b)``, a foreach ``self.next(self.body, foreach='items')`` or a switch
        ``self.next({'x': self.a, 'y': self.b}, condition='var')``. The last statement of
        every step but ``end``.

        Raises:
            FlowpackException: called twice, or the foreach or switch value is unusable.
        """
        ctx: TaskContext | None = self.__dict__.get("_fp_ctx")
        step = ctx.step if ctx else "?"
        if self.__dict__.get("_fp_transition") is not None:
            raise FlowpackException(f"step '{step}' called self.next(...) twice")
        hidden: dict[str, bytes] = {}
        if foreach is not None:
            try:
                items = list(getattr(self, foreach))
            except AttributeError:
                raise FlowpackException(
                    f"step '{step}': foreach='{foreach}' names no artifact: set self.{foreach} "
                    "to a list before self.next(...)"
                ) from None
            except TypeError:
                raise FlowpackException(
                    f"step '{step}': foreach='{foreach}': self.{foreach} is not iterable; "
                    "give it a list"
                ) from None
            if not items:
                raise FlowpackException(
                    f"step '{step}': foreach='{foreach}': self.{foreach} is empty; a foreach "
                    "needs at least one item"
                )
            hidden[f"{foreach}.foreach"] = json.dumps([_foreach_label(i) for i in items]).encode()
        if condition is not None:
            try:
                value = getattr(self, condition)
            except AttributeError:
                raise FlowpackException(
                    f"step '{step}': condition='{condition}' names no artifact: set "
                    f"self.{condition} before self.next(...)"
                ) from None
            choice = str(value)
            cases = dsts[0] if dsts and isinstance(dsts[0], dict) else {}
            if choice not in cases:
                raise FlowpackException(
                    f"step '{step}': self.{condition} is {choice!r}, which is not a case of "
                    f"the switch (cases: {', '.join(map(repr, cases))})"
                )
            if "\n" in choice:
                raise FlowpackException(
                    f"step '{step}': self.{condition} must be one line of text, not {choice!r}"
                )
            hidden[f"{condition}.switch"] = choice.encode()
        object.__setattr__(self, "_fp_transition", (dsts, hidden))

    # -- foreach ------------------------------------------------------------------------------

    def _fp_foreach(self) -> list[tuple[int, int | None, Any]]:
        ctx: TaskContext | None = self.__dict__.get("_fp_ctx")
        if ctx is None or not ctx.node.foreaches:
            return []
        cache = self.__dict__.get("_fp_stack")
        if cache is not None:
            return cache
        out = []
        for fstep, idx in zip(ctx.node.foreaches, ctx.foreach_indices()):
            var = ctx.graph[fstep].foreach_param or ""
            seq, _ = ctx.top.load(var)
            labels = ctx.top.path(f"{var}.foreach")
            num = len(json.loads(labels.read_bytes())) if labels and labels.is_file() else None
            out.append((idx, num, _item(seq, idx)))
        object.__setattr__(self, "_fp_stack", out)
        return out

    @property
    def input(self) -> Any:
        """Inside a foreach: this task's item of the innermost foreach (None outside)."""
        stack = self._fp_foreach()
        return stack[-1][2] if stack else None

    @property
    def index(self) -> int | None:
        """Inside a foreach: this task's index in the innermost foreach (None outside)."""
        stack = self._fp_foreach()
        return stack[-1][0] if stack else None

    def foreach_stack(self) -> list[tuple[int, int | None, Any]]:
        """``(index, num_splits, value)`` of each enclosing foreach, outermost first.

        ``num_splits`` is the length of the foreach's list (None when the hidden
        ``<var>.foreach`` artifact is not available); ``value`` is this task's item, read from
        the foreach step's artifact.
        """
        return list(self._fp_foreach())

    # -- joins --------------------------------------------------------------------------------

    def merge_artifacts(
        self,
        inputs: Inputs,
        exclude: list[str] | None = None,
        include: list[str] | None = None,
    ) -> None:
        """Carries the inputs' artifacts past a join (Metaflow's rules).

        An artifact is merged when every input that has it has the same value (compared as
        bytes); artifacts this step set already, parameters, and those equal in every input
        (already inherited) are left alone. ``include`` merges only those names (each must be
        in some input); ``exclude`` merges all others.

        Raises:
            FlowpackException: not a join, or include and exclude both given.
            MergeArtifactsError: conflicting values, or an included name no input has.
        """
        ctx: TaskContext | None = self.__dict__.get("_fp_ctx")
        if ctx is None or not ctx.node.has_inputs:
            raise FlowpackException(
                "merge_artifacts can only be called in a join step (def NAME(self, inputs))"
            )
        include = list(include or [])
        exclude = list(exclude or [])
        if include and exclude:
            raise FlowpackException(
                "merge_artifacts: `exclude` and `include` are mutually exclusive; give one"
            )
        params = {p.name for p in flow_parameters(type(self))}
        mine = self.__dict__["_fp_set"]
        to_merge: dict[str, tuple[Input, str]] = {}
        conflicts: dict[str, list[str]] = {}
        for inp in inputs:
            for var in inp._fp_ns.names():
                if var in exclude or (include and var not in include):
                    continue
                if var in mine or var in params or ctx.top.has(var):
                    continue
                digest = inp._fp_ns.digest(var)
                first = to_merge.setdefault(var, (inp, digest))
                if first[1] != digest:
                    who = conflicts.setdefault(var, [first[0]._fp_label])
                    who.append(inp._fp_label)
        if conflicts:
            detail = "; ".join(
                f"{v} (differs between {', '.join(w)})" for v, w in conflicts.items()
            )
            raise MergeArtifactsError(
                f"step '{ctx.step}' cannot merge the following artifacts due to them having "
                f"conflicting values: {detail}. Set them explicitly (self.<name> = ...) before "
                "calling merge_artifacts, or leave them out with exclude=[...]",
                list(conflicts),
            )
        missing = [v for v in include if v not in to_merge and v not in mine and not ctx.top.has(v)]
        if missing:
            raise MergeArtifactsError(
                f"step '{ctx.step}' asks merge_artifacts to include [{', '.join(missing)}], "
                "which no input has: include only artifacts that come from at least one branch",
                missing,
            )
        for var, (inp, _) in to_merge.items():
            path = inp._fp_ns.path(var)
            if path is not None:
                self.__dict__["_fp_merged"][var] = path
                self.__dict__.pop(var, None)

    # -- the step's end -----------------------------------------------------------------------

    def _flowpack_outputs(self) -> dict[str, bytes | Path]:
        """The files to write to ``$FLOWPACK_OUTPUT_DIR``: each set artifact pickled, each
        inherited artifact read and changed in place, each merged one, and the hidden
        ``.foreach``/``.switch`` artifacts.

        Raises:
            FlowpackException: a value cannot be pickled (the message names it).
        """
        ctx: TaskContext | None = self.__dict__.get("_fp_ctx")
        step = ctx.step if ctx else "?"
        out: dict[str, bytes | Path] = {}
        for name in self.__dict__["_fp_set"]:
            value = self.__dict__[name]
            try:
                out[name] = pickle.dumps(value, protocol=PICKLE_PROTOCOL)
            except Exception as e:  # noqa: BLE001 - any pickling failure names the artifact
                raise FlowpackException(
                    f"step '{step}': artifact self.{name} cannot be pickled "
                    f"({type(e).__name__}: {e}); every attribute a step sets is stored with "
                    f"pickle: keep it in a local variable, or name it self._{name} to keep it "
                    "out of the artifacts"
                ) from None
        for name, digest in self.__dict__["_fp_loaded"].items():
            if name in out or name not in self.__dict__ or not digest:
                continue
            protocol, _, sha = digest.partition(":")
            data = _pickle_or_none(self.__dict__[name], int(protocol))
            if data is None:
                continue  # it was read as is and cannot be stored again: nothing to write
            if _sha256(data) != sha:
                out[name] = data
        for name, path in self.__dict__["_fp_merged"].items():
            out.setdefault(name, path)
        transition = self.__dict__.get("_fp_transition")
        if transition:
            out.update(transition[1])
        return out


def _pickle_or_none(value: Any, protocol: int) -> bytes | None:
    try:
        return pickle.dumps(value, protocol=max(2, min(protocol, pickle.HIGHEST_PROTOCOL)))
    except Exception:  # noqa: BLE001 - the caller treats any failure alike
        return None


def _foreach_label(item: Any) -> Any:
    if item is None or isinstance(item, (str, int, float, bool)):
        return item
    return repr(item)[:200]


class Input:
    """One parent of a join: its artifacts, read lazily (``inputs[0].score``)."""

    def __init__(
        self,
        flow: FlowSpec,
        label: str,
        ns: Namespace,
        index: int | None,
        foreach_var: str | None,
    ) -> None:
        object.__setattr__(self, "_fp_flow", flow)
        object.__setattr__(self, "_fp_label", label)
        object.__setattr__(self, "_fp_ns", ns)
        object.__setattr__(self, "_fp_index", index)
        object.__setattr__(self, "_fp_var", foreach_var)

    @property
    def index(self) -> int | None:
        """The parent's index in the foreach this join closes (None after a split)."""
        return self._fp_index

    @property
    def input(self) -> Any:
        """The parent's foreach item (None after a split)."""
        if self._fp_index is None or not self._fp_var:
            return None
        return _item(getattr(self, self._fp_var), self._fp_index)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        for p in flow_parameters(type(self._fp_flow)):
            if p.attr == name:
                return getattr(self._fp_flow, name)
        try:
            value, _ = self._fp_ns.load(name)
        except KeyError:
            raise AttributeError(f"input {self._fp_label} has no artifact '{name}'") from None
        object.__setattr__(self, name, value)
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(
            f"the inputs of a join are read-only: set self.{name} on the join step instead"
        )

    def __repr__(self) -> str:
        return f"Input({self._fp_label})"


class Inputs:
    """The parents of a join, in order (a foreach's in index order): iterate them, index them
    (``inputs[0]``), or name a split's branch by its step (``inputs.train_a``)."""

    def __init__(self, items: list[Input], steps: list[str]) -> None:
        self._items = items
        self._steps = steps

    def __iter__(self) -> Iterator[Input]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, i: int) -> Input:
        return self._items[i]

    def __getattr__(self, name: str) -> Input:
        if name.startswith("_"):
            raise AttributeError(name)
        for step, item in zip(self._steps, self._items):
            if step == name:
                return item
        raise AttributeError(
            f"the join has no input from step '{name}'; its inputs come from "
            f"{', '.join(dict.fromkeys(self._steps))}"
        )

    def __repr__(self) -> str:
        return f"Inputs({self._items})"


def build_inputs(flow: FlowSpec, ctx: TaskContext) -> Inputs:
    """The :class:`Inputs` of a join from ``$FLOWPACK_PARENTS`` and the inputs folder."""
    parents = ctx.parents
    if not parents and ctx.input_dir is not None:
        # Without the parents' list (a hand-made task), take the folders as they are.
        parents = [f"{d.name}/{d.name}" for d in sorted(ctx.input_dir.iterdir()) if d.is_dir()]
    steps = [p.split("/", 1)[0] for p in parents]
    foreach = len(set(steps)) == 1 and len(parents) > 1
    items = []
    for parent, step in zip(parents, steps):
        task = parent.split("/", 1)[1] if "/" in parent else "0"
        last = task.rsplit(".", 1)[-1]
        label = None if len(parents) == 1 else (last if foreach else step)
        folder = ctx.input_dir / label if ctx.input_dir and label else ctx.input_dir
        index = None
        var = None
        pnode = ctx.graph.nodes.get(step)
        if (
            pnode is not None
            and pnode.foreaches
            and (len(pnode.foreaches) > len(ctx.node.foreaches))
        ):
            var = ctx.graph[pnode.foreaches[-1]].foreach_param
            index = int(last) if last.isdigit() else None
        items.append(Input(flow, parent, Namespace(folder, ctx.on_demand, label), index, var))
    return Inputs(items, steps)


def flow_parameters(flow_cls: type) -> list[Parameter]:
    """The flow's parameters (its own and its bases'), in the order they are defined."""
    seen: dict[str, Parameter] = {}
    for klass in reversed(flow_cls.__mro__):
        for attr, value in klass.__dict__.items():
            if isinstance(value, Parameter):
                seen[attr] = value
    return list(seen.values())


def load_flow(path: str) -> tuple[ModuleType, type]:
    """Imports the flow file ``path`` (as module ``<its stem>``, its top-level code runs, no
    step runs) and finds the one FlowSpec subclass it defines.

    Raises:
        FlowpackException: no flow class, or several.
        Exception: whatever importing the module raised.
    """
    stem = Path(path).stem
    name = (
        stem
        if stem.isidentifier() and stem not in sys.modules
        else f"flowpack_flow_{abs(hash(path))}"
    )
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise FlowpackException(f"{path} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    classes = [
        v
        for v in vars(module).values()
        if isinstance(v, type) and issubclass(v, FlowSpec) and v.__module__ == name
    ]
    leaves = [c for c in classes if not any(o is not c and issubclass(o, c) for o in classes)]
    if not leaves:
        raise FlowpackException(
            f"{os.path.basename(path)} defines no flow: write class MyFlow(FlowSpec) with "
            "@step methods",
            line=1,
        )
    if len(leaves) > 1:
        import inspect  # for this error's line only

        names = ", ".join(c.__name__ for c in leaves)
        raise FlowpackException(
            f"{os.path.basename(path)} defines several flows ({names}): put each flow in its "
            "own file",
            line=inspect.getsourcelines(leaves[1])[1],
        )
    return module, leaves[0]


def _sha256(data: bytes) -> str:
    """The hex SHA-256 of ``data`` (``hashlib`` imported when first needed: most tasks
    never compare an artifact)."""
    import hashlib

    return hashlib.sha256(data).hexdigest()
