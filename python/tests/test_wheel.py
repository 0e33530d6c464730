"""The wheel: maturin builds one wheel with the ``flowpack`` command and the ``flowpack``
package from this checkout; installed into a fresh venv, both work and check each other.

A pytest test rather than tests/wheel.rs: it runs in the venv that has maturin and pip
(tests/run.sh's ``.venv``), after cargo built ``target/debug``, so ``--profile dev`` reuses
that build: no release build, only a relink.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

import flowpack

ROOT = Path(__file__).resolve().parents[2]


def maturin() -> str:
    found = shutil.which("maturin", path=str(Path(sys.executable).parent)) or shutil.which(
        "maturin"
    )
    if not found:
        pytest.fail("maturin is not installed: tests/run.sh installs it into .venv")
    return found


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel built from this checkout installed; its bin/ folder."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [maturin(), "build", "--profile", "dev", "--quiet", "-o", str(out)],
        cwd=ROOT,
        check=True,
    )
    (wheel,) = out.glob("flowpack-*.whl")
    assert wheel.name.startswith(f"flowpack-{flowpack.__version__}-")
    env_dir = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=True).create(env_dir)
    pip = [str(env_dir / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-index"]
    subprocess.run([*pip, "--disable-pip-version-check", str(wheel)], check=True)
    return env_dir / "bin"


def clean_env() -> dict[str, str]:
    """The environment without this test run's FLOWPACK_BIN: the venv must find its own."""
    env = dict(os.environ)
    env.pop("FLOWPACK_BIN", None)
    env.pop("PYTHONPATH", None)
    return env


def test_the_wheel_installs_the_command_and_the_package(installed: Path, tmp_path: Path) -> None:
    version = subprocess.run(
        [str(installed / "flowpack"), "--version"], capture_output=True, text=True, check=True
    )
    assert version.stdout.strip() == f"flowpack {flowpack.__version__}"
    code = (
        "import flowpack, flowpack._binary as b; "
        "print(flowpack.__version__); print(b.binary()); print(flowpack.__file__)"
    )
    out = subprocess.run(
        [str(installed / "python"), "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env=clean_env(),
    )
    got_version, binary, module = out.stdout.split()
    assert got_version == flowpack.__version__
    # _binary finds the wheel's command beside the venv's interpreter, not some other one.
    assert Path(binary) == installed / "flowpack"
    assert Path(module).is_relative_to(installed.parent)


def test_the_version_check_fires_on_a_mismatch(installed: Path, tmp_path: Path) -> None:
    (version_py,) = installed.parent.glob("lib/python*/site-packages/flowpack/_version.py")
    original = version_py.read_text()
    version_py.write_text('__version__ = "0.0.0"\n')
    try:
        out = subprocess.run(
            [str(installed / "python"), "-c", "import flowpack; flowpack.Flow('X')"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=clean_env(),
        )
    finally:
        version_py.write_text(original)
    assert out.returncode != 0
    assert f"is version {flowpack.__version__}, but this Python package is 0.0.0" in out.stderr
    assert "pip install --force-reinstall flowpack" in out.stderr
