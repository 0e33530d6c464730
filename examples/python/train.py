"""Train a baseline and a grid of random forests on scikit-learn's digits; the best wins.

    start -> baseline ---------------------------------> pick -> end
          \\-> grid =foreach=> forest -> best_forest --/

scikit-learn comes from the package's env layer (`@pypi_base`), not from the image.

    flowpack run examples/python/train.py
    python examples/python/results.py        # read the run back with the Client API
"""

from flowpack import FlowSpec, Parameter, pypi_base, resources, retry, step, timeout


@pypi_base(packages={"scikit-learn": "1.7.*"}, python="3.11")
class TrainFlow(FlowSpec):
    """Baseline vs. a random-forest grid on the digits dataset; the best model wins."""

    seed = Parameter("seed", default=42, help="Random seed for the split and the models")
    test_size = Parameter("test_size", default=0.25, help="Share of the data held out")

    @resources(cpu=1, memory=1024)
    @retry(times=1, minutes_between_retries=0)
    @timeout(minutes=10)
    @step
    def start(self):
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        X, y = load_digits(return_X_y=True)
        self.X_train, self.X_test, self.y_train, self.y_test = train_test_split(
            X, y, test_size=self.test_size, random_state=self.seed, stratify=y
        )
        print(f"{len(self.X_train)} training and {len(self.X_test)} test samples")
        self.next(self.baseline, self.grid)

    @step
    def baseline(self):
        from sklearn.linear_model import LogisticRegression

        self.model = LogisticRegression(max_iter=2000).fit(self.X_train, self.y_train)
        self.score = float(self.model.score(self.X_test, self.y_test))
        print(f"baseline accuracy {self.score:.4f}")
        self.next(self.pick)

    @step
    def grid(self):
        self.params = [{"n_estimators": n, "max_depth": d} for n in (20, 60) for d in (6, None)]
        print(f"{len(self.params)} forests to train")
        self.next(self.forest, foreach="params")

    @step
    def forest(self):
        from sklearn.ensemble import RandomForestClassifier

        self.hp = self.input
        self.model = RandomForestClassifier(random_state=self.seed, n_jobs=1, **self.hp)
        self.model.fit(self.X_train, self.y_train)
        self.score = float(self.model.score(self.X_test, self.y_test))
        print(f"forest {self.hp}: accuracy {self.score:.4f}")
        self.next(self.best_forest)

    @step
    def best_forest(self, inputs):
        best = max(inputs, key=lambda task: task.score)
        self.model, self.score, self.hp = best.model, best.score, best.hp
        print(f"best forest: {self.hp} with accuracy {self.score:.4f}")
        self.merge_artifacts(inputs, include=["X_test", "y_test"])
        self.next(self.pick)

    @step
    def pick(self, inputs):
        self.scores = {"baseline": inputs.baseline.score, "forest": inputs.best_forest.score}
        self.winner = max(self.scores, key=self.scores.get)
        self.model = inputs.baseline.model if self.winner == "baseline" else inputs.best_forest.model
        self.score = self.scores[self.winner]
        self.merge_artifacts(inputs, include=["X_test", "y_test"])
        self.next(self.end)

    @step
    def end(self):
        print(f"the {self.winner} model wins with accuracy {self.score:.4f}")


if __name__ == "__main__":
    TrainFlow()
