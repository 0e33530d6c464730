#!/usr/bin/env python3
"""Store generator for bench/ui.sh: clones two real runs into a store of N runs.

    ui_store.py clone SEED OUT --flow FLOW --ok RUN --failed RUN [--runs N] [--days D] [--seed S]

SEED is a local-folder store holding two real runs of FLOW made by `flowpack run`: one
that succeeded (--ok) and one that failed (--failed). OUT (removed first) gets:

- SEED's blobs and version pointers (`v1/blobs`, `v1/flows`), so every run's package,
  manifest and artifacts exist (the step cache index, `v1/cache`, is left out);
- N runs, each a copy of one of the two run folders under a new run id
  `local-<UTC time>-<4 hex>`: every 10th run (the 10th, 20th, ...) a copy of the failed
  one, the others of the one that succeeded.

Each copy has its own `created_at`, distinct to the second and spread at random over the
D days before the newest (the newest an hour before now), so the runs' creation order and
their order by time differ and a newest-first page has to sort. The run id carries that
time, as flowpack's own ids do. In each copy only two things change, textually, so every
other byte of every file stays as `flowpack run` wrote it: the `run` field of `run.json`
and of every `task.json` (the new id), and the `created_at` of `run.json`. Logs,
`artifacts.json` and everything else are copied byte for byte; task times are the seed
runs' own (so a copy's tasks ran "after" it was created, by up to D days).

Writes OUT.index.json: [{"run", "created_at", "failed"}] in creation order, for checking
the UI's first page (the newest 50 by created_at) without reading the store again.
Prints one JSON line: runs, files, bytes, seconds.
"""
import argparse
import datetime as dt
import json
import os
import random
import re
import shutil
import sys
import time


def fail(msg):
    print(f"ui_store.py: {msg}", file=sys.stderr)
    sys.exit(1)


def read_run(seed, flow, run):
    """The files of one run folder: [(relative path, bytes)]."""
    base = os.path.join(seed, "v1", "runs", flow, run)
    if not os.path.isfile(os.path.join(base, "run.json")):
        fail(f"no run {flow}/{run} in {seed} ({base}/run.json missing)")
    files = []
    for d, _, names in os.walk(base):
        for n in sorted(names):
            p = os.path.join(d, n)
            with open(p, "rb") as f:
                files.append((os.path.relpath(p, base), f.read()))
    return files


RUN_FIELD = re.compile(rb'("run"\s*:\s*")([^"]*)(")')
CREATED_FIELD = re.compile(rb'("created_at"\s*:\s*")([^"]*)(")')


def replace_once(pattern, data, old, new, what):
    """Replace the value of the first field matched by `pattern` (which must be `old`)."""
    m = pattern.search(data)
    if not m:
        fail(f"no {what} field in a record")
    if old is not None and m.group(2) != old:
        fail(f"{what} is {m.group(2)!r}, expected {old!r}")
    return data[: m.start(2)] + new + data[m.end(2):]


def time_text(t, like):
    """`t` (aware UTC datetime) in the shape of the RFC 3339 string `like`: the same number
    of fraction digits and the same zone suffix (`Z` or `+00:00`)."""
    m = re.match(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.(\d+))?(Z|[+-]\d\d:\d\d)$", like)
    if not m:
        fail(f"created_at {like!r} is not RFC 3339 as expected")
    s = t.strftime("%Y-%m-%dT%H:%M:%S")
    if m.group(2):
        digits = len(m.group(2))
        s += "." + f"{t.microsecond:06d}{'0' * 3}"[:digits]
    return (s + m.group(3).decode()).encode()


def clone(a):
    t_start = time.perf_counter()
    seed, out = os.path.abspath(a.seed), os.path.abspath(a.out)
    if out == seed:
        fail("OUT must not be SEED")
    sources = {False: read_run(seed, a.flow, a.ok), True: read_run(seed, a.flow, a.failed)}
    olds = {False: a.ok.encode(), True: a.failed.encode()}
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(os.path.join(out, "v1", "runs", a.flow))
    for part in ("blobs", "flows"):
        src = os.path.join(seed, "v1", part)
        if os.path.isdir(src):
            shutil.copytree(src, os.path.join(out, "v1", part))

    rng = random.Random(a.seed_value)
    newest = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(hours=1)
    span = int(a.days * 86400)
    if span < a.runs:
        fail(f"{a.days} days hold fewer than {a.runs} distinct seconds")
    # Distinct seconds (so distinct ids and created_at), in random order: creation order
    # (the folders' order on disk and in the index) is not time order.
    offsets = rng.sample(range(span), a.runs)
    files = nbytes = 0
    index = []
    ids = set()
    for i, off in enumerate(offsets):
        failed = i % 10 == 9
        t = newest - dt.timedelta(seconds=off) + dt.timedelta(milliseconds=rng.randrange(1000))
        while True:
            run = f"local-{t.strftime('%Y%m%dT%H%M%SZ')}-{rng.randrange(0x10000):04x}"
            if run not in ids:
                break
        ids.add(run)
        new = run.encode()
        base = os.path.join(out, "v1", "runs", a.flow, run)
        created = None
        for rel, data in sources[failed]:
            name = os.path.basename(rel)
            if name == "run.json":
                data = replace_once(RUN_FIELD, data, olds[failed], new, "run")
                like = CREATED_FIELD.search(data)
                if not like:
                    fail("run.json has no created_at")
                created = time_text(t, like.group(2))
                data = replace_once(CREATED_FIELD, data, None, created, "created_at")
            elif name == "task.json":
                data = replace_once(RUN_FIELD, data, olds[failed], new, "run")
            p = os.path.join(base, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "wb") as f:
                f.write(data)
            files += 1
            nbytes += len(data)
        index.append({"run": run, "created_at": created.decode(), "failed": failed})
    with open(out + ".index.json", "w") as f:
        json.dump(index, f)
    print(json.dumps({"runs": a.runs, "failed": sum(r["failed"] for r in index), "files": files,
                      "bytes": nbytes, "seconds": round(time.perf_counter() - t_start, 3)}))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("clone", help="clone two runs into N")
    c.add_argument("seed")
    c.add_argument("out")
    c.add_argument("--flow", required=True)
    c.add_argument("--ok", required=True, help="the run that succeeded")
    c.add_argument("--failed", required=True, help="the run that failed")
    c.add_argument("--runs", type=int, default=10000)
    c.add_argument("--days", type=float, default=30)
    c.add_argument("--seed", dest="seed_value", type=int, default=1)
    a = p.parse_args()
    if a.runs < 1:
        fail("--runs must be at least 1")
    clone(a)


if __name__ == "__main__":
    main()
