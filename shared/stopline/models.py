"""Commands (docs/commands.md): their fields, validation and the one parser every trigger uses.

Action and outcome strings are spelled here and nowhere else. Parsing a command never raises
anything but :class:`~stopline.errors.InvalidCommand`, whose ``details`` name every bad field, so every
trigger (HTTP, CloudEvent, queue) reports the same 422 for the same mistake.

Unlike the rest of the package, this module's annotations are not postponed (no ``from __future__ import
annotations``): pydantic would otherwise evaluate each field's annotation string when the class is defined,
about 0.4 ms of every cold start.
"""

import hashlib
import json
import unicodedata
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
)

from stopline.errors import InvalidCommand
from stopline.result import Outcome, Result

__all__ = ["COMMAND_TYPES", "Action", "Command", "DeleteBuildTask", "Outcome", "Result", "StopBuild",
           "StopDataArtsJob", "StopPipelineRun", "parse_command"]


class Action(StrEnum):
    STOP_BUILD = "stop_build"
    DELETE_BUILD_TASK = "delete_build_task"
    STOP_DATAARTS_JOB = "stop_dataarts_job"
    STOP_PIPELINE_RUN = "stop_pipeline_run"


def _build_no(value: object) -> object:
    """Accept an integer or a string of digits; refuse bools and floats, which JSON senders mean otherwise."""
    if isinstance(value, bool):
        raise ValueError("build_no must be an integer >= 1, not a boolean")
    if isinstance(value, str):
        text = value.strip()
        if not text.isdecimal() or not text.isascii():
            raise ValueError("build_no must be an integer >= 1 (digits only)")
        return int(text)
    if isinstance(value, float):
        raise ValueError("build_no must be an integer >= 1, not a number with a fraction part")
    return value


def _commit(value: object) -> object:
    """Commit shas compare case-insensitively: normalise to lower case so the command hash does too."""
    return value.strip().lower() if isinstance(value, str) else value


def _no_dot_segment(value: str) -> str:
    # httpx (like every URL library) collapses "." and ".." segments: the request would go to, and be
    # signed for, another path (docs/sources.md).
    if value in (".", ".."):
        raise ValueError("'.' and '..' are not job names")
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise ValueError("must not contain control characters")
    return value


JobId = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9]{32}$",
        description="a CodeArts Build task id: the 32 letters/digits at the end of the task's edit URL",
    ),
]
BuildNo = Annotated[int, BeforeValidator(_build_no), Field(ge=1, le=2**31 - 1, strict=True)]
# A slash would be signed as two path segments but sent as one (the official SDK's signer does the same).
JobName = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^/\\\x00-\x1f\x7f]+$",
                                description="a DataArts job name, without '/', '\\' or control characters"),
                    AfterValidator(_no_dot_segment)]
CommitSha = Annotated[str, BeforeValidator(_commit), Field(
    pattern=r"^[0-9a-f]{7,64}$", description="a full commit sha or a prefix of at least 7 hex characters")]
Branch = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f\x7f]+$",
                              description="a branch name, without control characters (line breaks, tabs)")]
ProjectId = Annotated[str, Field(pattern=r"^[A-Za-z0-9]{1,64}$", description="a project id: 1 to 64 letters/digits")]
Id32 = Annotated[str, Field(pattern=r"^[A-Za-z0-9]{32}$", description="32 letters/digits")]


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must carry a time zone (e.g. 2026-12-07T10:00:00Z)")
    return value.astimezone(UTC)


StartedBefore = Annotated[datetime, AfterValidator(_aware)]
"""An RFC 3339 time with a zone: only work that started before it is stopped."""
FILTERS = ("commit_id", "branch", "except_commit_id", "started_before")
"""The resolution filters: given as null or "" they are refused, never read as "no filter"."""


def names_nothing(raw: dict[str, Any], number: str) -> bool:
    """Whether a stop gives neither its ``number`` (``build_no``, ``pipeline_run_id``) nor any filter: it
    would stop everything that runs, so the library and a person at the CLI must mean it."""
    return raw.get(number) is None and all(raw.get(name) is None for name in FILTERS)
Workspace = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$",
                                 description="a DataArts workspace id: 1 to 64 letters, digits, '_' or '-'")]
