"""A foreach of 20 trivial tasks, then a join: the fan-out cost of a Python task.

Written once for Metaflow; bench/python.sh makes the flowpack copy by changing only the
import line below.
"""

from metaflow import FlowSpec, step


class ForeachFlow(FlowSpec):
    """start fans out over 20 items; each body task keeps its item; join sums them."""

    @step
    def start(self):
        self.items = list(range(20))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.x = self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.x for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        assert self.total == sum(range(20)), self.total


if __name__ == "__main__":
    ForeachFlow()
