"""The smallest useful Python flow: parameters, a linear graph, artifacts as attributes.

    flowpack run examples/python/hello.py --param times=3
    python examples/python/hello.py run --times 3      # the Metaflow way (pip install .)
"""

from flowpack import FlowSpec, Parameter, step


class HelloFlow(FlowSpec):
    """Greets flowpack a few times."""

    greeting = Parameter("greeting", default="Hello", help="How to greet")
    times = Parameter("times", default=2, help="How many greetings")

    @step
    def start(self):
        self.who = "flowpack"
        self.next(self.greet)

    @step
    def greet(self):
        self.lines = [f"{self.greeting}, {self.who}!" for _ in range(self.times)]
        self.next(self.end)

    @step
    def end(self):
        print("\n".join(self.lines))


if __name__ == "__main__":
    HelloFlow()
