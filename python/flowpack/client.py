"""The Client API: reading flows, runs, steps, tasks, artifacts and logs back from a store.

Modelled on Metaflow's client (``Flow``, ``Run``, ``Step``, ``Task``, ``DataArtifact``,
``namespace``, ``get_metadata``) with its names and behaviour where flowpack has the concept::

    from flowpack import Flow, Run
    run = Flow("TrainFlow").latest_successful_run
    print(run.data.model, run["train"].task.stdout)
    Run("TrainFlow/local-20260101T000000Z-ab12")["start"].task.data.alpha

This module owns the objects and their caching; it never reads a store itself. Every read
goes to one long-lived ``flowpack client --store URL`` process per store (JSON lines on its
stdin/stdout, see docs/python.md), so storage, credentials and record formats stay in
the binary, and reading 1,000 artifacts costs 1,000 pipe round trips, not 1,000 process
starts. Objects read nothing until asked; what cannot change any more (a finished run's
tasks, a committed task's artifacts, a finished task's logs) is cached per object.

The store is the ``store=`` argument, else ``$FLOWPACK_STORE`` (set inside a running step,
so a step reads its own store), else :func:`default_store` (the nearest ``.flowpack``
folder upward from the current folder).
"""

from __future__ import annotations

import atexit
import datetime
import json
import os
import pickle
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ._binary import BinaryError, binary, default_store

__all__ = [
    "DataArtifact",
    "Flow",
    "FlowpackNotFound",
    "Run",
    "Step",
    "Task",
    "TaskException",
    "default_namespace",
    "default_store",
    "get_metadata",
    "get_namespace",
    "namespace",
]


class FlowpackNotFound(KeyError):
    """A flow, run, step, task or artifact that the store does not have.

    A ``KeyError``, so ``except KeyError`` works; its text says what is missing and where
    (unlike KeyError's, it is not quoted).
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


# ---------------------------------------------------------------------------------------
# The channel to `flowpack client`.


class _Channel:
    """One ``flowpack client`` process serving the reads of one store, started on first use."""

    def __init__(self, store: str) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid = 0
        self._stderr: Any = None

    def _start(self) -> subprocess.Popen[bytes]:
        if self._proc is not None and self._pid == os.getpid() and self._proc.poll() is None:
            return self._proc
        # A forked child must not share its parent's pipes: it starts its own process.
        self._stderr = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(
            [binary(), "client", "--store", self.store],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        self._pid = os.getpid()
        return self._proc

    def _died(self) -> BinaryError:
        assert self._proc is not None
        code = self._proc.wait()
        self._stderr.seek(0)
        lines = self._stderr.read().decode(errors="replace").strip().splitlines()
        self._proc = None
        why = lines[-1] if lines else f"exit code {code}"
        return BinaryError(f"flowpack client --store {self.store} stopped: {why}")

    def _exchange(self, request: dict[str, Any]) -> tuple[Any, bytes | None]:
        with self._lock:
            proc = self._start()
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(json.dumps(request).encode() + b"\n")
                proc.stdin.flush()
            except BrokenPipeError:
                raise self._died() from None
            line = proc.stdout.readline()
            if not line:
                raise self._died()
            answer = json.loads(line)
            if "error" in answer:
                if answer.get("not_found"):
                    raise FlowpackNotFound(answer["error"])
                raise BinaryError(answer["error"])
            if request["op"] != "blob":
                return answer["ok"], None
            size = answer["ok"]["size"]
            data = proc.stdout.read(size)
            if len(data) != size:
                raise self._died()
            return None, data

    def request(self, op: str, **args: Any) -> Any:
        """The JSON answer of one request."""
        return self._exchange({"op": op, **args})[0]

    def blob(self, digest: str, size: int) -> bytes:
        """A file artifact's bytes, verified by the binary against ``digest``."""
        data = self._exchange({"op": "blob", "digest": digest, "size": size})[1]
        assert data is not None
        return data

    def close(self) -> None:
        """Ends the process (closing its stdin ends it)."""
        with self._lock:
            if self._proc is not None and self._pid == os.getpid():
                try:
                    if self._proc.stdin is not None:
                        self._proc.stdin.close()
                    self._proc.wait(timeout=5)
                except (OSError, subprocess.TimeoutExpired):
                    self._proc.kill()
            self._proc = None


