"""The vocabulary the client's parts share: what a flow asks the driver for, what a resolved command runs,
and how each is described in messages a user can quote."""

import time
from collections.abc import Generator
from typing import Any, NamedTuple

from stopline.errors import StoplineError, UpstreamMisconfigured, UpstreamRejected
from stopline.models import Command, DeleteBuildTask, Outcome, StopBuild, StopDataArtsJob, StopPipelineRun
from stopline.wire import Call


class Reply(NamedTuple):
    """An upstream answer (or the failure that stood for one), reduced to what a result needs."""

    outcome: Outcome
    request_id: str | None
    api: str
    attempts: int = 1
    resolved: tuple[str, list[dict[str, Any]]] | None = None
    error: StoplineError | None = None
    """A failed command's error (``outcome`` is then ``failed``): failures are values here, never raised
    past the driver, so what a failure found (``resolved``) and cost (``attempts``) travels with it."""
    verified: bool | None = None
    """Set by :mod:`stopline.verify`: whether everything stopped was seen stopped."""
    state_after: str | None = None
    verify_calls: int | None = None
    schedule: Outcome | None = None
    """A DataArts ``scope: both`` command: what became of the job's schedule (its instances are ``resolved``)."""


class NeedToken:
    """Flow step: the driver must supply a valid IAM token (fetching it under its lock)."""


class StopInstance(NamedTuple):
    """One member of a DataArts ``scope: instances`` command: a running job instance to stop."""

    project_id: str
    job_name: str
    workspace: str | None
    instance_id: int
    action: str = "stop_dataarts_job"


class ApiGone(UpstreamMisconfigured):
    """The gateway says the API path does not exist (404 APIGW.0101)."""


class RunNotStopped(UpstreamRejected):
    """A pipeline run stop answered ``{"success": false}``: the run's detail says why."""


Member = StopBuild | StopDataArtsJob | StopInstance | StopPipelineRun
"""What a resolved command runs: one build stop, the job (schedule) stop, one instance or run stop."""
Resolving = StopBuild | StopDataArtsJob | StopPipelineRun
Operation = Command | StopInstance
Step = Call | NeedToken
Flow = Generator[Step, Any, Reply]


def describe(command: Operation | str) -> str:
    if isinstance(command, str):  # a call that is not a command's (an SMN publish): named by its caller
        return command
    if isinstance(command, StopBuild):
        if command.build_no is None:
            return f"running builds of {command.job_id}"
        return f"build {command.job_id}#{command.build_no}"
    if isinstance(command, DeleteBuildTask):
        return f"build task {command.job_id}"
    if isinstance(command, StopInstance):
        return f"DataArts job {command.job_name!r} instance {command.instance_id}"
    if isinstance(command, StopPipelineRun):
        if command.pipeline_run_id is None:
            return f"running runs of pipeline {command.pipeline_id}"
        return f"pipeline {command.pipeline_id} run {command.pipeline_run_id}"
    return f"DataArts job {command.job_name!r}"


def said(status: int, code: str | None, msg: str | None, request_id: str | None) -> str:
    """The cloud's answer in words a user can quote to support: status, code, message, request id."""
    text = f"HTTP {status}" + (f" {code}" if code else "") + (f": {msg}" if msg else "")
    return text + (f"; request id {request_id}" if request_id else "")


def window(hours_back: float, hours_ahead: float) -> tuple[float, float]:
    now = time.time()
    return now - hours_back * 3600, now + hours_ahead * 3600


def cloud_time(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch))


def build_no(record: dict[str, Any]) -> int:
    """A build record's number (``number``; 0 when it has none)."""
    try:
        return int(record.get("number", record.get("build_no")))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0


def commit_matches(commit: Any, prefix: str) -> bool:
    return isinstance(commit, str) and commit.strip().lower().startswith(prefix)


def known_commit(commit: Any) -> bool:
    """Whether a record names its commit at all (a build of a task without a code source may not)."""
    return isinstance(commit, str) and bool(commit.strip())


class Found(NamedTuple):
    """One look-up page read: what it holds and whether another page follows."""

    items: list[dict[str, Any]]
    more: bool


def failed(error: StoplineError, attempts: int, *, api: str = "",
           resolved: tuple[str, list[dict[str, Any]]] | None = None) -> Reply:
    """The reply standing for a failure: the error, the attempts it took, what it found."""
    request_id = error.upstream.request_id if error.upstream is not None else None
    return Reply(Outcome.FAILED, request_id, api, attempts, resolved, error)
