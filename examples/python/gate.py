"""A quality gate: `check` sets its verdict and the switch runs one of two steps.

    flowpack run examples/python/gate.py --param score=0.5
"""

from flowpack import FlowSpec, Parameter, catch, step


class GateFlow(FlowSpec):
    """Publish a model only when its score clears the threshold."""

    threshold = Parameter("threshold", default=0.8, help="Lowest acceptable score")
    score = Parameter("score", default=0.9, help="The score the evaluation pretends to reach")

    @step
    def start(self):
        self.evaluated = self.score
        self.next(self.check)

    @step
    def check(self):
        self.verdict = "pass" if self.evaluated >= self.threshold else "fail"
        self.next({"pass": self.publish, "fail": self.alert}, condition="verdict")

    @step
    def publish(self):
        self.published = True
        self.next(self.end)

    @catch(var="alert_error")
    @step
    def alert(self):
        self.published = False
        if self.evaluated < 0:
            raise ValueError("a negative score means the evaluation itself failed")
        self.next(self.end)

    @step
    def end(self):
        print(f"verdict {self.verdict}: published={self.published}")


if __name__ == "__main__":
    GateFlow()
