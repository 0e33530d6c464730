"""flowpack for Python: write a flow as a class (Metaflow's way), run it with the ``flowpack``
binary that ships with this package.

Authoring: :class:`FlowSpec`, :func:`step`, :class:`Parameter`, :data:`JSONType`,
:class:`IncludeFile`, :data:`current` and the decorators. The binary embeds this package and
runs ``flowpack.describe`` (the graph) and ``flowpack.task`` (a step) itself.

Reading runs back: :class:`Flow`, :class:`Run`, :class:`Step`, :class:`Task` (the Client API,
``client.py``). This file only re-exports; each module says what it owns.
"""

from __future__ import annotations

from ._binary import default_store
from ._version import __version__
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
from .current import current
from .decorators import (
    batch,
    card,
    catch,
    conda,
    conda_base,
    environment,
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
    "card",
    "catch",
    "conda",
    "conda_base",
    "current",
    "default_store",
    "environment",
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
