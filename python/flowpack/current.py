"""``current``: where the running task is (Metaflow's ``from metaflow import current``).

Read from the environment ``flowpack step`` gives the task (docs/runtime.md). Outside a task
``is_running_flow`` is False and every other property is None.
"""

from __future__ import annotations

import os

# `typing` only for type checkers: importing it costs every task's start ~3 ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import ClassVar


class Current:
    """The running task's identity; every property is None outside a task."""

    _parameter_names: ClassVar[list[str]] = []

    def _get(self, var: str) -> str | None:
        return os.environ.get(var) if self.is_running_flow else None

    @property
    def is_running_flow(self) -> bool:
        """True inside a task that ``flowpack step`` runs."""
        return all(
            os.environ.get(v)
            for v in (
                "FLOWPACK_FLOW",
                "FLOWPACK_RUN_ID",
                "FLOWPACK_STEP",
                "FLOWPACK_TASK_ID",
            )
        )

    @property
    def flow_name(self) -> str | None:
        """The flow's name (its class name for a Python flow)."""
        return self._get("FLOWPACK_FLOW")

    @property
    def run_id(self) -> str | None:
        """The run's id (``local-…``, ``kfp-…`` or ``argo-…``)."""
        return self._get("FLOWPACK_RUN_ID")

    @property
    def step_name(self) -> str | None:
        """The step being run."""
        return self._get("FLOWPACK_STEP")

    @property
    def task_id(self) -> str | None:
        """The task's id: ``0``, or the foreach indices (``3.1``)."""
        return self._get("FLOWPACK_TASK_ID")

    @property
    def retry_count(self) -> int | None:
        """How many attempts of this task came before this one (0 on the first)."""
        attempt = self._get("FLOWPACK_ATTEMPT")
        return int(attempt) if attempt is not None else None

    @property
    def origin_run_id(self) -> str | None:
        """The run this run resumes, when it is a resume."""
        return self._get("FLOWPACK_ORIGIN_RUN_ID") or None

    @property
    def run_status(self) -> str | None:
        """In an exit hook (``@exit_hook``): ``"succeeded"`` or ``"failed"``, the status of
        the run's other tasks; None in any other step."""
        return self._get("FLOWPACK_RUN_STATUS") or None

    @property
    def failed_tasks(self) -> list[str] | None:
        """In an exit hook: the run's failed tasks as ``STEP/TASK`` (``["train/3"]``); None
        in any other step."""
        path = self._get("FLOWPACK_FAILED_TASKS_FILE")
        if not path:
            return None
        import json  # only here: a task that never asks does not pay for it

        with open(path, encoding="utf-8") as f:
            return list(json.load(f))

    @property
    def pathspec(self) -> str | None:
        """``Flow/run/step/task``."""
        if not self.is_running_flow:
            return None
        return f"{self.flow_name}/{self.run_id}/{self.step_name}/{self.task_id}"

    @property
    def tempdir(self) -> str | None:
        """A private temporary folder of the task."""
        return self._get("TMPDIR")

    @property
    def store(self) -> str | None:
        """The store's URL (without secrets)."""
        return self._get("FLOWPACK_STORE")

    @property
    def parameter_names(self) -> list[str] | None:
        """The names of the flow's parameters."""
        return list(self._parameter_names) if self.is_running_flow else None

    def __repr__(self) -> str:
        if not self.is_running_flow:
            return "current(not running a flow)"
        return f"current({self.pathspec}, retry_count={self.retry_count})"


current = Current()
