"""``flowpack ui`` in a real browser (Debian's headless Chromium, driven by Playwright):
the pages of real runs of the train example as a person sees them, a log followed while a
step prints, a run appearing in the list without a reload, and untrusted text from the
store shown as text, never run. Each test saves screenshots to target/ui-screenshots/.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

from conftest import Ui, binary, flowpack, screenshot
from playwright.sync_api import Page, expect

TRAIN_STEPS = ["start", "baseline", "grid", "forest", "best_forest", "pick", "end"]


def test_the_runs_page_lists_the_runs_and_filters_them(page: Page, train: dict[str, str]) -> None:
    page.goto(f"{train['url']}/#/")
    rows = page.locator("#runs-table tr[data-run]")
    expect(rows).to_have_count(2)
    ok = page.locator(f"#runs-table tr[data-run='{train['ok']}']")
    expect(ok).to_have_attribute("data-status", "succeeded")
    expect(ok).to_contain_text("train-flow")
    expect(ok).to_contain_text("seed=42")
    failed = page.locator(f"#runs-table tr[data-run='{train['failed']}']")
    expect(failed).to_have_attribute("data-status", "failed")
    screenshot(page, "runs")
    page.select_option("#runs-status", "failed")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-run", train["failed"])
    assert "status=failed" in page.url, "the filter is in the address, to share"
    page.fill("#runs-q", "no-such-run")
    expect(rows).to_have_count(0)


def test_the_run_page_draws_the_graph_timeline_and_tasks(page: Page, train: dict[str, str]) -> None:
    page.goto(f"{train['url']}/#/runs/train-flow/{train['ok']}")
    nodes = page.locator("svg#dag g.node")
    expect(nodes).to_have_count(len(TRAIN_STEPS))
    for step in TRAIN_STEPS:
        expect(page.locator(f"svg#dag g.node[data-step='{step}']")).to_have_attribute(
            "data-status", "succeeded"
        )
    # The foreach fan-out shows its width: four forests.
    expect(page.locator("svg#dag")).to_contain_text("×4")
    canvas = page.locator("#timeline canvas")
    expect(canvas).to_be_visible()
    box = canvas.bounding_box()
    assert box and box["width"] > 300 and box["height"] > 100, box
    tasks = page.locator("#tasks-table tr[data-task]")
    expect(tasks).to_have_count(10)
    expect(page.locator("#failing")).to_have_count(0)
    screenshot(page, "run")
    # A step clicked in the graph narrows the task list to it.
    page.locator("svg#dag g.node[data-step='forest']").click()
    expect(tasks).to_have_count(4)
    for t in tasks.all():
        assert (t.get_attribute("data-task") or "").startswith("forest/")


def test_a_failed_run_shows_its_failing_task_and_log_first(
    page: Page, train: dict[str, str]
) -> None:
    page.goto(f"{train['url']}/#/runs/train-flow/{train['failed']}")
    failing = page.locator("#failing")
    expect(failing).to_be_visible()
    expect(failing).to_contain_text("start/0")
    expect(page.locator("#failing-log")).to_contain_text("test_size")
    expect(page.locator("svg#dag g.node[data-step='start']")).to_have_attribute(
        "data-status", "failed"
    )
    # The steps after the failure never ran.
    expect(page.locator("svg#dag g.node[data-step='end']")).not_to_have_attribute(
        "data-status", "succeeded"
    )
    screenshot(page, "run-failed")


def test_the_task_page_shows_the_log_and_previews_artifacts(
    page: Page, train: dict[str, str]
) -> None:
    page.goto(f"{train['url']}/#/runs/train-flow/{train['ok']}/tasks/pick/0")
    log = page.locator("#log")
    expect(log).to_contain_text("winner:")
    expect(page.locator("#log-following")).to_be_hidden()
    expect(page.locator("#attempts")).to_contain_text("succeeded")
    arts = page.locator("#artifacts tr[data-artifact]")
    expect(arts).to_have_count(4)
    # The winner's name is text; the model a pickle, described, not unpickled.
    page.locator("#artifacts tr[data-artifact='winner'] button", has_text="preview").click()
    preview = page.locator("#artifact-preview")
    expect(preview).to_be_visible()
    expect(preview).to_contain_text(re.compile("baseline|best_forest"))
    page.locator("#artifacts tr[data-artifact='model'] button", has_text="preview").click()
    expect(preview).to_contain_text("pickle")
    expect(preview).to_contain_text("sklearn")
    download = page.locator("#artifacts tr[data-artifact='model'] a[download]")
    expect(download).to_have_attribute("href", re.compile(r"/artifacts/model/download$"))
    # Search within the log.
    page.fill("#log-search", "winner")
    expect(page.locator("#log-matches")).to_contain_text("1")
    expect(page.locator("#log mark")).to_have_count(1)
    screenshot(page, "task")


def test_the_package_page_shows_layers_and_the_flow(page: Page, train: dict[str, str]) -> None:
    page.goto(f"{train['url']}/#/runs/train-flow/{train['ok']}")
    page.locator("a#run-package").click()
    expect(page.locator("#layers")).to_contain_text("code")
    expect(page.locator("#layers")).to_contain_text("env")
    expect(page.locator("#package-flow")).to_contain_text("train.py forest")
    screenshot(page, "package")


TICKER = """name: ticker
parameters:
  label: {type: str, default: "<img src=x onerror=window.__owned=1>"}
