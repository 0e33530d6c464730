"""Run parameters of a Python flow: :class:`Parameter`, :data:`JSONType`, :class:`IncludeFile`.

A parameter is a class attribute of the flow. It owns its flowpack type (``string``, ``int``,
``float``, ``bool``, ``json``), its default as the flow document carries it, and the value a
task sees: read-only, through the descriptor protocol (``self.alpha = 1`` raises).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from .exception import FlowpackException

# `typing` only for type checkers: importing it costs every task's start ~3 ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# The largest file an IncludeFile carries (its text or base64 is the parameter's value).
INCLUDE_LIMIT = 1024 * 1024


class JSONTypeClass:
    """The type of a JSON parameter: ``Parameter('grid', type=JSONType, default='[1, 2]')``.

    The value a step sees is the decoded JSON (a list, a dict, a number, …).
    """

    name = "JSON"

    def __call__(self, text: str) -> Any:
        """Decodes a JSON text."""
        return json.loads(text)

    def __repr__(self) -> str:
        return "JSONType"


JSONType = JSONTypeClass()

_KINDS: dict[Any, str] = {str: "string", int: "int", float: "float", bool: "bool"}


class Parameter:
    """A run parameter: ``alpha = Parameter('alpha', default=0.01, help='Learning rate')``.

    Args:
        name: the parameter's name; equal to the attribute it is assigned to.
        default: the value when a run gives none (a JSON text for ``type=JSONType``).
        type: ``str``, ``int``, ``float``, ``bool`` or ``JSONType``; inferred from the default
            when not given (``str`` without a default).
        help: the text ``--help`` and the pipeline show.
        required: the run must give a value (the default is then not used).
        show_default: accepted for Metaflow compatibility; has no effect.

    Raises:
        FlowpackException: an unsupported type or a default that does not fit it.
    """

    def __init__(
        self,
        name: str,
        default: Any = None,
        type: Any = None,
        help: str | None = None,
        required: bool = False,
        show_default: bool = True,
        **unsupported: Any,
    ) -> None:
        if unsupported:
            names = ", ".join(sorted(unsupported))
            raise FlowpackException(
                f"Parameter '{name}': unsupported argument(s) {names}; flowpack's Parameter "
                "takes name, default, type, help and required"
            )
        if not isinstance(name, str) or not name.isidentifier():
            raise FlowpackException(
                f"Parameter name {name!r} is not an identifier: use letters, digits and _"
            )
        if callable(default):
            raise FlowpackException(
                f"Parameter '{name}': a function as the default (a deploy-time parameter) is "
                "not supported; give a value"
            )
        self.name = name
        self.help = help
        self.required = bool(required)
        self.show_default = show_default
        self.kind = self._kind(type, default)
        self.default = None if default is None else self._convert(default, "default")
        self.attr: str | None = None
        self.line = 0

    def _kind(self, type_: Any, default: Any) -> str:
        if type_ is None:
            if default is None:
                return "string"
            if isinstance(default, bool):
                return "bool"
            for py, kind in _KINDS.items():
                if isinstance(default, py):
                    return kind
            raise FlowpackException(
                f"Parameter '{self.name}': cannot infer a type from the default "
                f"{default!r} ({default.__class__.__name__}): give type=JSONType for a list "
                "or a dict, or one of str, int, float, bool"
            )
        if type_ is JSONType or isinstance(type_, JSONTypeClass):
            return "json"
        if type_ in _KINDS:
            return _KINDS[type_]
        raise FlowpackException(
            f"Parameter '{self.name}': type {type_!r} is not supported; use str, int, float, "
            "bool or JSONType"
        )

    def _convert(self, value: Any, what: str) -> Any:
        """``value`` as the parameter's type (texts are parsed, as from a command line)."""
        kind = self.kind
        try:
            if kind == "json":
                return json.loads(value) if isinstance(value, str) else value
            if kind == "string":
                if isinstance(value, str):
                    return value
            elif kind == "bool":
                if isinstance(value, bool):
                    return value
                if isinstance(value, str) and value.lower() in (
                    "true",
                    "false",
                    "1",
                    "0",
                ):
                    return value.lower() in ("true", "1")
            elif kind == "int":
                if isinstance(value, int) and not isinstance(value, bool):
                    return value
                if isinstance(value, str):
                    return int(value)
            elif kind == "float":
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    return float(value)
                if isinstance(value, str):
                    return float(value)
        except ValueError as e:
            raise FlowpackException(
                f"Parameter '{self.name}': the {what} {value!r} is not a valid {kind}: {e}"
            ) from None
        raise FlowpackException(
            f"Parameter '{self.name}': the {what} {value!r} is not a {kind}; give a value of "
            "the parameter's type"
        )

    def __set_name__(self, owner: type, attr: str) -> None:
        self.attr = attr

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        if obj is None:
            return self
        return obj._flowpack_parameter(self)

    def __set__(self, obj: Any, value: Any) -> None:
        raise AttributeError(
            f"'{self.attr or self.name}' is a Parameter and cannot be assigned: parameters are "
            "read-only in every step; store a changed value under another name"
        )

    def flow_spec(self, flow_dir: Path) -> dict[str, Any]:
        """The parameter as the flow document carries it: ``{type, default, help}``."""
        spec: dict[str, Any] = {"type": self.kind}
        if not self.required and self.default is not None:
            spec["default"] = self.default
        if self.help:
            spec["help"] = self.help
        return spec

    def value_from_run(self, value: Any) -> Any:
        """The value a step sees, from the run's parameter file (JSON-decoded)."""
        if self.kind == "float" and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value

    def __repr__(self) -> str:
        return f"Parameter({self.name!r}, type={self.kind})"


