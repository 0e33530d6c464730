"""The command line of a flow file: ``python flow.py run --alpha 0.5`` and friends.

``FlowSpec()`` in the ``__main__`` module calls :func:`main`, which turns Metaflow's command
line into the ``flowpack`` binary's (:func:`translate`) and replaces this process with it:

==========================  ==================================================
``python flow.py …``        runs
==========================  ==================================================
``run [--NAME VALUE]…``     ``flowpack run FLOW --param NAME=VALUE …``
``resume [RUN|STEP]``       ``flowpack resume RUN FLOW [--from STEP]`` (RUN: the flow's latest)
``show``                    ``flowpack check FLOW``
``push`` / ``compile``      ``flowpack push|compile FLOW …``
``trigger [--NAME VALUE]``  ``flowpack trigger FLOW --param NAME=VALUE …``
``argo-workflows create``   ``flowpack push FLOW --argo-server …`` (Metaflow's spelling)
``argo-workflows trigger``  ``flowpack trigger FLOW --target argo --param NAME=VALUE …``
==========================  ==================================================

Without ``--store`` no store is passed: the binary resolves it by its one rule
(``$FLOWPACK_STORE``, else the nearest ``.flowpack/`` upward; ``run``, ``push`` and ``compile``
make ``./.flowpack`` when there is none), so flows run from one folder share it.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import NoReturn

from ._binary import BinaryError, binary
from ._binary import run as run_binary
from .exception import FlowpackException
from .flowspec import flow_parameters
from .parameters import IncludeFile, Parameter

# Each command's own options: name -> takes a value.
_OPTIONS: dict[str, dict[str, bool]] = {
    "run": {
        "--store": True,
        "--max-workers": True,
        "--containers": False,
        "--json": False,
    },
    "resume": {
        "--store": True,
        "--max-workers": True,
        "--containers": False,
        "--json": False,
        "--from": True,
        "--origin-run-id": True,
    },
    "show": {},
    "push": {
        "--store": True,
        "--version-name": True,
        "--rebuild-env": False,
        "--kfp-url": True,
        "--kfp-namespace": True,
        "--argo-server": True,
        "--argo-namespace": True,
        "--allow-local": False,
        "--json": False,
    },
    "compile": {
        "--store": True,
        "--output": True,
        "-o": True,
        "--command": True,
        "--target": True,
        "--allow-local": False,
    },
    "trigger": {
        "--experiment": True,
        "--version-name": True,
        "--kfp-url": True,
        "--kfp-namespace": True,
        "--argo-server": True,
        "--argo-namespace": True,
        "--target": True,
        "--json": False,
    },
}
# ``argo-workflows SUB``, Metaflow's commands for Argo: the command each one is.
_ARGO_WORKFLOWS = {"create": "push", "trigger": "trigger"}
_WITH_PARAMS = ("run", "trigger")
_WITH_STORE = ("run", "resume", "push", "compile")
_HELP = {
    "run": "run the flow on this machine",
    "resume": "resume a failed run (the latest by default): resume [RUN | STEP]",
    "show": "check the flow and print its graph",
    "push": "pack and push the flow's code and environment to the store",
    "compile": "compile the flow for Kubeflow Pipelines (or --target argo)",
    "trigger": "start a run of the deployed flow on Kubeflow Pipelines or Argo",
    "argo-workflows": "create (deploy to Argo Workflows) or trigger (start a run there)",
}


class UsageError(FlowpackException):
    """The command line is wrong; the message says how."""


def usage(flow_cls: type, script: str) -> str:
    """The ``--help`` text: the commands and the flow's parameters."""
    lines = [f"usage: python {script} COMMAND [OPTIONS]", "", "commands:"]
    lines += [f"  {c:<14} {h}" for c, h in _HELP.items()]
    params = flow_parameters(flow_cls)
    if params:
        lines += ["", "parameters (run, trigger: --NAME VALUE):"]
        for p in params:
            default = "" if p.required or p.default is None else f" (default: {p.default!r})"
            kind = "file" if isinstance(p, IncludeFile) else p.kind
            lines.append(f"  --{p.name} {kind.upper()}{default}  {p.help or ''}".rstrip())
    lines += [
        "",
        "options: --store URL (all but trigger), and those of `flowpack COMMAND --help`",
    ]
    return "\n".join(lines)


def _param_value(p: Parameter, value: str) -> str:
    if isinstance(p, IncludeFile):
        return p.encode_file(Path(value))
    return value


def _store_args(store: str | None) -> list[str]:
    """``--store STORE`` when one was given; else nothing, and the binary finds the store."""
    return ["--store", store] if store else []


def _latest_run(flow_name: str, store: str | None) -> str:
    out = run_binary(["runs", flow_name, "--json", *_store_args(store)])
    runs = json.loads(out or b"[]")
    if not runs:
        where = store or "the store"
        raise UsageError(f"flow {flow_name} has no runs in {where} to resume")
    return str(runs[0]["run"])


