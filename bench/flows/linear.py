"""Ten trivial steps in a line: what a Python task costs when the step does nothing.

Written once for Metaflow; bench/python.sh makes the flowpack copy by changing only the
import line below.
"""

from metaflow import FlowSpec, step


class LinearFlow(FlowSpec):
    """start, s1 ... s8, end: each step sets one small artifact."""

    @step
    def start(self):
        self.x = 1
        self.next(self.s1)

    @step
    def s1(self):
        self.x = 1
        self.next(self.s2)

    @step
    def s2(self):
        self.x = 1
        self.next(self.s3)

    @step
    def s3(self):
        self.x = 1
        self.next(self.s4)

    @step
    def s4(self):
        self.x = 1
        self.next(self.s5)

    @step
    def s5(self):
        self.x = 1
        self.next(self.s6)

    @step
    def s6(self):
        self.x = 1
        self.next(self.s7)

    @step
    def s7(self):
        self.x = 1
        self.next(self.s8)

    @step
    def s8(self):
        self.x = 1
        self.next(self.end)

    @step
    def end(self):
        self.x = 1


if __name__ == "__main__":
    LinearFlow()
