"""Handing a 100 MB numpy array from one step to the next.

`start` makes 100 MB of float64 (13,107,200 values) and keeps it as `self.a`; `consume`
reads it back and sums it. The array size comes from BENCH_ARRAY_MB (default 100), so the
same file with BENCH_ARRAY_MB=0 (one value) gives the cost of the flow without the array.

Written once for Metaflow; bench/python.sh makes the flowpack copy by changing only the
import line below.
"""

import os

import numpy as np
from metaflow import FlowSpec, step

ARRAY_MB = int(os.environ.get("BENCH_ARRAY_MB", "100"))


class HandoffFlow(FlowSpec):
    """start -> consume -> end, with one large artifact between the first two."""

    @step
    def start(self):
        n = max(1, ARRAY_MB * 1024 * 1024 // 8)
        self.a = np.random.rand(n)
        self.next(self.consume)

    @step
    def consume(self):
        self.total = float(self.a.sum())
        self.n = int(self.a.size)
        self.next(self.end)

    @step
    def end(self):
        assert self.n == max(1, ARRAY_MB * 1024 * 1024 // 8), self.n


if __name__ == "__main__":
    HandoffFlow()