_channels: dict[str, _Channel] = {}
_channels_lock = threading.Lock()
_folders: list[str] = []


def _resolve_store(store: str | None) -> str:
    """The store URL to read: ``store``, else :func:`default_store`; folders made absolute."""
    url = store if store else default_store()
    if "://" not in url:
        url = os.path.abspath(url)
    return url


def _channel(store: str) -> _Channel:
    with _channels_lock:
        if store not in _channels:
            _channels[store] = _Channel(store)
        return _channels[store]


@atexit.register
def _close_all() -> None:
    for ch in list(_channels.values()):
        ch.close()
    for folder in _folders:
        shutil.rmtree(folder, ignore_errors=True)


# ---------------------------------------------------------------------------------------
# Small helpers.

_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?$")


def _time(text: str | None) -> datetime.datetime | None:
    """An RFC 3339 time of a record as an aware datetime (UTC), None when absent."""
    if not text:
        return None
    m = _TIME.match(text)
    if not m:
        return None
    frac = (m.group(2) or "")[:6].ljust(6, "0")
    zone = m.group(3) or "Z"
    zone = "+00:00" if zone == "Z" else zone
    return datetime.datetime.fromisoformat(f"{m.group(1)}.{frac}{zone}").astimezone(
        datetime.timezone.utc
    )


def _split(pathspec: str, parts: int, what: str, example: str) -> list[str]:
    items = pathspec.split("/") if isinstance(pathspec, str) else []
    if len(items) != parts or not all(items):
        raise ValueError(f"{what} pathspec {pathspec!r} must be written {example}")
    return items


def _decode(data: bytes) -> Any:
    """An artifact's value: unpickled when its bytes are a pickle, else the bytes."""
    if data[:1] == b"\x80":
        return pickle.loads(data)
    return data


# File artifacts up to this size come through the pipe; larger ones are written to a
# private file by the binary (streamed, never whole in its memory) and unpickled from it.
_PIPE_MAX = 16 << 20


def _decode_file(path: Path) -> Any:
    """:func:`_decode` of a file's content, unpickling from the file without reading it whole
    into a second buffer."""
    with open(path, "rb") as f:
        if f.read(1) == b"\x80":
            f.seek(0)
            return pickle.load(f)
        f.seek(0)
        return f.read()


_namespace: str | None = None


def namespace(ns: str | None) -> str | None:
    """Switches the namespace: only ``None`` (every run) exists in flowpack.

    Metaflow filters runs by their ``user:``/``project:`` tags; flowpack records no users
    or tags, so every run of a store is visible and the only namespace is the global one.

    Raises:
        ValueError: ``ns`` is not None.
    """
    if ns is not None:
        raise ValueError(
            f"flowpack has no namespaces (runs carry no user or tags), so namespace({ns!r}) "
            "cannot filter anything: use namespace(None), the default; pick a store with "
            "store= or FLOWPACK_STORE to see other runs"
        )
    return None


def get_namespace() -> str | None:
    """The current namespace: always None (global) in flowpack."""
    return _namespace


def default_namespace() -> str | None:
    """Resets the namespace to the default, the global one (None), and returns it."""
    return namespace(None)


def get_metadata() -> str:
    """The store the client reads when no ``store=`` is given (Metaflow's metadata
    provider): ``$FLOWPACK_STORE``, else the nearest ``.flowpack`` folder upward."""
    return _resolve_store(None)


# ---------------------------------------------------------------------------------------
# The objects.


class _Object:
    """What every client object has: a pathspec, an id and the store it reads."""

    _what = "object"

    def __init__(self, pathspec: str, store: str) -> None:
        self.pathspec = pathspec
        self.id = pathspec.rsplit("/", 1)[-1]
        self.store = store

    def _ch(self) -> _Channel:
        return _channel(self.store)

    def __repr__(self) -> str:
        return f"{type(self).__name__}('{self.pathspec}')"

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is type(self)
            and other.pathspec == self.pathspec  # type: ignore[attr-defined]
            and other.store == self.store  # type: ignore[attr-defined]
        )

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.pathspec, self.store))


