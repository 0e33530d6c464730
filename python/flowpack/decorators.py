"""Step and flow decorators: ``@step``, the step settings (``@resources``, ``@retry``,
``@timeout``, ``@environment``, ``@catch``, ``@cache``, ``@kubernetes``, ``@pypi``) and the flow's
(``@schedule``, ``@pypi_base``).

A decorator only records itself on the function or class, checked when applied (a wrong
argument fails the import at the decorator's line). Each one knows the flow-document settings
it stands for (:meth:`Decorator.settings`). Metaflow's decorators flowpack does not support
(``@card``, ``@conda``, ``@batch``, …) exist so that an unchanged Metaflow flow gets a clear
error rather than an import failure.
"""

from __future__ import annotations

from collections.abc import Callable

from .exception import FlowpackException

# `typing` only for type checkers: importing it costs every task's start ~3 ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

STEP_ATTR = "_flowpack_decorators"
FLOW_ATTR = "_flowpack_flow_decorators"


def step(f: Callable[..., Any]) -> Callable[..., Any]:
    """Marks a method of a FlowSpec as a step (Metaflow's ``@step``)."""
    if not callable(f):
        raise FlowpackException("@step decorates a method: write @step above def NAME(self)")
    f.is_step = True  # type: ignore[attr-defined]
    if not hasattr(f, STEP_ATTR):
        setattr(f, STEP_ATTR, [])
    return f


class Decorator:
    """One applied decorator: its name and its arguments with the defaults filled in."""

    def __init__(self, name: str, attributes: dict[str, Any]) -> None:
        self.name = name
        self.attributes = attributes

    def settings(self) -> dict[str, Any]:
        """The flow-document settings this decorator stands for."""
        return _SETTINGS[self.name](self.attributes)

    def __repr__(self) -> str:
        return f"@{self.name}({self.attributes})"


