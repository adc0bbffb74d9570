"""stopline as a library: ``from stopline import Client``.

The same validation, allowlists, client, retries and outcomes as the functions -- the same composition
root (:class:`stopline.entry.Runtime`) without its log handler -- for code that already knows what to
stop (a release tool, a notebook, a test). Each method returns the
:class:`~stopline.models.Result` a function would have answered with: check ``result.ok``, read
``result.outcome`` or ``result.error``; ``result.to_json()`` is the function's JSON body. Bad arguments
are a failed result of type ``invalid`` naming the field, exactly as over HTTP, and never reach the
cloud. An ``idempotency_key`` makes a repeated call a ``duplicate`` for as long as this object lives with
``memory://``, or across processes with a shared Redis (``STOPLINE_IDEMPOTENCY_URL``).
"""

from __future__ import annotations

from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from stopline.driver import Client as Driver
    from stopline.models import Result
    from stopline.settings import Settings

Scope = Literal["job", "instances", "both"]


def _when(value: datetime | str | None) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


class Client:
    """Stop CodeArts builds and Pipeline runs, delete build tasks and stop DataArts jobs from Python.

    ``Client()`` reads the functions' environment variables (docs/configuration.md); pass a
    :class:`~stopline.settings.Settings`, or use :meth:`from_env` with overrides, to configure it in code.
    Use it as a context manager, or call :meth:`close`, to release its connections. Thread-safe: one
    instance can serve many threads.

    Raises:
        ConfigurationError: (without ``settings``) a variable is invalid; the message names it.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        from stopline import transport
        from stopline.entry import Runtime

        if settings is None:
            from stopline.settings import load_settings

            settings = load_settings()
        self.settings = settings
        # The functions' composition root, without their log handler; inside mock_huaweicloud() its
        # transport is the emulator's.
        self._runtime = Runtime(settings, transport_override=transport.current(), configure_logging=False)

    @classmethod
    def from_env(cls, **overrides: Any) -> Client:
        """Settings from the environment, with keyword overrides by field name (``timeout_s=3``).

        Raises:
            ConfigurationError: a variable is invalid (the message names it, never its value).
        """
        from stopline.settings import load_settings

        return cls(load_settings(**overrides))

    def _client(self) -> Driver:
        return self._runtime.client()

    def _run(self, command: dict[str, Any], *, named: str | None = None, all_running: bool = False) -> Result:
        from stopline.models import names_nothing
        from stopline.pipeline import Delivery

        raw = {k: v for k, v in command.items() if v is not None}
        if named is not None and not all_running and names_nothing(raw, named):
            from stopline.errors import InvalidCommand
            from stopline.models import Outcome, Result

            error = InvalidCommand(f"{raw['action']} without {named} and without a filter would stop everything "
                                   "that runs; give a filter, or all_running=True to mean it",
                                   details=[{"field": named, "message": "required unless all_running=True"}])
            return Result(raw["action"], Outcome.FAILED, error=error)
        return self._runtime.pipeline.handle(raw, Delivery(None, "library"))

    def stop_build(self, job_id: str, build_no: int | None = None, *, commit_id: str | None = None,
                   branch: str | None = None, except_commit_id: str | None = None,
                   started_before: datetime | str | None = None, all_running: bool = False,
                   idempotency_key: str | None = None) -> Result:
        """Stop build ``build_no`` of CodeArts Build task ``job_id``; without a number, every running or
        queued build that matches ``commit_id`` / ``branch`` / ``except_commit_id`` / ``started_before``
        (``result.resolved`` lists them; ``nothing_running`` when none did). Stopping every running build
        of the task, with no number and no filter, takes ``all_running=True``."""
        return self._run({"action": "stop_build", "job_id": job_id, "build_no": build_no, "commit_id": commit_id,
                          "branch": branch, "except_commit_id": except_commit_id,
                          "started_before": _when(started_before), "idempotency_key": idempotency_key},
                         named="build_no", all_running=all_running)

    def stop_pipeline_run(self, pipeline_id: str, pipeline_run_id: str | None = None, *,
                          codearts_project_id: str | None = None, commit_id: str | None = None,
                          branch: str | None = None, except_commit_id: str | None = None,
                          started_before: datetime | str | None = None, all_running: bool = False,
                          idempotency_key: str | None = None) -> Result:
        """Stop run ``pipeline_run_id`` of CodeArts Pipeline ``pipeline_id`` (``codearts_project_id``, else
        STOPLINE_CODEARTS_PROJECT_ID, is the CodeArts project's id); without a run id, every running run
        that matches the filters (``result.resolved`` is ``("runs", [...])``). Every running run of the
        pipeline, with no id and no filter, takes ``all_running=True``."""
        return self._run({"action": "stop_pipeline_run", "pipeline_id": pipeline_id,
                          "pipeline_run_id": pipeline_run_id, "codearts_project_id": codearts_project_id,
                          "commit_id": commit_id, "branch": branch, "except_commit_id": except_commit_id,
                          "started_before": _when(started_before), "idempotency_key": idempotency_key},
                         named="pipeline_run_id", all_running=all_running)

    def running(self, job_id: str, *, commit_id: str | None = None, branch: str | None = None) -> list[dict[str, Any]]:
        """The running and queued builds of task ``job_id`` (matching ``commit_id`` / ``branch``), oldest
        first: ``[{"build_no", "state", "branch", "commit_id", "start_time"}, ...]``.

        Raises:
            InvalidCommand: an argument is invalid (the details name it).
            StoplineError: the look-up failed (its type says how, as for a failed result).
        """
        from stopline.models import StopBuild, parse_command
        from stopline.resolution import running_rows

        raw = {"action": "stop_build", "job_id": job_id, "commit_id": commit_id, "branch": branch}
        command = parse_command({k: v for k, v in raw.items() if v is not None})
        assert isinstance(command, StopBuild)
        return running_rows(self._client().running(command))

    def running_runs(self, pipeline_id: str, *, codearts_project_id: str | None = None, commit_id: str | None = None,
                     branch: str | None = None) -> list[dict[str, Any]]:
        """The running runs of CodeArts Pipeline ``pipeline_id``, oldest first: ``[{"pipeline_run_id",
        "run_number", "state", "branch", "commit_id", "start_time"}, ...]``. Raises as :meth:`running`."""
        from stopline.codearts_pipeline import running_rows
        from stopline.models import StopPipelineRun, parse_command

        raw = {"action": "stop_pipeline_run", "pipeline_id": pipeline_id, "codearts_project_id": codearts_project_id,
               "commit_id": commit_id, "branch": branch}
        command = parse_command({k: v for k, v in raw.items() if v is not None})
        assert isinstance(command, StopPipelineRun)
        return running_rows(self._client().running(command))

    def delete_build_task(self, job_id: str, *, idempotency_key: str | None = None) -> Result:
        """Delete CodeArts Build task ``job_id`` (``already_deleted`` when it is gone)."""
        return self._run({"action": "delete_build_task", "job_id": job_id, "idempotency_key": idempotency_key})

    def stop_dataarts_job(self, job_name: str, *, workspace: str | None = None, project_id: str | None = None,
                          scope: Scope = "job", idempotency_key: str | None = None) -> Result:
        """Stop DataArts Studio job ``job_name``: its schedule (``scope="job"``), its running instances
        (``"instances"``), or both."""
        return self._run({"action": "stop_dataarts_job", "job_name": job_name, "workspace": workspace,
                          "project_id": project_id, "scope": None if scope == "job" else scope,
                          "idempotency_key": idempotency_key})

    def close(self) -> None:
        self._runtime.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