class Flow(_Object):
    """A flow of the store: its runs, newest first.

    Raises:
        FlowpackNotFound: the store has no run of a flow of this name.
    """

    def __init__(self, name: str, *, store: str | None = None) -> None:
        _split(name, 1, "a flow", "FLOW")
        super().__init__(name, _resolve_store(store))
        if name not in self._ch().request("flows"):
            raise FlowpackNotFound(f"flow '{name}' has no runs in the store {self.store}")

    def runs(self) -> Iterator[Run]:
        """Every run of the flow, newest first (one read for all of them)."""
        for info in self._ch().request("runs", flow=self.id):
            yield Run._of(info, self.store)

    def __iter__(self) -> Iterator[Run]:
        return self.runs()

    def __getitem__(self, run_id: str) -> Run:
        """The run ``run_id`` of this flow (``local-…``, ``kfp-<uuid>`` or ``argo-<uid>``)."""
        return Run(f"{self.id}/{run_id}", store=self.store)

    def __contains__(self, run_id: str) -> bool:
        try:
            self[run_id]
        except FlowpackNotFound:
            return False
        return True

    @property
    def latest_run(self) -> Run | None:
        """The newest run, whatever its state; None when there is none."""
        return next(self.runs(), None)

    @property
    def latest_successful_run(self) -> Run | None:
        """The newest run that succeeded; None when none did."""
        return next((r for r in self.runs() if r.successful), None)


class Run(_Object):
    """One run: ``Run('FLOW/RUN_ID')``; its steps by name (``run['train']``).

    Raises:
        FlowpackNotFound: the store has no such run.
    """

    def __init__(
        self, pathspec: str, *, store: str | None = None, _info: dict[str, Any] | None = None
    ) -> None:
        flow, _ = _split(pathspec, 2, "a run", "FLOW/RUN_ID")
        super().__init__(pathspec, _resolve_store(store))
        self.flow_name = flow
        self._cached = _info if _info is not None else self._read()

    @classmethod
    def _of(cls, info: dict[str, Any], store: str) -> Run:
        rec = info["record"]
        return cls(f"{rec['flow']}/{rec['run']}", store=store, _info=info)

    def _read(self) -> dict[str, Any]:
        try:
            return self._ch().request("run", run=self.pathspec)
        except FlowpackNotFound:
            raise FlowpackNotFound(
                f"run '{self.pathspec}' is not in the store {self.store}: "
                f"Flow('{self.flow_name}').runs() lists its runs"
            ) from None

    def _info(self) -> dict[str, Any]:
        """The run's record and tasks; read again while the run goes on."""
        if self._cached["status"] == "running":
            self._cached = self._read()
        return self._cached

    @property
    def successful(self) -> bool:
        """Whether the run succeeded (its ``end`` committed)."""
        return self._info()["status"] == "succeeded"

    @property
    def finished(self) -> bool:
        """Whether the run is over: it succeeded, or a task failed and none runs any more.

        (Metaflow's ``finished`` stays False for a failed run; flowpack knows it ended.)
        """
        return self._info()["status"] != "running"

    @property
    def status(self) -> str:
        """``succeeded``, ``failed`` or ``running``."""
        return str(self._info()["status"])

    @property
    def created_at(self) -> datetime.datetime | None:
        """When the run was created (UTC)."""
        return _time(self._cached["record"]["created_at"])

    @property
    def finished_at(self) -> datetime.datetime | None:
        """When the run ended: ``end``'s commit, or its last task's end for a failed run."""
        return _time(self._info().get("finished_at"))

    @property
    def parameters(self) -> dict[str, Any]:
        """The run's parameter values, defaults included."""
        return dict(self._cached["record"]["parameters"])

    @property
    def origin(self) -> str:
        """``local``, ``kfp`` or ``argo``: where the run ran."""
        return str(self._cached["record"]["origin"])

    @property
    def resumed_from(self) -> str | None:
        """The id of the run this one resumed, if any."""
        return self._cached["record"].get("resumed_from")

    @property
    def tags(self) -> frozenset[str]:
        """Empty: flowpack runs carry no tags (kept for Metaflow code that reads it)."""
        return frozenset()

    def _tasks(self) -> list[dict[str, Any]]:
        return list(self._info()["tasks"])

    def steps(self) -> Iterator[Step]:
        """The run's steps, in the order their first tasks started."""
        seen: list[str] = []
        for t in self._tasks():
            if t["step"] not in seen:
                seen.append(t["step"])
        for name in seen:
            yield Step(f"{self.pathspec}/{name}", store=self.store, _run=self)

    def __iter__(self) -> Iterator[Step]:
        return self.steps()

    def __getitem__(self, step: str) -> Step:
        """The step ``step`` of this run."""
        if not any(t["step"] == step for t in self._tasks()):
            names = sorted({t["step"] for t in self._tasks()})
            raise FlowpackNotFound(
                f"run '{self.pathspec}' has no task of a step '{step}' "
                f"(it has: {', '.join(names) or 'none yet'})"
            )
        return Step(f"{self.pathspec}/{step}", store=self.store, _run=self)

    def __contains__(self, step: str) -> bool:
        return any(t["step"] == step for t in self._tasks())

    @property
    def end_task(self) -> Task | None:
        """The ``end`` task, None until it exists."""
        return self["end"].task if "end" in self else None

    @property
    def data(self) -> _Data | None:
        """The artifacts of the ``end`` task (``run.data.model``); None until it committed."""
        end = self.end_task
        return end.data if end is not None and end.successful else None