def _fail(name: str, text: str) -> FlowpackException:
    return FlowpackException(f"@{name}: {text}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _str_dict(name: str, arg: str, v: Any) -> dict[str, str]:
    if not isinstance(v, dict) or not all(isinstance(k, str) for k in v):
        raise _fail(name, f"{arg} must be a dict of names to values, not {v!r}")
    out = {}
    for k, x in v.items():
        if isinstance(x, (str, int, float, bool)):
            out[k] = x if isinstance(x, str) else str(x)
        else:
            raise _fail(name, f"{arg}[{k!r}] must be text or a number, not {x!r}")
    return out


def _quantity(name: str, arg: str, v: Any, mb: bool) -> Any:
    """A Kubernetes quantity: ints are MB (memory, disk) or counts (cpu, gpu); texts pass."""
    if v is None:
        return None
    if isinstance(v, str):
        return v
    if mb and _is_int(v):
        return f"{v}Mi"
    if not mb and _is_num(v):
        return v if arg == "gpu" else str(v)
    raise _fail(name, f"{arg} must be a number or a quantity text like '4Gi', not {v!r}")


def _packages(name: str, v: Any) -> list[str]:
    if not isinstance(v, dict):
        raise _fail(name, f"packages must be a dict {{name: version}}, not {v!r}")
    out = []
    for pkg, ver in v.items():
        if not isinstance(pkg, str) or not isinstance(ver, str):
            raise _fail(name, f"packages must map names to version texts, not {pkg!r}: {ver!r}")
        ver = ver.strip()
        if not ver:
            out.append(pkg)
        elif ver[0] in "=<>!~":
            out.append(f"{pkg}{ver}")
        else:
            out.append(f"{pkg}=={ver}")
    return out


def _check_resources(name: str, a: dict[str, Any]) -> None:
    for arg in ("cpu", "memory", "gpu", "disk"):
        _quantity(name, arg, a.get(arg), arg in ("memory", "disk"))


def _resources(a: dict[str, Any], name: str = "resources") -> dict[str, Any]:
    res = {}
    for arg in ("cpu", "memory", "gpu", "disk"):
        q = _quantity(name, arg, a.get(arg), arg in ("memory", "disk"))
        if q is not None:
            res[arg] = q
    return {"resources": res} if res else {}


def _check_retry(name: str, a: dict[str, Any]) -> None:
    if not _is_int(a["times"]) or a["times"] < 0:
        raise _fail(name, f"times must be a whole number >= 0, not {a['times']!r}")
    m = a["minutes_between_retries"]
    if not _is_num(m) or m < 0:
        raise _fail(name, f"minutes_between_retries must be a number >= 0, not {m!r}")


def _check_cache(name: str, a: dict[str, Any]) -> None:
    if not isinstance(a["enabled"], bool):
        raise _fail(name, f"enabled must be True or False, not {a['enabled']!r}")


def _retry(a: dict[str, Any]) -> dict[str, Any]:
    seconds = a["minutes_between_retries"] * 60
    seconds = int(seconds) if float(seconds).is_integer() else seconds
    return {"retry": {"times": a["times"], "delay": f"{seconds}s"}}


def _check_timeout(name: str, a: dict[str, Any]) -> None:
    for arg in ("seconds", "minutes", "hours"):
        if not _is_int(a[arg]) or a[arg] < 0:
            raise _fail(name, f"{arg} must be a whole number >= 0, not {a[arg]!r}")
    if _timeout_seconds(a) == 0:
        raise _fail(name, "give a duration: @timeout(seconds=…, minutes=…, hours=…)")


def _timeout_seconds(a: dict[str, Any]) -> int:
    return int(a["seconds"] + 60 * a["minutes"] + 3600 * a["hours"])


def _check_environment(name: str, a: dict[str, Any]) -> None:
    _str_dict(name, "vars", a["vars"])


def _check_catch(name: str, a: dict[str, Any]) -> None:
    var = a["var"]
    if var is not None and (not isinstance(var, str) or not var.isidentifier()):
        raise _fail(name, f"var must be an artifact name (an identifier), not {var!r}")
    if var is not None and var.startswith("_"):
        raise _fail(name, f"var {var!r} starts with '_': such attributes are not artifacts")
    if not isinstance(a["print_exception"], bool):
        raise _fail(name, "print_exception must be True or False")


_PULL = ("Always", "IfNotPresent", "Never")


def _check_kubernetes(name: str, a: dict[str, Any]) -> None:
    _check_resources(name, a)
    for arg in ("image", "service_account", "image_pull_policy"):
        if a.get(arg) is not None and not isinstance(a[arg], str):
            raise _fail(name, f"{arg} must be text, not {a[arg]!r}")
    if a.get("image_pull_policy") not in (None, *_PULL):
        raise _fail(name, f"image_pull_policy must be one of {', '.join(_PULL)}")
    secrets = a.get("secrets")
    if secrets is not None:
        if isinstance(secrets, (list, tuple, str)):
            raise _fail(
                name,
                "secrets as a list of secret names is Metaflow's form, which flowpack does not "
                "support: give a dict of environment variables to SECRET/KEY, "
                "secrets={'DB_PASSWORD': 'db-credentials/password'}",
            )
        for var, ref in _str_dict(name, "secrets", secrets).items():
            if ref.count("/") != 1:
                raise _fail(name, f"secrets[{var!r}] must be 'SECRET/KEY', not {ref!r}")
    ns = a.get("node_selector")
    if ns is not None and not isinstance(ns, (dict, str)):
        raise _fail(name, "node_selector must be a dict or 'key=value,key2=value2'")
    if isinstance(ns, str):
        for part in filter(None, ns.split(",")):
            if "=" not in part:
                raise _fail(name, f"node_selector entry {part!r} is not key=value")
    elif ns is not None:
        _str_dict(name, "node_selector", ns)
    tol = a.get("tolerations")
    if tol is not None and (not isinstance(tol, list) or not all(isinstance(t, dict) for t in tol)):
        raise _fail(name, "tolerations must be a list of dicts (key, operator, value, effect)")


def _kubernetes(a: dict[str, Any]) -> dict[str, Any]:
    out = _resources(a, "kubernetes")
    for arg in ("image", "service_account", "image_pull_policy", "tolerations"):
        if a.get(arg) is not None:
            out[arg] = a[arg]
    if a.get("secrets"):
        out["secrets"] = _str_dict("kubernetes", "secrets", a["secrets"])
    ns = a.get("node_selector")
    if isinstance(ns, str):
        ns = dict(p.split("=", 1) for p in ns.split(",") if p)
    if ns:
        out["node_selector"] = {k.strip(): str(v).strip() for k, v in ns.items()}
    return out


def _check_pypi(name: str, a: dict[str, Any]) -> None:
    _packages(name, a["packages"])
    if a["python"] is not None and not isinstance(a["python"], str):
        raise _fail(name, f"python must be a version text like '3.11', not {a['python']!r}")


def _python_env(a: dict[str, Any]) -> dict[str, Any]:
    env: dict[str, Any] = {"packages": _packages("pypi", a["packages"])}
    if a["python"]:
        env["python"] = a["python"]
    return env


def _check_schedule(name: str, a: dict[str, Any]) -> None:
    if a["cron"] is not None and not isinstance(a["cron"], str):
        raise _fail(name, f"cron must be text like '0 * * * *', not {a['cron']!r}")
    if a["timezone"] is not None and not isinstance(a["timezone"], str):
        raise _fail(name, "timezone must be text like 'Europe/Paris'")
    for arg in ("daily", "hourly", "weekly"):
        if not isinstance(a[arg], bool):
            raise _fail(name, f"{arg} must be True or False")


def _check_exit_hook(name: str, a: dict[str, Any]) -> None:
    for arg in ("on_failure", "on_exit"):
        v = a[arg]
        if v is not None and not isinstance(v, str):
            raise _fail(
                name,
                f"{arg} names a step of the flow as text, e.g. {arg}='notify', not {v!r}: "
                "flowpack's exit hooks are steps (they run as tasks, locally and on Kubeflow)",
            )
    if a["on_failure"] is None and a["on_exit"] is None:
        raise _fail(name, "names no step: give on_failure='STEP' and/or on_exit='STEP'")


def exit_hook_spec(a: dict[str, Any]) -> dict[str, str]:
    """``@exit_hook``'s attributes as the flow document's ``on_failure`` / ``on_exit``."""
    return {k: a[k] for k in ("on_failure", "on_exit") if a[k] is not None}


def schedule_spec(a: dict[str, Any]) -> dict[str, Any]:
    """``@schedule``'s attributes as the flow document's ``schedule``."""
    if a["cron"]:
        cron = a["cron"]
    elif a["hourly"]:
        cron = "0 * * * *"
    elif a["weekly"]:
        cron = "0 0 * * 0"
    else:
        cron = "0 0 * * *"
    return {"cron": cron, "timezone": a["timezone"] or "UTC"}


# name -> (defaults, check, kind) where kind is "step" or "flow".
_SPECS: dict[str, tuple[dict[str, Any], Callable[[str, dict[str, Any]], None], str]] = {
    "resources": (
        {"cpu": None, "memory": None, "gpu": None, "disk": None},
        _check_resources,
        "step",
    ),
    "retry": ({"times": 3, "minutes_between_retries": 2}, _check_retry, "step"),
    "timeout": ({"seconds": 0, "minutes": 0, "hours": 0}, _check_timeout, "step"),
    "environment": ({"vars": {}}, _check_environment, "step"),
    "cache": ({"enabled": True}, _check_cache, "step"),
    "catch": ({"var": None, "print_exception": True}, _check_catch, "step"),
    "kubernetes": (
        {
            "image": None,
            "secrets": None,
            "node_selector": None,
            "tolerations": None,
            "service_account": None,
            "image_pull_policy": None,
            "cpu": None,
            "memory": None,
            "gpu": None,
            "disk": None,
        },
        _check_kubernetes,
        "step",
    ),
    "pypi": ({"packages": {}, "python": None}, _check_pypi, "step"),
    "pypi_base": ({"packages": {}, "python": None}, _check_pypi, "flow"),
    "schedule": (
        {
            "cron": None,
            "daily": True,
            "hourly": False,
            "weekly": False,
            "timezone": None,
        },
        _check_schedule,
        "flow",
    ),
    "exit_hook": ({"on_failure": None, "on_exit": None}, _check_exit_hook, "flow"),
}

_SETTINGS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "resources": _resources,
    "retry": _retry,
    "timeout": lambda a: {"timeout": _timeout_seconds(a)},
    "environment": lambda a: (
        {"env": _str_dict("environment", "vars", a["vars"])} if a["vars"] else {}
    ),
    "catch": lambda a: {},
    "cache": lambda a: {} if a["enabled"] else {"cache": False},
    "kubernetes": _kubernetes,
    "pypi": lambda a: {"python_env": _python_env(a)},
    "pypi_base": lambda a: {},
    "schedule": lambda a: {},
    "exit_hook": lambda a: {},
}


