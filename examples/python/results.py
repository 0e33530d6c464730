"""Read the train example's latest run back with the Client API, as a notebook would.

    python examples/python/results.py [STORE]

(Unpickling `run.data.model` needs scikit-learn where this runs; the scores do not.)
"""

import sys

from flowpack import Flow, namespace

if len(sys.argv) > 1:
    import os

    os.environ["FLOWPACK_STORE"] = sys.argv[1]

namespace(None)
run = Flow("TrainFlow").latest_successful_run
print(f"run {run.id}: {run['end'].task.data.winner} wins with {run.data.score:.4f}")
for name, score in sorted(run.data.scores.items()):
    print(f"  {name:10s} {score:.4f}")
for task in run["forest"].tasks():
    print(f"  forest {task.data.hp}: {task.data.score:.4f}")
