# Ported from Metaflow's documentation ("Creating flows": parameters, foreach); only the import
# changed.
from flowpack import FlowSpec, Parameter, step


class ForeachFlow(FlowSpec):
    """A flow that fans out over a list of creatures."""

    greeting = Parameter('greeting', help='How to greet', default='hello')

    @step
    def start(self):
        self.creatures = ['bird', 'mouse', 'dog']
        self.next(self.analyze_creatures, foreach='creatures')

    @step
    def analyze_creatures(self):
        print("Analyzing", self.input)
        self.creature = self.input
        self.score = len(self.creature)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.best = max(inputs, key=lambda x: x.score).creature
        self.message = '%s, %s' % (self.greeting, self.best)
        self.next(self.end)

    @step
    def end(self):
        print(self.message)


if __name__ == '__main__':
    ForeachFlow()