class DecoratorFactory:
    """A decorator as users write it: ``@retry``, ``@retry()`` or ``@retry(times=2)``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.defaults, self._check, self.kind = _SPECS[name]
        self.__name__ = name
        self.__doc__ = f"flowpack's @{name} ({self.kind} decorator)."

    def __call__(self, target: Any = None, **kwargs: Any) -> Any:
        if target is not None and not kwargs and (callable(target) or isinstance(target, type)):
            return self._apply(target, {})
        if target is not None:
            raise _fail(self.name, "takes keyword arguments only, e.g. " + self._example())
        unknown = sorted(set(kwargs) - set(self.defaults))
        if unknown:
            raise _fail(
                self.name,
                f"unsupported argument(s) {', '.join(unknown)}; it takes "
                + ", ".join(self.defaults),
            )
        attrs = {**self.defaults, **kwargs}
        self._check(self.name, attrs)
        return lambda t: self._apply(t, kwargs)

    def _example(self) -> str:
        k, v = next(iter(self.defaults.items()))
        return f"@{self.name}({k}={v!r})"

    def _apply(self, target: Any, kwargs: dict[str, Any]) -> Any:
        attrs = {**self.defaults, **kwargs}
        self._check(self.name, attrs)
        if self.kind == "flow":
            if not isinstance(target, type):
                raise _fail(
                    self.name,
                    "decorates the flow class, not a step: put it above class",
                )
            own = target.__dict__.get(FLOW_ATTR, [])
            if any(d.name == self.name for d in own):
                raise _fail(self.name, "is given twice on the flow; give it once")
            setattr(target, FLOW_ATTR, [*own, Decorator(self.name, attrs)])
            return target
        if isinstance(target, type) or not callable(target):
            raise _fail(self.name, "decorates a step: put it above @step def NAME(self)")
        decos = list(getattr(target, STEP_ATTR, []))
        if any(d.name == self.name for d in decos):
            raise _fail(self.name, f"is given twice on step '{target.__name__}'; give it once")
        decos.append(Decorator(self.name, attrs))
        setattr(target, STEP_ATTR, decos)
        return target

    def __repr__(self) -> str:
        return f"<flowpack decorator @{self.name}>"


class UnsupportedDecorator:
    """A Metaflow decorator flowpack does not support: applying it is an error."""

    def __init__(self, name: str, why: str) -> None:
        self.name = name
        self.why = why
        self.__name__ = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise FlowpackException(f"unsupported decorator @{self.name}: {self.why}")


resources = DecoratorFactory("resources")
retry = DecoratorFactory("retry")
timeout = DecoratorFactory("timeout")
environment = DecoratorFactory("environment")
catch = DecoratorFactory("catch")
cache = DecoratorFactory("cache")
kubernetes = DecoratorFactory("kubernetes")
pypi = DecoratorFactory("pypi")
pypi_base = DecoratorFactory("pypi_base")
schedule = DecoratorFactory("schedule")
exit_hook = DecoratorFactory("exit_hook")

_REMOVE = "remove it (flowpack runs steps locally and on Kubeflow Pipelines)"
card = UnsupportedDecorator("card", "flowpack has no cards; " + _REMOVE)
conda = UnsupportedDecorator("conda", "use @pypi(packages={...}) instead")
conda_base = UnsupportedDecorator("conda_base", "use @pypi_base(packages={...}) instead")
batch = UnsupportedDecorator("batch", "use @kubernetes or @resources; " + _REMOVE)
parallel = UnsupportedDecorator("parallel", "multi-node steps are not supported; " + _REMOVE)
secrets = UnsupportedDecorator(
    "secrets", "give secrets as @kubernetes(secrets={'VAR': 'secret/key'})"
)
project = UnsupportedDecorator("project", "flowpack has no projects; " + _REMOVE)
trigger = UnsupportedDecorator("trigger", "event triggers are not supported; " + _REMOVE)
trigger_on_finish = UnsupportedDecorator(
    "trigger_on_finish", "event triggers are not supported; " + _REMOVE
)

STEP_DECORATORS = (
    "resources",
    "retry",
    "timeout",
    "environment",
    "catch",
    "cache",
    "kubernetes",
    "pypi",
)
FLOW_DECORATORS = ("schedule", "pypi_base", "exit_hook")


def step_decorators(func: Callable[..., Any]) -> list[Decorator]:
    """The decorators applied to a step function, in the order applied."""
    return list(getattr(func, STEP_ATTR, []))


def flow_decorators(cls: type) -> list[Decorator]:
    """The flow decorators of a flow class (its own and its bases')."""
    seen: dict[str, Decorator] = {}
    for klass in reversed(cls.__mro__):
        for d in klass.__dict__.get(FLOW_ATTR, []):
            seen[d.name] = d
    return list(seen.values())


def hook_steps(cls: type) -> dict[str, str]:
    """The steps ``@exit_hook`` names on a flow class, by key (``on_failure``, ``on_exit``)."""
    d = find(flow_decorators(cls), "exit_hook")
    return exit_hook_spec(d.attributes) if d else {}


def find(decos: list[Decorator], name: str) -> Decorator | None:
    """The decorator called ``name`` among ``decos``."""
    return next((d for d in decos if d.name == name), None)
