#!/usr/bin/env python3
"""Browser half of bench/ui.sh: page loads of `flowpack ui` in Chromium, with Playwright.

    ui_page.py runs URL --rounds N --tag TAG [--screenshot PNG]
    ui_page.py run  URL --run FLOW/RUN --rounds N --tag TAG [--task STEP/TASK] [--scroll]
                    [--screenshot PNG]

Prints one JSON object on stdout. Every round opens a new browser context (no HTTP
cache, no storage) in one Chromium, navigates, and takes the time in the page
(`performance.now()`, whose 0 is the navigation's start) at the first animation frame
where the condition holds:

- `runs`: URL#/ until the first `#runs-table tr[data-run]` is visible.
- `run`:  URL#/runs/FLOW/RUN until `svg#dag g.node`, `#timeline canvas` and a
  `#tasks-table tr[data-task]` are all present; also (extra, reported apart) until the
  page has the timeline's data (the end of its `/timeline` response, from resource
  timing) and, with --task, the task page until `#log` has text.
- `--scroll` (run page, after the last round): the element inside `#timeline` that
  scrolls (scrollHeight > clientHeight: `#timeline` itself or a descendant) is scrolled
  from top to bottom in 50 steps, one per animation frame; the frame times are the gaps
  between consecutive requestAnimationFrame callbacks, measured in the page.

An element that never comes (the front end may not have it yet) gives
`"n/a: element X not found"` for that figure instead of an error; the rest still runs.
Chromium is Debian's (/usr/bin/chromium, or $CHROMIUM), launched headless.
"""
import argparse
import json
import os
import statistics
import sys
import time

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1440, "height": 900}
TIMEOUT_MS = int(float(os.environ.get("PAGE_TIMEOUT", "60")) * 1000)

# Each condition: (label, JS expression true when it holds). `visible` = has a layout box.
VISIBLE = "(e => !!e && e.getClientRects().length > 0 && getComputedStyle(e).visibility !== 'hidden')"
RUNS_PAGE = [("#runs-table tr[data-run]", f"{VISIBLE}(document.querySelector('#runs-table tr[data-run]'))")]
RUN_PAGE = [
    ("svg#dag g.node", "!!document.querySelector('svg#dag g.node')"),
    ("#timeline canvas", "!!document.querySelector('#timeline canvas')"),
    ("#tasks-table tr[data-task]", "!!document.querySelector('#tasks-table tr[data-task]')"),
]
# When the page has the timeline's data: the end of its /timeline response (resource
# timing), which does not depend on how the page marks "loaded".
TIMELINE_JS = """() => {
  const e = performance.getEntriesByType('resource').find(r => /\\/timeline(\\?|$)/.test(r.name));
  return e && e.responseEnd > 0 ? {end: e.responseEnd, bytes: e.transferSize, decoded: e.decodedBodySize} : false;
}"""
LOG_PAGE = [("#log with text", "(e => !!e && e.textContent.trim().length > 0)(document.querySelector('#log'))")]

SCROLL_JS = """async (steps) => {
  const root = document.querySelector('#timeline');
  if (!root) return {error: 'n/a: element #timeline not found'};
  const boxes = [root, ...root.querySelectorAll('*')].filter(e => e.scrollHeight > e.clientHeight + 1);
  if (!boxes.length) return {error: 'n/a: no element inside #timeline scrolls (scrollHeight <= clientHeight)'};
  const box = boxes[0];
  const frame = () => new Promise(r => requestAnimationFrame(() => r(performance.now())));
  box.scrollTop = 0;
  await frame(); await frame();
  const max = box.scrollHeight - box.clientHeight;
  const times = [];
  let last = await frame();
  for (let i = 1; i <= steps; i++) {
    box.scrollTop = Math.round(max * i / steps);
    const t = await frame();
    times.push(t - last);
    last = t;
  }
  // The frame after the last step: its draw is part of the scroll too.
  const t = await frame();
  times.push(t - last);
  return {element: box.id ? '#' + box.id : box.tagName.toLowerCase() + (box.className ? '.' + String(box.className).split(' ').join('.') : ''),
          scroll_height: box.scrollHeight, client_height: box.clientHeight,
          reached_bottom: Math.abs(box.scrollTop - max) <= 1, frames_ms: times};
}"""


RESOURCES_JS = """() => {
  const n = performance.getEntriesByType('navigation')[0];
  const r = performance.getEntriesByType('resource').map(e => ({
    name: e.name.replace(location.origin, ''), start: e.startTime / 1000, end: e.responseEnd / 1000,
    bytes: e.decodedBodySize}));
  return {document_end: n ? n.responseEnd / 1000 : null, dom_content_loaded: n ? n.domContentLoadedEventEnd / 1000 : null,
          resources: r};
}"""


def resources(page):
    """The document's and every request's timing so far (seconds from navigation start)."""
    try:
        return page.evaluate(RESOURCES_JS)
    except Exception as e:
        return {"error": str(e).splitlines()[0]}


def timeline_response(page):
    """(seconds from navigation to the end of the /timeline response, its body bytes) or
    an n/a string."""
    try:
        v = page.wait_for_function(TIMELINE_JS, polling="raf", timeout=TIMEOUT_MS).json_value()
        return v["end"] / 1000.0, v.get("decoded")
    except Exception:
        return "n/a: the page made no /timeline request", None