class Step(_Object):
    """One step of a run: ``Step('FLOW/RUN_ID/STEP')``; its tasks (several after a foreach)."""

    def __init__(self, pathspec: str, *, store: str | None = None, _run: Run | None = None):
        flow, run_id, _ = _split(pathspec, 3, "a step", "FLOW/RUN_ID/STEP")
        super().__init__(pathspec, _resolve_store(store))
        self.run = _run if _run is not None else Run(f"{flow}/{run_id}", store=self.store)
        if _run is None:
            self.run[self.id]  # raises FlowpackNotFound for a step the run lacks

    def _infos(self) -> list[dict[str, Any]]:
        return [t for t in self.run._tasks() if t["step"] == self.id]

    def tasks(self) -> Iterator[Task]:
        """The step's tasks (foreach children in index order)."""
        infos = sorted(self._infos(), key=lambda t: _task_key(t["task"]))
        for info in infos:
            yield Task(f"{self.run.pathspec}/{info['task']}", store=self.store, _run=self.run)

    def __iter__(self) -> Iterator[Task]:
        return self.tasks()

    def __getitem__(self, task_id: str) -> Task:
        """The task ``task_id`` (``0``, or a foreach index such as ``3`` or ``3.1``)."""
        return Task(f"{self.pathspec}/{task_id}", store=self.store, _run=self.run)

    @property
    def task(self) -> Task | None:
        """The step's task (the first, for a foreach body); None when it has none yet."""
        return next(self.tasks(), None)

    @property
    def created_at(self) -> datetime.datetime | None:
        """When its first task started."""
        times = [t.created_at for t in self.tasks() if t.created_at]
        return min(times) if times else None

    @property
    def finished_at(self) -> datetime.datetime | None:
        """When its last task ended; None while one runs."""
        tasks = list(self.tasks())
        if not tasks or not all(t.finished_at for t in tasks):
            return None
        return max(t.finished_at for t in tasks if t.finished_at)


def _task_key(task: str) -> list[int]:
    """``step/3.1`` sorted by its numbers."""
    return [int(p) for p in task.split("/")[-1].split(".") if p.isdigit()]


class TaskException:
    """Why a task failed: ``type`` and ``message`` of the exception (from its traceback on
    stderr, for a Python step) and the ``traceback`` text."""

    def __init__(self, type: str, message: str, traceback: str) -> None:
        self.type = type
        self.message = message
        self.traceback = traceback

    def __repr__(self) -> str:
        return f"TaskException({self.type!r}, {self.message!r})"

    def __str__(self) -> str:
        return f"{self.type}: {self.message}" if self.message else self.type


