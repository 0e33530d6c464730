"""Finding and running the ``flowpack`` binary: the one thing that touches stores.

The Python package never reads a store itself; it asks the binary that shipped with it (the
same wheel, or the binary that runs the step this code runs in). :func:`binary` finds it and
checks that its version is the package's, once per process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path

from ._version import __version__

_checked: str | None = None


class BinaryError(RuntimeError):
    """The ``flowpack`` binary is missing, of another version, or failed."""


def _candidates() -> list[str]:
    """Where the binary may be, most specific first."""
    found = []
    if os.environ.get("FLOWPACK_BIN"):
        found.append(os.environ["FLOWPACK_BIN"])
    # A wheel installs the binary beside the interpreter's scripts (a venv's bin/).
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        found.append(str(Path(folder) / "flowpack"))
    on_path = shutil.which("flowpack")
    if on_path:
        found.append(on_path)
    return found


def binary() -> str:
    """The path of the ``flowpack`` binary, checked to be of this package's version.

    Raises:
        BinaryError: no binary was found, or its version differs from the package's.
    """
    global _checked
    if _checked is not None:
        return _checked
    for path in _candidates():
        if os.path.isfile(path) and os.access(path, os.X_OK):
            break
    else:
        raise BinaryError(
            "the flowpack binary was not found (looked at $FLOWPACK_BIN, beside this Python and "
            "on PATH): install flowpack with `pip install flowpack`, or set FLOWPACK_BIN"
        )
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
    version = out.stdout.split()[-1] if out.returncode == 0 and out.stdout.split() else "?"
    if version != __version__:
        raise BinaryError(
            f"the flowpack binary {path} is version {version}, but this Python package is "
            f"{__version__}: install both from one wheel (pip install --force-reinstall flowpack)"
        )
    _checked = path
    return path


def run(args: Sequence[str], *, input: bytes | None = None) -> bytes:
    """Runs ``flowpack ARGS…`` and returns its stdout.

    Raises:
        BinaryError: the command failed; the message is its last line of stderr.
    """
    out = subprocess.run([binary(), *args], input=input, capture_output=True, check=False)
    if out.returncode != 0:
        lines = out.stderr.decode(errors="replace").strip().splitlines()
        raise BinaryError(lines[-1] if lines else f"flowpack {args[0]} failed")
    return out.stdout


def default_store() -> str:
    """The store a reading command uses when none is named, as the binary resolves it (the
    one rule, docs/configuration.md "The default store"): ``$FLOWPACK_STORE``, else the
    nearest ``.flowpack`` folder from the current folder upward. A local store comes back
    as its absolute folder.

    Flows run from one folder share it, so a second flow (or a notebook) started there sees
    the first one's runs, as Metaflow's ``.metaflow`` folder works.

    Raises:
        BinaryError: there is no store (the message says where the binary looked).
    """
    return run(["client", "--print-store"]).decode().strip()