class IncludeFile(Parameter):
    """A file's content as a parameter: ``data = IncludeFile('data', default='data.csv')``.

    The file is read when the flow is described (the default, relative to the flow file's
    folder) or when the run starts (``--data PATH``), and carried as the run's parameter, so a
    pod never needs the laptop's path. A step sees the text (``is_text=True``) or the bytes.

    Args:
        name: the parameter's name.
        default: the path of the file.
        is_text: decode the file as text (else the step sees bytes).
        encoding: the text's encoding.
        help: the help text.
        required: the run must name a file.
    """

    def __init__(
        self,
        name: str,
        default: str | None = None,
        is_text: bool = True,
        encoding: str = "utf-8",
        help: str | None = None,
        required: bool = False,
        **unsupported: Any,
    ) -> None:
        if default is not None and not isinstance(default, str):
            raise FlowpackException(
                f"IncludeFile '{name}': the default must be a path (text), not {default!r}"
            )
        super().__init__(
            name, default=default, type=str, help=help, required=required, **unsupported
        )
        self.is_text = bool(is_text)
        self.encoding = encoding

    def encode_file(self, path: Path) -> str:
        """The parameter value carrying the file at ``path``: its text, or its base64.

        Raises:
            FlowpackException: the file is missing, too large, or not text in ``encoding``.
        """
        try:
            size = path.stat().st_size
        except OSError as e:
            raise FlowpackException(
                f"IncludeFile '{self.name}': cannot read {path}: {e.strerror}"
            ) from None
        if size > INCLUDE_LIMIT:
            raise FlowpackException(
                f"IncludeFile '{self.name}': {path} is {size} bytes, more than the "
                f"{INCLUDE_LIMIT} an included file may have; put large data in the code "
                "folder or read it from storage in a step"
            )
        data = path.read_bytes()
        if not self.is_text:
            return base64.b64encode(data).decode("ascii")
        try:
            return data.decode(self.encoding)
        except UnicodeDecodeError as e:
            raise FlowpackException(
                f"IncludeFile '{self.name}': {path} is not {self.encoding} text ({e}); "
                "give is_text=False for a binary file"
            ) from None

    def flow_spec(self, flow_dir: Path) -> dict[str, Any]:
        """The parameter as the flow document carries it: a string holding the file."""
        spec: dict[str, Any] = {"type": "string"}
        if not self.required and self.default is not None:
            spec["default"] = self.encode_file(flow_dir / self.default)
        if self.help:
            spec["help"] = self.help
        return spec

    def value_from_run(self, value: Any) -> Any:
        """The text, or the bytes decoded from base64."""
        if self.is_text or value is None:
            return value
        return base64.b64decode(value)

    def __repr__(self) -> str:
        return f"IncludeFile({self.name!r})"
