"""Verifying a stop (docs/commands.md, "Verified stops"): after the cloud accepted a stop, read the work
until it is seen stopped, within ``STOPLINE_VERIFY_S`` and never past the delivery's deadline.

An accepted stop is not a stopped build: the cloud answers at once and the work ends some time later (it
documents no figure). Each poll is one look-up for everything the command stopped -- the task's build
records, the job's instances, or each run's detail -- so a resolution of 20 builds costs one listing per
poll, not 20 reads. Polls start at once and back off from 0.5 s; a failed poll only means "not seen yet".
Nothing here changes an outcome: an unconfirmed stop stays ``stopped`` with ``verified: false``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, NamedTuple

from stopline.codearts_pipeline import still_running
from stopline.models import Outcome, StopBuild, StopDataArtsJob, StopPipelineRun
from stopline.operations import Reply, Step, build_no
from stopline.resolution import RUNNING_BUILD_STATES, RUNNING_INSTANCE_STATES
from stopline.wire import Call

if TYPE_CHECKING:
    from stopline.deadline import Deadline
    from stopline.driver import Client
    from stopline.models import Command

FIRST_WAIT_S = 0.5
LONGEST_WAIT_S = 4.0
ENTRY_KEYS = {"builds": "build_no", "instances": "instance_id", "runs": "pipeline_run_id"}


class Verification(NamedTuple):
    """What the polls saw: per stopped item its last state (None: never seen), and the calls they cost."""

    states: dict[str, str | None]
    stopped: dict[str, bool]
    calls: int

    @property
    def verified(self) -> bool:
        return bool(self.stopped) and all(self.stopped.values())


Look = Callable[[list[str]], Generator[Step, Any, dict[str, tuple[str, bool]]]]
"""One poll: a flow returning, per item it saw, (the cloud's state string, whether that is stopped)."""


def verify(client: Client, command: Command, reply: Reply, deadline: Deadline | None, limit_s: float) -> Reply:
    """``reply`` with ``verified``, ``state_after`` and ``verify_calls``; unchanged when it stopped nothing
    or stopped something with no state to read (a DataArts job's schedule: ``verified`` stays None)."""
    items = stopped_items(command, reply)
    look = _look(client, command)
    if not items or look is None:  # nothing with a state to read: verified stays None, at no cost
        return reply._replace(verified=None, verify_calls=0)
    seen = poll(client, command, look, items, deadline, limit_s)
    if reply.resolved is None:
        only = items[0]
        return reply._replace(verified=seen.verified, state_after=seen.states[only], verify_calls=seen.calls)
    kind, entries = reply.resolved
    key = ENTRY_KEYS[kind]
    marked = [{**e, "verified": seen.stopped[str(e[key])], "state_after": seen.states[str(e[key])]}
              if str(e.get(key)) in seen.stopped else e for e in entries]
    return reply._replace(resolved=(kind, marked), verified=seen.verified, verify_calls=seen.calls)


def stopped_items(command: Command, reply: Reply) -> list[str]:
    """What the command stopped (as strings): its own build or run, or the members the resolution stopped."""
    if reply.error is not None or reply.outcome is not Outcome.STOPPED:
        return []
    if reply.resolved is not None:
        kind, entries = reply.resolved
        key = ENTRY_KEYS[kind]
        return [str(e[key]) for e in entries if e.get("outcome") == str(Outcome.STOPPED) and key in e]
    if isinstance(command, StopBuild) and command.build_no is not None:
        return [str(command.build_no)]
    if isinstance(command, StopPipelineRun) and command.pipeline_run_id is not None:
        return [command.pipeline_run_id]
    return []


def poll(client: Client, command: Command, look: Look, items: list[str], deadline: Deadline | None,
         limit_s: float) -> Verification:
    """Look until every item is seen stopped or the time is up (the limit, or the deadline's soft end)."""
    ends = time.monotonic() + limit_s
    if deadline is not None:
        ends = min(ends, deadline.at)
    states: dict[str, str | None] = dict.fromkeys(items)
    stopped = dict.fromkeys(items, False)
    calls, wait = [0], FIRST_WAIT_S
    while True:
        found = client.read(command, _counted(look(items), calls), deadline)
        if isinstance(found, dict):
            for item, (state, done) in found.items():
                if item in states:
                    states[item], stopped[item] = state, done
        if all(stopped.values()):
            break
        left = ends - time.monotonic()
        if left <= 0:
            break
        time.sleep(min(wait, left))  # a wait cut by the limit ends in one last look at the limit
        wait = min(wait * 2, LONGEST_WAIT_S)
    return Verification(states, stopped, calls[0])


def _counted(flow: Generator[Step, Any, Any], calls: list[int]) -> Generator[Step, Any, Any]:
    """``flow``, counting the cloud calls it makes (a listing of several pages is several calls)."""
    try:
        step = next(flow)
        while True:
            if isinstance(step, Call):
                calls[0] += 1
            step = flow.send((yield step))
    except StopIteration as done:
        return done.value


def _look(client: Client, command: Command) -> Look | None:
    core = client.core
    if isinstance(command, StopBuild):
        def builds(_: list[str]) -> Generator[Step, Any, dict[str, tuple[str, bool]]]:
            records = yield from core.records_flow(StopBuild(job_id=command.job_id))
            seen: dict[str, tuple[str, bool]] = {}
            for record in records:
                states = [str(record.get(k) or "") for k in ("state", "job_running_status")]
                running = any(s.strip().lower() in RUNNING_BUILD_STATES for s in states)
                seen.setdefault(str(build_no(record)), (states[0] or states[1], not running))
            return seen
        return builds
    if isinstance(command, StopDataArtsJob):
        if command.scope is None:  # the schedule: no documented state to read
            return None

        def instances(_: list[str]) -> Generator[Step, Any, dict[str, tuple[str, bool]]]:
            found = yield from core.instances_flow(command)
            return {str(i.get("instanceId")): (str(i.get("status") or ""),
                                               str(i.get("status") or "").lower() not in RUNNING_INSTANCE_STATES)
                    for i in found if i.get("instanceId") is not None}
        return instances
    if isinstance(command, StopPipelineRun):
        def runs(items: list[str]) -> Generator[Step, Any, dict[str, tuple[str, bool]]]:
            seen: dict[str, tuple[str, bool]] = {}
            for run in items:  # the cloud lists only running runs: each run's detail says what it became
                one = command.model_copy(update={"pipeline_run_id": run})
                detail = yield from core.run_detail_flow(one)
                status = detail.get("status") if isinstance(detail, dict) else None
                seen[run] = (str(status or ""), still_running(detail) is False)
            return seen
        return runs
    return None
