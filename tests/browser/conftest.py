"""Fixtures of the browser tests: the ``flowpack`` binary of this checkout, real runs made
with it, ``flowpack ui`` serving them, and Debian's Chromium driven by Playwright.

The tests fail (never skip) when a tool is missing, saying what to install: tests/run.sh
installs Chromium (``apt-get install chromium``) and Playwright (from PyPI) and sets
``FLOWPACK_BIN``. Screenshots go to ``target/ui-screenshots/``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "target" / "ui-screenshots"
CHROMIUM = os.environ.get("FLOWPACK_TEST_CHROMIUM", "/usr/bin/chromium")
# As root in a sandbox, and without the background traffic a closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def binary() -> str:
    """The flowpack binary under test: ``FLOWPACK_BIN``, else this checkout's debug build."""
    path = os.environ.get("FLOWPACK_BIN") or str(ROOT / "target" / "debug" / "flowpack")
    if not os.access(path, os.X_OK):
        pytest.exit(f"no flowpack binary at {path}: run `cargo build` or set FLOWPACK_BIN", 2)
    return path


def flowpack(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Runs ``flowpack ARGS`` in ``cwd`` with a private cache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWPACK_")}
    env["FLOWPACK_CACHE_DIR"] = str(cwd / ".test-cache")
    out = subprocess.run(
        [binary(), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )
    if check and out.returncode != 0:
        raise AssertionError(f"flowpack {args} failed ({out.returncode}):\n{out.stderr}")
    return out


class Ui:
    """``flowpack ui`` on a free port, serving one store."""

    def __init__(self, store: Path) -> None:
        self.process = subprocess.Popen(
            [binary(), "ui", "--store", str(store), "--port", "0", "--json"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        self.url: str = json.loads(line)["url"].rstrip("/")

    def stop(self) -> None:
        """Stops the server."""
        self.process.kill()
        self.process.wait()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Headless Chromium from Debian, driven by Playwright."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.exit(f"no Chromium at {CHROMIUM}: `apt-get install chromium` (tests/run.sh does)", 2)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page, 1280x860; fails the test on any error the page's script raises."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    p.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    yield p
    context.close()
    assert not errors, f"the page reported errors: {errors}"


def screenshot(page: Page, name: str) -> Path:
    """Saves a full-page screenshot as target/ui-screenshots/NAME.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.fixture(scope="session")
def train(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Two real runs of examples/train (scikit-learn from its env layer): one that succeeds
    and one that fails in ``start`` on a test share no split can give; and the UI on them."""
    folder = tmp_path_factory.mktemp("train")
    for f in (ROOT / "examples" / "train").iterdir():
        if f.is_file():
            shutil.copy(f, folder / f.name)
    store = folder / "store"
    ok = json.loads(flowpack(folder, "run", "flow.yaml", "--store", str(store), "--json").stdout)
    bad = flowpack(
        folder,
        "run",
        "flow.yaml",
        "--store",
        str(store),
        "--json",
        "--param",
        "test_size=1.5",
        check=False,
    )
    assert bad.returncode != 0, bad.stdout
    failed = json.loads(bad.stdout)
    ui = Ui(store)
    yield {"url": ui.url, "ok": ok["run"], "failed": failed["run"], "store": str(store)}
    ui.stop()
