"""The steps of the hello flow: each reads its parameters and the artifacts of the steps
before it from the folders flowpack gives, and writes new artifacts."""
import json
import os
import pathlib
import sys

step = sys.argv[1]
params = json.loads(pathlib.Path(os.environ["FLOWPACK_PARAMS"]).read_text())
inputs = pathlib.Path(os.environ["FLOWPACK_INPUT_DIR"])
outputs = pathlib.Path(os.environ["FLOWPACK_OUTPUT_DIR"])

if step == "start":
    (outputs / "name").write_text("flowpack")
elif step == "greet":
    name = (inputs / "name").read_text()
    lines = [f"{params['greeting']}, {name}!" for _ in range(int(params["times"]))]
    (outputs / "greetings.txt").write_text("\n".join(lines) + "\n")
else:
    print((inputs / "greetings.txt").read_text(), end="")