class DataArtifact(_Object):
    """One artifact of a task: ``.data`` (its value), ``.sha`` (its digest), ``.size``."""

    def __init__(self, pathspec: str, store: str, ref: dict[str, Any]) -> None:
        super().__init__(pathspec, store)
        self.sha: str = ref["digest"]
        self.size: int = ref["size"]
        self.kind: str = ref["kind"]
        self.origin: str = ref["origin"]
        self._value: Any = None
        self._read = False

    @property
    def data(self) -> Any:
        """The value: unpickled when the bytes are a pickle (Python steps), else the bytes
        (a YAML step's file); a folder artifact is a ``pathlib.Path`` of a private copy,
        removed when the interpreter exits. Read once, then cached."""
        if not self._read:
            if self.kind == "dir":
                root = tempfile.mkdtemp(prefix="flowpack-artifact-")
                _folders.append(root)
                dest = Path(root) / self.id
                self._ch().request(
                    "save", digest=self.sha, size=self.size, kind="dir", dest=str(dest)
                )
                self._value = dest
            elif self.size <= _PIPE_MAX:
                self._value = _decode(self._ch().blob(self.sha, self.size))
            else:
                with tempfile.TemporaryDirectory(prefix="flowpack-artifact-") as root:
                    dest = Path(root) / self.id
                    self._ch().request(
                        "save", digest=self.sha, size=self.size, kind="file", dest=str(dest)
                    )
                    self._value = _decode_file(dest)
            self._read = True
        return self._value


class _Artifacts:
    """A task's artifacts by name: ``task.artifacts.model`` is a :class:`DataArtifact`."""

    def __init__(self, task: Task, refs: dict[str, Any]) -> None:
        self._task = task
        self._arts = {
            name: DataArtifact(f"{task.pathspec}/{name}", task.store, ref)
            for name, ref in refs.items()
        }

    def _get(self, name: str) -> DataArtifact:
        try:
            return self._arts[name]
        except KeyError:
            raise FlowpackNotFound(
                f"task '{self._task.pathspec}' has no artifact '{name}' "
                f"(it has: {', '.join(self._arts) or 'none'})"
            ) from None

    def __getattr__(self, name: str) -> DataArtifact:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._get(name)
        except FlowpackNotFound as e:
            raise AttributeError(str(e)) from None

    def __getitem__(self, name: str) -> DataArtifact:
        return self._get(name)

    def __contains__(self, name: str) -> bool:
        return name in self._arts

    def __iter__(self) -> Iterator[DataArtifact]:
        return iter(self._arts.values())

    def __len__(self) -> int:
        return len(self._arts)

    def __repr__(self) -> str:
        return f"<artifacts of {self._task.pathspec}: {', '.join(self._arts)}>"


class _Data:
    """A task's artifact values by name: ``task.data.model`` (read on first access)."""

    def __init__(self, artifacts: _Artifacts) -> None:
        self._artifacts = artifacts

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._artifacts._get(name).data
        except FlowpackNotFound as e:
            raise AttributeError(str(e)) from None

    def __getitem__(self, name: str) -> Any:
        return self._artifacts._get(name).data

    def __contains__(self, name: str) -> bool:
        return name in self._artifacts

    def __dir__(self) -> list[str]:
        return [a.id for a in self._artifacts]

    def __repr__(self) -> str:
        return f"<data of {self._artifacts._task.pathspec}: {', '.join(dir(self))}>"


