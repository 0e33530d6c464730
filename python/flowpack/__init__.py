"""flowpack's Python package: Metaflow-style flows run by the ``flowpack`` binary, and the
Client API that reads their runs back (docs/python.md).

This file only re-exports; each module says what it owns.
"""

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

__all__ = [
    "DataArtifact",
    "Flow",
    "FlowpackNotFound",
    "Run",
    "Step",
    "Task",
    "__version__",
    "default_namespace",
    "default_store",
    "get_metadata",
    "get_namespace",
    "namespace",
]