def translate(flow_cls: type, flow_file: str, argv: list[str]) -> list[str]:
    """The ``flowpack`` arguments for ``python flow.py ARGV…``.

    Raises:
        UsageError: an unknown command or option, or a missing value.
    """
    if not argv or argv[0] in ("-h", "--help", "help"):
        raise UsageError(usage(flow_cls, os.path.basename(flow_file)))
    if argv[0] == "argo-workflows":
        return _argo_workflows(flow_cls, flow_file, argv[1:])
    command, rest = argv[0], argv[1:]
    if command not in _OPTIONS:
        raise UsageError(
            f"unknown command '{command}': use one of {', '.join(_OPTIONS)} "
            f"(python {os.path.basename(flow_file)} --help)"
        )
    options = _OPTIONS[command]
    params = {p.name: p for p in flow_parameters(flow_cls)} if command in _WITH_PARAMS else {}
    out: list[str] = []
    positional: list[str] = []
    store: str | None = None
    i = 0
    while i < len(rest):
        arg = rest[i]
        if arg in ("-h", "--help"):
            raise UsageError(usage(flow_cls, os.path.basename(flow_file)))
        if not arg.startswith("-"):
            positional.append(arg)
            i += 1
            continue
        name, eq, value = arg.partition("=")
        key = name[2:].replace("-", "_") if name.startswith("--") else ""
        takes = key in params or options.get(name, False)
        if name not in options and key not in params:
            known = sorted(options) + [f"--{p}" for p in params]
            raise UsageError(
                f"{command}: unknown option {name}; it takes {', '.join(known) or 'no options'}"
            )
        if takes and not eq:
            if i + 1 >= len(rest):
                raise UsageError(f"{command}: {name} needs a value")
            value = rest[i + 1]
            i += 1
        i += 1
        if key in params:
            out += ["--param", f"{key}={_param_value(params[key], value)}"]
        elif name == "--store":
            store = value
        elif takes:
            out += [name, value]
        else:
            out.append(name)
    flow_path = os.path.abspath(flow_file)
    if command == "resume":
        if len(positional) > 1:
            raise UsageError("resume takes at most one argument: a run id or a step name")
        run_id = None
        if "--origin-run-id" in out:
            at = out.index("--origin-run-id")
            run_id = out[at + 1]
            del out[at : at + 2]
        if positional:
            steps = {n for n in dir(flow_cls) if getattr(getattr(flow_cls, n, None), "is_step", 0)}
            if positional[0] in steps:
                out += ["--from", positional[0]]
            else:
                run_id = positional[0]
        run_id = run_id or _latest_run(flow_cls.__name__, store)
        # The current flow file: the resumed run runs the code as it is now.
        return ["resume", run_id, flow_path, *out, *_store_args(store)]
    if positional:
        raise UsageError(f"{command}: unexpected argument {positional[0]!r}")
    if command == "show":
        return ["check", flow_path]
    if command in _WITH_STORE:
        out += _store_args(store)
    return [command, flow_path, *out]


def _argo_workflows(flow_cls: type, flow_file: str, argv: list[str]) -> list[str]:
    """``argo-workflows create|trigger …`` as ``push --argo-server …`` or ``trigger --target argo``.

    Raises:
        UsageError: another subcommand, or ``create`` with no Argo Server to deploy to.
    """
    sub = argv[0] if argv else ""
    if sub not in _ARGO_WORKFLOWS:
        raise UsageError("argo-workflows takes create (deploy the flow) or trigger (start a run)")
    out = translate(flow_cls, flow_file, [_ARGO_WORKFLOWS[sub], *argv[1:]])
    if sub == "trigger":
        return [*out, "--target", "argo"]
    if "--argo-server" not in out and not os.environ.get("FLOWPACK_ARGO_SERVER"):
        raise UsageError(
            "argo-workflows create deploys to Argo Workflows: pass --argo-server URL "
            "or set FLOWPACK_ARGO_SERVER"
        )
    return out


def main(flow_cls: type, argv: list[str] | None = None) -> NoReturn:
    """Runs ``python flow.py …``: replaces this process with the ``flowpack`` binary."""
    args = sys.argv[1:] if argv is None else argv
    flow_file = sys.modules[flow_cls.__module__].__file__ or sys.argv[0]
    try:
        command = translate(flow_cls, flow_file, args)
        path = binary()
    except UsageError as e:
        help_asked = not args or args[0] in ("-h", "--help", "help") or "--help" in args
        print(e.message, file=sys.stdout if help_asked else sys.stderr)
        sys.exit(0 if help_asked else 2)
    except (BinaryError, FlowpackException) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    sys.stdout.flush()
    sys.stderr.flush()
    os.environ["FLOWPACK_PYTHON"] = sys.executable
    os.execv(path, [path, *command])
