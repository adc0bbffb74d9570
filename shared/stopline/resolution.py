"""Finding what runs, and what a resolving command's members add up to.

A command that names no build (or DataArts instances, or pipeline run) is resolved: the look-up pages are
read by :class:`~stopline.client.ClientCore`'s flows; choosing what to stop from them, and combining the
members' answers into the command's outcome, is here.
"""

from __future__ import annotations

from typing import Any

from stopline.errors import StoplineError
from stopline.models import Outcome, StopBuild, StopDataArtsJob, StopPipelineRun
from stopline.operations import (
    Member,
    Reply,
    Resolving,
    StopInstance,
    build_no,
    commit_matches,
    describe,
    failed,
    known_commit,
)
from stopline.wire import epoch_ms

RUNNING_BUILD_STATES = frozenset({"running", "inqueue", "queued", "building", "waiting"})
RUNNING_INSTANCE_STATES = frozenset({"running", "waiting", "waiting-confirm", "pause"})


def passes(command: StopBuild | StopPipelineRun, commit: Any, branch: Any, started: Any) -> bool:
    """Whether work of ``commit`` on ``branch``, started at ``started`` (as the record gives it), is what
    the command's filters name: the same rules for builds and pipeline runs. Work without a start time
    never passes ``started_before``, and work without a commit never passes ``except_commit_id``: it could
    be the very commit the command spares (a superseding run must not stop the build of its own commit)."""
    if command.commit_id and not commit_matches(commit, command.commit_id):
        return False
    if command.except_commit_id and (not known_commit(commit) or commit_matches(commit, command.except_commit_id)):
        return False
    if command.branch is not None and branch != command.branch:
        return False
    if command.started_before is not None:
        at = epoch_ms(started)
        if at is None or at >= command.started_before.timestamp() * 1000:
            return False
    return True


def select_builds(command: StopBuild, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The running or queued records matching the filters, one per build number, oldest first."""
    chosen: dict[int, dict[str, Any]] = {}
    for record in records:
        states = {str(record.get(k) or "").strip().lower() for k in ("job_running_status", "state")}
        if not states & RUNNING_BUILD_STATES:
            continue
        if not passes(command, record.get("commit_id"), record.get("code_branch"), record.get("start_time")):
            continue
        number = build_no(record)
        if number >= 1:
            chosen.setdefault(number, record)
    return [chosen[n] for n in sorted(chosen)]


def select_instances(command: StopDataArtsJob, items: list[dict[str, Any]], project: str) -> list[StopInstance]:
    """The in-flight instances of the job, one per instance id, oldest id first."""
    chosen: dict[int, StopInstance] = {}
    for item in items:
        if str(item.get("status") or "").strip().lower() not in RUNNING_INSTANCE_STATES:
            continue
        if item.get("jobName") not in (None, command.job_name):
            continue
        try:
            instance_id = int(item.get("instanceId", item.get("instance_id")))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        chosen.setdefault(instance_id, StopInstance(project, command.job_name, command.workspace, instance_id))
    return [chosen[i] for i in sorted(chosen)]

# -- flows ----------------------------------------------------------------------------------------------


def combine(command: Resolving, done: list[tuple[Member, Reply]]) -> Reply:
    """The command's outcome from its members' (docs/commands.md): ``stopped`` when one was stopped and
    none failed, ``nothing_running`` when none matched, else the failure (transient wins)."""
    key = ("builds" if isinstance(command, StopBuild) else
           "runs" if isinstance(command, StopPipelineRun) else "instances")
    entries: list[dict[str, Any]] = []
    failures: list[StoplineError] = []
    outcomes: list[Outcome] = []
    request_id, attempts, api = None, 1, {"builds": "records", "runs": "pipeline-runs"}.get(key, key)
    job_reply: Reply | None = None
    for member, answer in done:
        attempts = max(attempts, answer.attempts)
        if isinstance(member, StopDataArtsJob):
            job_reply = answer
            if answer.error is not None:
                failures.append(answer.error)
            else:
                outcomes.append(answer.outcome)
            continue
        entry: dict[str, Any] = (
            {"build_no": member.build_no} if isinstance(member, StopBuild)
            else {"pipeline_run_id": member.pipeline_run_id} if isinstance(member, StopPipelineRun)
            else {"instance_id": member.instance_id})
        if answer.error is not None:
            entry.update(outcome=str(Outcome.FAILED), status=answer.error.status, error=answer.error.to_json())
            failures.append(answer.error)
        else:
            entry.update(outcome=str(answer.outcome), upstream_request_id=answer.request_id)
            outcomes.append(answer.outcome)
            request_id, api = answer.request_id, answer.api
        entries.append(entry)
    resolved = (key, entries)
    if failures:
        first = next((f for f in failures if f.transient), failures[0])
        what = describe(command)
        total = len(done)
        error = type(first)(f"{what}: {len(failures)} of {total} stop{'s' if total != 1 else ''} failed; "
                            f"first: {first.message}", details=first.details, upstream=first.upstream,
                            retry_after=max((f.retry_after or 0 for f in failures if f.transient), default=None)
                            or first.retry_after)
        return failed(error, attempts, api=api, resolved=resolved)
    schedule = job_reply.outcome if job_reply is not None and job_reply.error is None else None
    if job_reply is not None and not entries:
        return Reply(job_reply.outcome, job_reply.request_id, job_reply.api, job_reply.attempts, resolved,
                     schedule=schedule)
    if job_reply is not None:
        request_id, api = job_reply.request_id, job_reply.api
    if not outcomes:
        return Reply(Outcome.NOTHING_RUNNING, None, api, attempts, resolved)
    stopped = Outcome.STOPPED in outcomes
    return Reply(Outcome.STOPPED if stopped else Outcome.ALREADY_STOPPED, request_id, api, attempts, resolved,
                 schedule=schedule)


def job_member(command: StopDataArtsJob) -> StopDataArtsJob | None:
    """Scope ``both`` also stops the job (its schedule) once the instances are done."""
    if command.scope == "both":
        return command.model_copy(update={"scope": None, "idempotency_key": None})
    return None


def running_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a user wants to see of the running build records: number, state, branch, commit, start."""
    return [{"build_no": build_no(r), "state": str(r.get("job_running_status") or r.get("state") or ""),
             "branch": r.get("code_branch"), "commit_id": r.get("commit_id"), "start_time": r.get("start_time")}
            for r in records]