steps:
  start: {run: python3 -u tick.py, next: end}
  end: {run: python3 -c "print('<script>window.__owned=2</script>')"}
"""

TICK = """import time
for i in range(16):
    print("tick", i, "<img src=x onerror=window.__owned=3>", flush=True)
    time.sleep(0.5)
"""


def test_a_new_run_appears_and_its_log_is_followed_live_and_shown_as_text(
    page: Page, tmp_path: Path
) -> None:
    (tmp_path / "flow.yaml").write_text(TICKER)
    (tmp_path / "tick.py").write_text(TICK)
    store = tmp_path / "store"
    flowpack(tmp_path, "push", "flow.yaml", "--store", str(store))
    ui = Ui(store)
    try:
        page.goto(f"{ui.url}/#/")
        expect(page.locator("#runs-empty")).to_be_visible()
        run = subprocess.Popen(
            [binary(), "run", "flow.yaml", "--store", str(store)],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # The list polls: the run shows up, running, without a reload.
        row = page.locator("#runs-table tr[data-run]")
        expect(row).to_have_count(1, timeout=15_000)
        run_id = row.first.get_attribute("data-run")
        page.goto(f"{ui.url}/#/runs/ticker/{run_id}/tasks/start/0")
        log = page.locator("#log")
        expect(log).to_contain_text("tick 2", timeout=15_000)
        expect(page.locator("#log-following")).to_be_visible()
        assert "tick 15" not in log.inner_text(), "lines arrive while the step prints"
        screenshot(page, "log-following")
        expect(log).to_contain_text("tick 15", timeout=30_000)
        expect(page.locator("#log-following")).to_be_hidden(timeout=15_000)
        text = log.inner_text()
        ticks = [int(m) for m in re.findall(r"tick (\d+)", text)]
        assert ticks == list(range(16)), ticks
        assert run.wait(timeout=60) == 0
        # Untrusted text from the store (a parameter, log lines) is text on every page.
        assert "<img src=x onerror=window.__owned=3>" in text
        page.goto(f"{ui.url}/#/runs/ticker/{run_id}")
        expect(page.locator("#run-params")).to_contain_text("<img src=x")
        page.goto(f"{ui.url}/#/runs/ticker/{run_id}/tasks/end/0")
        expect(page.locator("#log")).to_contain_text("<script>window.__owned=2</script>")
        page.goto(f"{ui.url}/#/")
        expect(page.locator("#runs-table tr[data-run]")).to_have_attribute(
            "data-status", "succeeded", timeout=10_000
        )
        time.sleep(0.5)
        assert page.evaluate("window.__owned") is None, "text from the store ran as script"
    finally:
        ui.stop()
