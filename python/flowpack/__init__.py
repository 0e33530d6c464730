"""flowpack for Python: write a flow as a class (Metaflow's way), run it with the ``flowpack``
binary that ships with this package.

Authoring: :class:`FlowSpec`, :func:`step`, :class:`Parameter`, :data:`JSONType`,
:class:`IncludeFile`, :data:`current` and the decorators. The binary embeds this package and
runs ``flowpack.describe`` (the graph) and ``flowpack.task`` (a step) itself.

Reading runs back: :class:`Flow`, :class:`Run`, :class:`Step`, :class:`Task` (the Client API,
``client.py``). This file only re-exports; each module says what it owns. The Client API
is imported on first use: a step's task runner imports this package in every task, and the
client's modules (``subprocess``, ``tempfile``, …) would cost each task their import time.
"""

from __future__ import annotations

from ._version import __version__
from .current import current
from .decorators import (
    batch,
    cache,
    card,
    catch,
    conda,
    conda_base,
    environment,
    exit_hook,
    kubernetes,
    parallel,
    project,
    pypi,
    pypi_base,
    resources,
    retry,
    schedule,
    secrets,
    step,
    timeout,
    trigger,
    trigger_on_finish,
)
from .exception import ExceptionWrapper, FlowpackException, MetaflowExceptionWrapper
from .flowspec import FlowSpec
from .parameters import IncludeFile, JSONType, Parameter

# `typing` only for type checkers: importing it costs every task's start ~3 ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "DataArtifact",
    "Flow",
    "FlowpackNotFound",
    "Run",
    "Step",
    "Task",
    "default_namespace",
    "get_metadata",
    "get_namespace",
    "namespace",
    "ExceptionWrapper",
    "FlowSpec",
    "FlowpackException",
    "IncludeFile",
    "JSONType",
    "MetaflowExceptionWrapper",
    "Parameter",
    "__version__",
    "batch",
    "cache",
    "card",
    "catch",
    "conda",
    "conda_base",
    "current",
    "default_store",
    "environment",
    "exit_hook",
    "kubernetes",
    "parallel",
    "project",
    "pypi",
    "pypi_base",
    "resources",
    "retry",
    "schedule",
    "secrets",
    "step",
    "timeout",
    "trigger",
    "trigger_on_finish",
]

# The Client API, imported when first named (PEP 562).
_CLIENT = {
    "DataArtifact",
    "Flow",
    "FlowpackNotFound",
    "Run",
    "Step",
    "Task",
    "default_namespace",
    "get_metadata",
    "get_namespace",
    "namespace",
}

if TYPE_CHECKING:
    from ._binary import default_store
    from .client import (
        DataArtifact,
        Flow,
        FlowpackNotFound,
        Run,
        Step,
        Task,
        default_namespace,
        get_metadata,
        get_namespace,
        namespace,
    )


def __getattr__(name: str) -> Any:
    """The Client API's names and ``default_store``, imported on first use."""
    if name in _CLIENT:
        from . import client

        return getattr(client, name)
    if name == "default_store":
        from ._binary import default_store

        return default_store
    raise AttributeError(f"module 'flowpack' has no attribute {name!r}")
