"""Ten steps in a line whose eighth step (s7) fails while a marker file exists.

bench/reuse.sh runs it once with the marker (the run fails at s7), removes the marker (the
"fix") and resumes the failed run; and runs it twice without the marker (the step cache).
The marker's path comes from BENCH_FAIL_MARKER: a path outside the flow's folder, so that
creating and removing it changes nothing in flowpack's code layer. Each step sleeps
BENCH_STEP_SECONDS (default 0) to stand for its work.

Written once for Metaflow; bench/reuse.sh makes the flowpack copy by changing only the
import line below.
"""

import os
import time

from metaflow import FlowSpec, step

STEP_SECONDS = float(os.environ.get("BENCH_STEP_SECONDS", "0"))


def work():
    """The step's stand-in work: sleep BENCH_STEP_SECONDS."""
    if STEP_SECONDS > 0:
        time.sleep(STEP_SECONDS)


class ResumeFlow(FlowSpec):
    """start, s1 ... s8, end: each step does its work and sets one small artifact."""

    @step
    def start(self):
        work()
        self.x = 1
        self.next(self.s1)

    @step
    def s1(self):
        work()
        self.x = self.x + 1
        self.next(self.s2)

    @step
    def s2(self):
        work()
        self.x = self.x + 1
        self.next(self.s3)

    @step
    def s3(self):
        work()
        self.x = self.x + 1
        self.next(self.s4)

    @step
    def s4(self):
        work()
        self.x = self.x + 1
        self.next(self.s5)

    @step
    def s5(self):
        work()
        self.x = self.x + 1
        self.next(self.s6)

    @step
    def s6(self):
        work()
        self.x = self.x + 1
        self.next(self.s7)

    @step
    def s7(self):
        work()
        marker = os.environ.get("BENCH_FAIL_MARKER", "")
        if marker and os.path.exists(marker):
            raise RuntimeError(f"bench: failing on purpose while {marker} exists")
        self.x = self.x + 1
        self.next(self.s8)

    @step
    def s8(self):
        work()
        self.x = self.x + 1
        self.next(self.end)

    @step
    def end(self):
        work()
        self.x = self.x + 1


if __name__ == "__main__":
    ResumeFlow()
