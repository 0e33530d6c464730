"""Steps of the train-flow example.

Each step reads artifacts from $FLOWPACK_INPUT_DIR and writes new ones to
$FLOWPACK_OUTPUT_DIR; parameters come from $FLOWPACK_PARAMS. scikit-learn comes from the
package's env layer (requirements.txt), not from the image.
"""
import json
import os
import pathlib
import pickle
import sys

inputs = pathlib.Path(os.environ["FLOWPACK_INPUT_DIR"])
outputs = pathlib.Path(os.environ["FLOWPACK_OUTPUT_DIR"])
params = json.loads(pathlib.Path(os.environ["FLOWPACK_PARAMS"]).read_text())


def save(name, obj):
    with open(outputs / name, "wb") as f:
        pickle.dump(obj, f)


def load(path):
    with open(path, "rb") as f:
        return pickle.load(f)


def score_of(model, data):
    return float(model.score(data["X_test"], data["y_test"]))


def start():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=params["test_size"], random_state=params["seed"], stratify=y
    )
    save("data", {"X_train": X_train, "X_test": X_test, "y_train": y_train, "y_test": y_test})
    print(f"{len(X_train)} training and {len(X_test)} test samples")


def baseline():
    from sklearn.linear_model import LogisticRegression

    data = load(inputs / "data")
    model = LogisticRegression(max_iter=2000).fit(data["X_train"], data["y_train"])
    s = score_of(model, data)
    save("model", model)
    (outputs / "score").write_text(str(s))
    print(f"baseline accuracy {s:.4f}")


def grid():
    grid = [{"n_estimators": n, "max_depth": d} for n in (20, 60) for d in (6, None)]
    (outputs / "grid").write_text(json.dumps(grid))
    print(f"{len(grid)} forests to train")


def forest():
    from sklearn.ensemble import RandomForestClassifier

    hp = json.loads(os.environ["FLOWPACK_SPLIT_ITEM"])
    data = load(inputs / "data")
    model = RandomForestClassifier(random_state=params["seed"], n_jobs=1, **hp)
    model.fit(data["X_train"], data["y_train"])
    s = score_of(model, data)
    save("model", model)
    (outputs / "score").write_text(str(s))
    print(f"forest {hp}: accuracy {s:.4f}")


def best_forest():
    # One folder per foreach task, named by its index.
    scores = {d.name: float((d / "score").read_text()) for d in inputs.iterdir() if d.is_dir()}
    best = max(scores, key=scores.get)
    (outputs / "model").write_bytes((inputs / best / "model").read_bytes())
    (outputs / "score").write_text(str(scores[best]))
    print(f"best forest: task {best} with accuracy {scores[best]:.4f}")


def pick():
    # One folder per branch, named by the branch's last step.
    scores = {b: float((inputs / b / "score").read_text()) for b in ("baseline", "best_forest")}
    winner = max(scores, key=scores.get)
    (outputs / "model").write_bytes((inputs / winner / "model").read_bytes())
    (outputs / "score").write_text(str(scores[winner]))
    (outputs / "winner").write_text(winner)
    print(f"winner: {winner} ({scores[winner]:.4f}) over {scores}")


def end():
    winner = (inputs / "winner").read_text()
    score = float((inputs / "score").read_text())
    print(f"the {winner} model wins with accuracy {score:.4f}")


globals()[sys.argv[1]]()