class Task(_Object):
    """One task: ``Task('FLOW/RUN_ID/STEP/TASK_ID')``; its artifacts, logs and state."""

    def __init__(self, pathspec: str, *, store: str | None = None, _run: Run | None = None):
        flow, run_id, step, task = _split(pathspec, 4, "a task", "FLOW/RUN_ID/STEP/TASK_ID")
        super().__init__(pathspec, _resolve_store(store))
        self.run = _run if _run is not None else Run(f"{flow}/{run_id}", store=self.store)
        self.step_name = step
        self._name = f"{step}/{task}"
        self._done: dict[str, Any] | None = None
        self._artifacts: _Artifacts | None = None
        self._logs: list[dict[str, str]] | None = None
        self._info()  # raises FlowpackNotFound for a task the run lacks

    def _info(self) -> dict[str, Any]:
        if self._done is not None:
            return self._done
        for t in self.run._tasks():
            if t["task"] == self._name:
                if t["attempts"] and t["attempts"][-1]["record"].get("finished_at"):
                    self._done = t
                return dict(t)
        raise FlowpackNotFound(
            f"run '{self.run.pathspec}' has no task '{self._name}' "
            f"(it has: {', '.join(t['task'] for t in self.run._tasks()) or 'none yet'})"
        )

    def _last(self) -> dict[str, Any]:
        attempts = self._info()["attempts"]
        return attempts[-1]["record"] if attempts else {}

    @property
    def successful(self) -> bool:
        """Whether its newest attempt succeeded (its outputs are committed)."""
        attempts = self._info()["attempts"]
        return bool(attempts) and (
            attempts[-1]["committed"] or attempts[-1]["record"]["status"] in ("succeeded", "reused")
        )

    @property
    def finished(self) -> bool:
        """Whether its newest attempt ended (succeeded, failed, timed out, stopped, lost)."""
        return self._last().get("status", "running") != "running"

    @property
    def status(self) -> str:
        """The newest attempt's status (``succeeded``, ``failed``, ``running``, …)."""
        return "succeeded" if self.successful else str(self._last().get("status", "running"))

    @property
    def created_at(self) -> datetime.datetime | None:
        """When its first attempt started."""
        attempts = self._info()["attempts"]
        return _time(attempts[0]["record"]["started_at"]) if attempts else None

    @property
    def finished_at(self) -> datetime.datetime | None:
        """When its newest attempt ended."""
        return _time(self._last().get("finished_at"))

    @property
    def current_attempt(self) -> int:
        """The newest attempt's number, from 0."""
        return int(self._last().get("attempt", 0))

    @property
    def index(self) -> int | None:
        """Its index in the foreach that made it, None outside a foreach."""
        return self._last().get("split_index")

    @property
    def exit_code(self) -> int | None:
        """The newest attempt's exit code (docs/runtime.md), None while it runs."""
        return self._last().get("exit_code")

    @property
    def artifacts(self) -> _Artifacts:
        """Its committed artifacts (inherited ones included) as :class:`DataArtifact`s."""
        if self._artifacts is None:
            arts = _Artifacts(self, self._info()["artifacts"])
            if not self.successful:
                return arts
            self._artifacts = arts
        return self._artifacts

    @property
    def data(self) -> _Data:
        """Its artifact values by name: ``task.data.x`` reads ``x`` on first access."""
        return _Data(self.artifacts)

    def __getitem__(self, name: str) -> DataArtifact:
        return self.artifacts[name]

    def __contains__(self, name: str) -> bool:
        return name in self.artifacts

    def __iter__(self) -> Iterator[DataArtifact]:
        return iter(self.artifacts)

    @property
    def parent_tasks(self) -> list[Task]:
        """The tasks whose artifacts it started from (a join's in foreach order)."""
        return [
            Task(f"{self.run.pathspec}/{p}", store=self.store, _run=self.run)
            for p in self._last().get("parents", [])
        ]

    def _log(self) -> list[dict[str, str]]:
        if self._logs is not None:
            return self._logs
        if not self._info()["attempts"]:
            return []
        lines = self._ch().request(
            "logs", run=self.run.pathspec, task=self._name, attempt=self.current_attempt
        )
        if self.finished:
            self._logs = lines
        return list(lines)

    def loglines(self, stream: str = "stdout") -> Iterator[tuple[datetime.datetime | None, str]]:
        """``(time, line)`` of its newest attempt's ``stdout`` or ``stderr``."""
        for line in self._log():
            if line["stream"] == stream:
                yield _time(line["time"]), line["text"]

    def _text(self, stream: str) -> str:
        return "".join(text + "\n" for _, text in self.loglines(stream))

    @property
    def stdout(self) -> str:
        """What its newest attempt printed on stdout."""
        return self._text("stdout")

    @property
    def stderr(self) -> str:
        """What its newest attempt printed on stderr."""
        return self._text("stderr")

    @property
    def exception(self) -> TaskException | None:
        """Why it failed, None unless it failed: the last Python traceback on its stderr
        (type, message, text), else flowpack's own error or the exit code."""
        if self.successful or not self.finished:
            return None
        lines = self.stderr.splitlines()
        starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent")]
        if starts:
            tb = lines[starts[-1] :]
            last = next((line for line in reversed(tb) if line.strip()), "")
            kind, _, message = last.partition(": ")
            return TaskException(kind.strip(), message.strip(), "\n".join(tb) + "\n")
        rec = self._last()
        if rec.get("error"):
            return TaskException("FlowpackError", str(rec["error"]), "")
        return TaskException(
            str(rec.get("status", "failed")), f"exit code {rec.get('exit_code')}", ""
        )