IdempotencyKey = Annotated[str, Field(min_length=1, max_length=128)]
Scope = Annotated[Literal["job", "instances", "both"], AfterValidator(lambda value: None if value == "job" else value)]
"""What a DataArts stop covers. "job" is the default: stored as absent, so both spellings are one command
(same hash and target)."""


def _printable(value: str) -> str:
    if not value.isprintable():
        raise ValueError("must be printable text (no control characters or line breaks)")
    return value


Reason = Annotated[str, Field(min_length=1, max_length=256), AfterValidator(_printable)]
"""Why the command was sent: carried into the result, the log line and the audit event, never the hash."""


class _Command(BaseModel):
    # Schemas are built on first use: a cold start validates one action, not all three.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    idempotency_key: IdempotencyKey | None = None
    reason: Reason | None = None
    verify: bool | None = None
    """Read the cloud after an accepted stop until the work is seen stopped (default STOPLINE_VERIFY)."""

    def target(self) -> dict[str, Any]:
        """The identifying fields that responses and logs echo back as ``target`` (and the command hash
        covers): not the key, the reason or whether to verify -- a redelivery whose rule words it anew is
        the same command, and verifying reads the cloud without changing what the command does."""
        return self.model_dump(exclude={"action", "idempotency_key", "reason", "verify"}, exclude_none=True)

    def fingerprint(self) -> str:
        """A hash of the normalized command, stored with an idempotency claim (docs/exactly-once.md)."""
        canon = json.dumps(
            {"action": self.action, **self.target()}, sort_keys=True, separators=(",", ":")  # type: ignore[attr-defined]
        )
        return hashlib.sha256(canon.encode()).hexdigest()


class _Resolving(_Command):
    """A command that names one thing to stop, or finds what runs by its filters. A filter (or the number)
    sent as null or "" is refused: a template with an empty variable must not widen to everything."""

    commit_id: CommitSha | None = None
    branch: Branch | None = None
    except_commit_id: CommitSha | None = None
    started_before: StartedBefore | None = None

    def target(self) -> dict[str, Any]:
        found = super().target()
        if self.started_before is not None:
            found["started_before"] = self.started_before.isoformat().replace("+00:00", "Z")
        return found


class StopBuild(_Resolving):
    """One build (``build_no``), or every running/queued build of the task matching the filters."""

    action: Literal["stop_build"] = "stop_build"
    job_id: JobId
    build_no: BuildNo | None = None

    @property
    def resolves(self) -> bool:
        """Whether the builds to stop are looked up first (no build number given)."""
        return self.build_no is None


class DeleteBuildTask(_Command):
    action: Literal["delete_build_task"] = "delete_build_task"
    job_id: JobId


class StopDataArtsJob(_Command):
    action: Literal["stop_dataarts_job"] = "stop_dataarts_job"
    job_name: JobName
    project_id: ProjectId | None = None
    workspace: Workspace | None = None
    scope: Scope | None = None

    @property
    def resolves(self) -> bool:
        """Whether in-flight instances are looked up and stopped (scope ``instances`` or ``both``)."""
        return self.scope is not None


class StopPipelineRun(_Resolving):
    """One CodeArts Pipeline run (``pipeline_run_id``), or every running run of the pipeline matching the
    filters. The path's project is the CodeArts project (``STOPLINE_CODEARTS_PROJECT_ID`` by default)."""

    action: Literal["stop_pipeline_run"] = "stop_pipeline_run"
    pipeline_id: Id32
    pipeline_run_id: Id32 | None = None
    codearts_project_id: Id32 | None = None

    @property
    def resolves(self) -> bool:
        """Whether the running runs are looked up first (no run id given)."""
        return self.pipeline_run_id is None


Command = StopBuild | DeleteBuildTask | StopDataArtsJob | StopPipelineRun
CommandType = type[StopBuild] | type[DeleteBuildTask] | type[StopDataArtsJob] | type[StopPipelineRun]

COMMAND_TYPES: dict[str, CommandType] = {
    Action.STOP_BUILD: StopBuild,
    Action.DELETE_BUILD_TASK: DeleteBuildTask,
    Action.STOP_DATAARTS_JOB: StopDataArtsJob,
    Action.STOP_PIPELINE_RUN: StopPipelineRun,
}


def build_validators() -> None:
    """Build the deferred validators now (FunctionGraph's initializer), so the first command does not."""
    for model in COMMAND_TYPES.values():
        model.model_rebuild()


