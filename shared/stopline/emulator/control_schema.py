"""What the emulator's control API accepts (docs/cloud-answers.md), checked before anything changes: a
seed (``POST /_emulator/seed``, ``Emulator.seed``) or a fault rule (``POST /_emulator/faults``) with a
misspelt section or field, or a value of the wrong type, is refused naming it -- where a seed section was
silently ignored (a seed that seeds nothing), a bad value failed deep inside with a Python message, and a
bad regular expression dropped the connection.

The values the states may take (build ``state``, instance ``status``, run ``status``) stay checked where
they are used, in :mod:`stopline.emulator.state`, which owns those lists."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stopline.emulator.faults import FaultKind


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CredentialSeed(_Section):
    ak: str
    sk: str
    project_id: str | None = None
    security_token: str | None = None


class IamUserSeed(_Section):
    domain: str
    username: str
    password: str


class TokenSeed(_Section):
    token: str
    project_id: str | None = None


class BuildSeed(_Section):
    build_no: int = Field(ge=1)
    state: str = "running"
    commit_id: str | None = None
    branch: str | None = None
    start_time: int | None = None
    age_s: float = 60
    stop_takes_s: float = Field(0, ge=0)


class BuildTaskSeed(_Section):
    job_id: str
    project_id: str = ""
    deleted: bool = False
    builds: list[BuildSeed] = []


class InstanceSeed(_Section):
    instance_id: int
    status: str = "running"
    plan_time: int | None = None
    age_s: float = 300


class DataArtsJobSeed(_Section):
    project_id: str
    job_name: str
    workspace: str | None = None
    state: str = "running"
    instances: list[InstanceSeed] = []


class RunSeed(_Section):
    pipeline_run_id: str
    status: str = "RUNNING"
    commit_id: str | None = None
    branch: str | None = None
    start_time: int | None = None
    age_s: float = 60
    run_number: int | None = None


class PipelineSeed(_Section):
    codearts_project_id: str
    pipeline_id: str
    runs: list[RunSeed] = []


class Seed(_Section):
    credentials: list[CredentialSeed] = []
    iam_users: list[IamUserSeed] = []
    tokens: list[str | TokenSeed] = []
    build_tasks: list[BuildTaskSeed] = []
    dataarts_jobs: list[DataArtsJobSeed] = []
    pipelines: list[PipelineSeed] = []


class FaultSpec(_Section):
    path: str
    kind: FaultKind
    rate: float | None = Field(None, ge=0, le=1)
    count: int | None = Field(None, ge=0)
    status: int = Field(503, ge=100, le=599)
    retry_after: int | float | None = Field(1, ge=0)  # an int stays one: the header reads "3", not "3.0"
    delay_ms: int | None = Field(None, ge=0)
    error_code: str | None = None
    error_msg: str | None = None
    seed: int | None = None
    body: Any = None
    raw: str | None = None


def checked_fault(data: object) -> dict[str, Any]:
    """A fault rule's fields as given (``body`` only when given: null is a body too); raises ValueError
    naming every bad field."""
    try:
        return FaultSpec.model_validate(data).model_dump(exclude_unset=True)
    except ValidationError as exc:
        raise ValueError(f"fault: {problems(exc)}") from None


def checked_seed(data: object) -> dict[str, Any]:
    """``data`` as plain dicts and lists, holding only the fields it gave; raises ValueError naming every
    bad field (``build_tasks.0.job_id: Field required``)."""
    try:
        return Seed.model_validate(data).model_dump(exclude_unset=True)
    except ValidationError as exc:
        raise ValueError(f"seed: {problems(exc)}") from None


def problems(exc: ValidationError) -> str:
    """pydantic's errors as one line: each field's path and what is wrong with it."""
    return "; ".join(f"{'.'.join(str(part) for part in err['loc']) or 'body'}: {err['msg']}"
                     for err in exc.errors(include_url=False))
