"""The errors flowpack's Python side raises, and the picklable form of a caught exception.

:class:`FlowpackException` is the base of every error that names a mistake in a flow (its text
is shown as it is, without a Python traceback); :class:`ExceptionWrapper` is what ``@catch``
stores as an artifact (Metaflow's ``MetaflowExceptionWrapper``).
"""

from __future__ import annotations


class FlowpackException(Exception):
    """A mistake in a flow or its use, with a message that says what to do.

    Attributes:
        line: the flow file's line the mistake is at, when known (0 otherwise).
        col: its column, 1-based, when known (0 otherwise).
    """

    def __init__(self, message: str, line: int = 0, col: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.col = col


class MergeArtifactsError(FlowpackException):
    """``merge_artifacts`` found conflicting values, or an ``include`` name no input has.

    Attributes:
        artifacts: the names of the artifacts at fault.
    """

    def __init__(self, message: str, artifacts: list[str]) -> None:
        super().__init__(message)
        self.artifacts = artifacts


class ExceptionWrapper:
    """An exception caught by ``@catch``, stored as an artifact: picklable, whatever the
    exception held (Metaflow's ``MetaflowExceptionWrapper``).

    Attributes:
        type: the exception's class, ``module.Name``.
        message: ``str(exception)``.
        exception: the same text (Metaflow's name for it).
        traceback: the formatted traceback.
    """

    def __init__(self, exc: BaseException | None = None) -> None:
        if exc is None:
            self.type = ""
            self.message = ""
            self.traceback = ""
        else:
            cls = type(exc)
            self.type = f"{cls.__module__}.{cls.__qualname__}"
            self.message = str(exc)
            import traceback  # only when an exception is caught: not in every task's start

            self.traceback = "".join(traceback.format_exception(cls, exc, exc.__traceback__))
        self.exception = self.message

    def __repr__(self) -> str:
        return f"ExceptionWrapper({self.type}: {self.message})"

    def __str__(self) -> str:
        return f"{self.type}: {self.message}"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ExceptionWrapper)
            and self.type == other.type
            and self.message == other.message
        )

    def __hash__(self) -> int:
        return hash((self.type, self.message))


# Metaflow's name, for code that imports it.
MetaflowExceptionWrapper = ExceptionWrapper