def wait_for(page, conds):
    """performance.now() at the first animation frame where every condition holds, or
    an "n/a: element X not found" string naming the first missing one."""
    expr = " && ".join(f"({js})" for _, js in conds)
    try:
        h = page.wait_for_function(f"() => ({expr}) ? performance.now() : false",
                                   polling="raf", timeout=TIMEOUT_MS)
        return h.json_value() / 1000.0
    except Exception:  # TimeoutError, or the page navigated away / crashed
        missing = []
        for label, js in conds:
            try:
                if not page.evaluate(f"() => !!({js})"):
                    missing.append(label)
            except Exception:
                missing.append(label)
        return f"n/a: element {', '.join(missing) or '(page did not settle)'} not found " \
               f"within {TIMEOUT_MS / 1000:.0f} s"


def summary(values):
    nums = [v for v in values if isinstance(v, (int, float))]
    if not nums:
        return {"median": next((v for v in values if isinstance(v, str)), "n/a"), "values": values}
    return {"median": statistics.median(nums), "min": min(nums), "max": max(nums), "values": values,
            **({"failed": len(values) - len(nums)} if len(nums) != len(values) else {})}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("page", choices=["runs", "run"])
    p.add_argument("url")
    p.add_argument("--run", help="FLOW/RUN (page run)")
    p.add_argument("--task", help="STEP/TASK: also time the task page's log (page run)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--tag", default="")
    p.add_argument("--scroll", action="store_true")
    p.add_argument("--scroll-steps", type=int, default=50)
    p.add_argument("--screenshot")
    a = p.parse_args()
    base = a.url.rstrip("/") + "/"
    out = {"page": a.page, "tag": a.tag, "rounds": a.rounds}
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        out["error"] = f"n/a: playwright is not importable ({e})"
        print(json.dumps(out))
        return
    exe = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    with sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        except Exception as e:
            out["error"] = f"n/a: cannot launch {exe}: {str(e).splitlines()[0]}"
            print(json.dumps(out))
            return
        out["browser"] = f"Chromium {browser.version} (headless), Playwright"
        if a.page == "runs":
            loads, wall = [], []
            for i in range(a.rounds):
                ctx = browser.new_context(viewport=VIEWPORT)
                page = ctx.new_page()
                t0 = time.perf_counter()
                page.goto(base + "#/", wait_until="commit")
                loads.append(loads[0] if loads and isinstance(loads[0], str) else wait_for(page, RUNS_PAGE))
                wall.append(time.perf_counter() - t0)
                out.setdefault("timings", []).append(resources(page))
                if i == a.rounds - 1:
                    out["rows"] = page.evaluate("() => document.querySelectorAll('#runs-table tr[data-run]').length")
                    if a.screenshot:
                        page.screenshot(path=a.screenshot)
                        out["screenshot"] = a.screenshot
                ctx.close()
            out["first_row_visible"] = summary(loads)
            out["wall_from_goto"] = summary(wall)
        else:
            if not a.run:
                p.error("page run needs --run FLOW/RUN")
            ready, drawn, logs = [], [], []
            for i in range(a.rounds):
                ctx = browser.new_context(viewport=VIEWPORT)
                page = ctx.new_page()
                page.goto(base + "#/runs/" + a.run, wait_until="commit")
                # An element missing in the first round is not waited for again.
                ready.append(ready[0] if ready and isinstance(ready[0], str) else wait_for(page, RUN_PAGE))
                if drawn and isinstance(drawn[0], str):
                    drawn.append(drawn[0])
                else:
                    t, size = timeline_response(page)
                    drawn.append(t)
                    if size:
                        out["timeline_body_bytes"] = size
                out.setdefault("timings", []).append(resources(page))
                last = i == a.rounds - 1
                if last:
                    out["dag_nodes"] = page.evaluate("() => document.querySelectorAll('svg#dag g.node').length")
                    out["task_rows"] = page.evaluate("() => document.querySelectorAll('#tasks-table tr[data-task]').length")
                    if a.screenshot:
                        page.screenshot(path=a.screenshot)
                        out["screenshot"] = a.screenshot
                    if a.scroll:
                        try:
                            r = page.evaluate(SCROLL_JS, a.scroll_steps)
                        except Exception as e:
                            r = {"error": f"n/a: scrolling failed: {str(e).splitlines()[0]}"}
                        if "frames_ms" in r:
                            f = r["frames_ms"]
                            r.update(median_ms=statistics.median(f), worst_ms=max(f),
                                     over_50ms=sum(1 for x in f if x > 50), frames=len(f))
                        out["scroll"] = r
                ctx.close()
                if a.task:
                    ctx = browser.new_context(viewport=VIEWPORT)
                    page = ctx.new_page()
                    page.goto(base + "#/runs/" + a.run + "/tasks/" + a.task, wait_until="commit")
                    logs.append(logs[0] if logs and isinstance(logs[0], str) else wait_for(page, LOG_PAGE))
                    if last and a.screenshot:
                        shot = a.screenshot.replace(".png", "-task.png")
                        page.screenshot(path=shot)
                        out["task_screenshot"] = shot
                    ctx.close()
            out["ready"] = summary(ready)
            out["timeline_response"] = summary(drawn)
            if a.task:
                out["task_log"] = summary(logs)
        browser.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
