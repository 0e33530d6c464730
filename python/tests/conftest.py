"""pytest wiring: every test uses the `flowpack` binary of this checkout.

``FLOWPACK_BIN`` names it (tests/run.sh sets it to ``target/debug/flowpack``); without it the
test build beside this folder is used, and the tests fail with what to run when it is missing.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))


def _binary() -> str:
    path = os.environ.get("FLOWPACK_BIN") or str(ROOT / "target" / "debug" / "flowpack")
    if not os.access(path, os.X_OK):
        pytest.exit(f"no flowpack binary at {path}: run `cargo build` or set FLOWPACK_BIN", 2)
    return path


os.environ["FLOWPACK_BIN"] = _binary()


@pytest.fixture
def flowpack_bin() -> str:
    """The absolute path of the binary under test."""
    return os.environ["FLOWPACK_BIN"]
