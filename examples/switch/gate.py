"""Steps of the quality-gate flow."""
import json
import os
import pathlib
import sys

params = json.loads(pathlib.Path(os.environ["FLOWPACK_PARAMS"]).read_text())
inputs = pathlib.Path(os.environ["FLOWPACK_INPUT_DIR"])
outputs = pathlib.Path(os.environ["FLOWPACK_OUTPUT_DIR"])
step = sys.argv[1]

if step == "evaluate":
    (outputs / "score").write_text(str(params["score"]))
elif step == "check":
    score = float((inputs / "score").read_text())
    verdict = "pass" if score >= params["threshold"] else "fail"
    print(f"score {score} against threshold {params['threshold']}: {verdict}")
    (outputs / "verdict").write_text(verdict)
elif step == "publish":
    (outputs / "published").write_text("yes")
    print("published")
elif step == "alert":
    (outputs / "published").write_text("no")
    print("ALERT: the score is below the threshold", file=sys.stderr)
else:
    print("published:", (inputs / "published").read_text())