def _field_name(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "body"


def _refuse_empty(data: dict[str, Any], action: str, where: str) -> None:
    """A filter (or the number) sent as null or "" is refused: a template with an empty variable must not
    widen a command to everything that runs."""
    empty = [name for name in (*FILTERS, "build_no", "pipeline_run_id")
             if name in data and (data[name] is None or data[name] == "")]
    if empty:
        raise InvalidCommand(
            f"invalid {action} command: {', '.join(empty)} given empty; leave a field out rather than send null "
            'or "" (only a command without the number looks up what runs)',
            details=[{"field": f"{where}{name}", "message": "must not be null or empty"} for name in empty])


def expected(model: type[BaseModel], err: Any) -> str:
    """One validation error in words a sender (or an operator) can act on: a value that does not match its
    field's pattern says what it must be -- the field's description -- rather than the regular expression.
    Settings use it too."""
    field = model.model_fields.get(str(err["loc"][0])) if err["loc"] else None
    if err["type"] == "string_pattern_mismatch" and field is not None:
        # An optional field's description sits on its type inside the union (``Workspace | None``).
        inner = [getattr(meta, "description", None) for member in get_args(field.annotation)
                 for meta in get_args(member)[1:]]
        for description in (field.description, *inner):
            if description:
                return f"expected {description}"
    return str(err["msg"]).removeprefix("Value error, ")


def _invalid(exc: ValidationError, model: CommandType, action: str, where: str) -> InvalidCommand:
    """pydantic's errors in stopline's words: each bad field named, prefixed for batch members."""
    details = [
        {"field": f"{where}{_field_name(err['loc'])}", "message": expected(model, err), "type": err["type"]}
        for err in exc.errors(include_url=False, include_input=False, include_context=False)
    ]
    names = ", ".join(sorted({d["field"] for d in details}))
    reasons = "; ".join(f"{d['field']}: {d['message']}" for d in details[:5])
    return InvalidCommand(f"invalid {action} command: {reasons or names}", details=details)


def _refuse_filters_with_a_number(command: StopBuild | StopPipelineRun, where: str) -> None:
    named = "build_no" if isinstance(command, StopBuild) else "pipeline_run_id"
    if getattr(command, named) is None:
        return
    clash = [name for name in FILTERS if getattr(command, name) is not None]
    if clash:
        raise InvalidCommand(
            f"invalid {command.action} command: {', '.join(clash)} cannot be combined with {named} "
            f"(leave {named} out to stop everything running that matches)",
            details=[{"field": f"{where}{name}", "message": f"not allowed together with {named}"}
                     for name in clash])


def parse_command(data: object, *, action: str | None = None, where: str = "") -> Command:
    """Validate one command.

    Args:
        data: the decoded JSON value.
        action: the action a per-action target or a CloudEvent ``type`` implies; the payload's own
            ``action`` must then match it.
        where: a prefix for field names (``commands.3.``) so batch errors point at the member.

    Raises:
        InvalidCommand: naming each bad field in ``details``.
    """
    if not isinstance(data, dict):
        raise InvalidCommand(
            "a command must be a JSON object",
            details=[{"field": where.rstrip(".") or "body", "message": "expected a JSON object"}],
        )
    given = data.get("action")
    if action is not None and given is not None and given != action:
        raise InvalidCommand(
            f"this target runs {action!r}, the command says {given!r}",
            details=[{"field": f"{where}action", "message": f"must be {action!r} here (or left out)"}],
        )
    chosen = given if given is not None else action
    if chosen is None:
        raise InvalidCommand(
            "the command has no action",
            details=[{"field": f"{where}action", "message": f"required: one of {', '.join(COMMAND_TYPES)}"}],
        )
    model = COMMAND_TYPES.get(chosen) if isinstance(chosen, str) else None
    if model is None:
        raise InvalidCommand(
            f"unknown action {chosen!r}",
            details=[{"field": f"{where}action", "message": f"must be one of {', '.join(COMMAND_TYPES)}"}],
        )
    if model in (StopBuild, StopPipelineRun):
        _refuse_empty(data, str(chosen), where)
    try:
        command = model.model_validate({**data, "action": chosen})
    except ValidationError as exc:
        raise _invalid(exc, model, str(chosen), where) from None
    if isinstance(command, StopBuild | StopPipelineRun):
        _refuse_filters_with_a_number(command, where)
    return command
