"""Pipeline sources (docs/sources.md): GitHub and GitLab webhooks, verified by their own schemes
and normalised to one small event that rules match on.

The payload models read leniently -- GitHub and GitLab add fields all the time, so unknown keys are
ignored and every field a rule might use is optional here; :mod:`stopline.rules` reports a missing one
(422 naming it) only when a matching rule needs it. Verification never parses the body and compares in
constant time against every configured secret, so rotation needs no downtime.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from stopline.errors import InvalidCommand, Unauthorized

Source = Literal["github", "gitlab"]
Kind = Literal["cancelled", "started"]
SOURCES: tuple[Source, ...] = ("github", "gitlab")
EVENT_HEADER = {"github": "x-github-event", "gitlab": "x-gitlab-event"}


@dataclass(frozen=True, slots=True)
class SourceEvent:
    """What every rule sees of a pipeline event, whichever system sent it."""

    source: Source
    kind: Kind
    repository: str | None
    workflow: str | None
    branch: str | None
    sha: str | None
    run_id: str | None
    url: str | None
    origin: Mapping[str, str]
    """Where each field came from in the payload (``branch`` -> ``workflow_run.head_branch``), for errors."""

    created_at: str | None = None
    """When the run (GitHub) or pipeline/job (GitLab) was created, as RFC 3339 UTC: the ``{created_at}``
    placeholder, which makes superseding safe when events arrive out of order (docs/rules.md)."""

    def fields(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("origin")
        return data


@dataclass(frozen=True, slots=True)
class Ignored:
    """An event stopline does not act on: answered 200 so the sender does not mark the delivery failed."""

    reason: str


# -- verification -------------------------------------------------------------------------------------------
def verify_github(secrets: tuple[bytes, ...], headers: Mapping[str, str], body: bytes) -> None:
    """``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`` against every secret."""
    given = headers.get("x-hub-signature-256")
    if not given:
        why = ("only the legacy sha1 X-Hub-Signature was sent; stopline checks X-Hub-Signature-256"
               if headers.get("x-hub-signature") else "missing X-Hub-Signature-256 header")
        raise Unauthorized(why, details=[{"field": "x-hub-signature-256", "message": "required"}])
    scheme, _, offered = given.partition("=")
    matched = False
    for key in secrets:
        expected = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
        matched |= hmac.compare_digest(expected.encode(), given.strip().encode())  # every comparison runs
    if scheme != "sha256" or not offered or not matched:
        raise Unauthorized("X-Hub-Signature-256 does not match the body for any configured secret "
                           "(STOPLINE_GITHUB_SECRETS)",
                           details=[{"field": "x-hub-signature-256", "message": "no secret matches"}])


def verify_gitlab(tokens: tuple[bytes, ...], signing_keys: tuple[bytes, ...], headers: Mapping[str, str],
                  body: bytes, *, tolerance_s: int) -> None:
    """A Standard Webhooks signature when one is sent (it must verify, whatever the token says), else the
    hook's secret token ``X-Gitlab-Token``."""
    if headers.get("webhook-signature"):
        from stopline.webhooks import verify

        if not signing_keys:
            raise Unauthorized("a webhook-signature was sent but no GitLab signing token is configured "
                               "(STOPLINE_GITLAB_SIGNING_SECRETS)",
                               details=[{"field": "webhook-signature", "message": "no signing secret configured"}])
        verify(signing_keys, headers, body, tolerance_s=tolerance_s)
        return
    given = headers.get("x-gitlab-token")
    if not given:
        raise Unauthorized("missing X-Gitlab-Token (or Standard Webhooks signature) header",
                           details=[{"field": "x-gitlab-token", "message": "required"}])
    matched = False
    for token in tokens:
        matched |= hmac.compare_digest(token, given.encode())
    if not matched:
        raise Unauthorized("X-Gitlab-Token matches no configured token (STOPLINE_GITLAB_TOKENS)",
                           details=[{"field": "x-gitlab-token", "message": "no token matches"}])


# -- payloads -------------------------------------------------------------------------------------------------
class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)


class _Repository(_Lenient):
    full_name: str | None = None
    path_with_namespace: str | None = None
    web_url: str | None = None


class _Run(_Lenient):
    id: int | None = None
    run_id: int | None = None
    created_at: str | None = None
    name: str | None = None
    workflow_name: str | None = None
    head_branch: str | None = None
    head_sha: str | None = None
    html_url: str | None = None
    status: str | None = None
    conclusion: str | None = None


class _Workflow(_Lenient):
    name: str | None = None


class _GitHubRun(_Lenient):
    action: str
    workflow_run: _Run
    workflow: _Workflow | None = None
    repository: _Repository | None = None


class _GitHubJob(_Lenient):
    action: str
    workflow_job: _Run
    workflow: _Workflow | None = None
    repository: _Repository | None = None


class _PipelineAttributes(_Lenient):
    id: int | None = None
    ref: str | None = None
    sha: str | None = None
    status: str
    url: str | None = None
    created_at: str | None = None


class _GitLabPipeline(_Lenient):
    object_kind: Literal["pipeline"]
    object_attributes: _PipelineAttributes
    project: _Repository | None = None


class _JobRepository(_Lenient):
    homepage: str | None = None


class _GitLabJob(_Lenient):
    object_kind: Literal["build"]
    build_id: int | None = None
    build_status: str
    build_created_at: str | None = None
    ref: str | None = None
    sha: str | None = None
    pipeline_id: int | None = None
    project_id: int | None = None
    project: _Repository | None = None
    repository: _JobRepository | None = None


def _parse(model: type[_Lenient], data: dict[str, Any], event: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = [{"field": ".".join(str(p) for p in err["loc"]) or "body", "message": err["msg"]}
                   for err in exc.errors(include_url=False, include_input=False)]
        raise InvalidCommand(f"not a {event} payload: " + "; ".join(f"{d['field']}: {d['message']}" for d in details),
                             details=details) from None


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _utc(value: str | None) -> str | None:
    """GitHub's ``2020-07-29T09:57:16Z`` or GitLab's ``2026-12-02 10:03:09 UTC`` as RFC 3339 UTC."""
    if not value:
        return None
    from datetime import UTC, datetime

    text = value.strip().removesuffix(" UTC").replace(" ", "T", 1)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    aware = parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")


def guess_event_type(source: Source, data: dict[str, Any]) -> str:
    """The event header a payload was sent with, read from the payload itself (for a file without its
    headers: ``stopline rules explain``, ``stopline invoke``); "" when it is none stopline acts on."""
    if source == "gitlab":
        return {"pipeline": "Pipeline Hook", "build": "Job Hook"}.get(str(data.get("object_kind")), "")
    for name in ("workflow_run", "workflow_job"):
        if name in data:
            return name
    return "ping" if "zen" in data else ""


def normalise(source: Source, event_type: str | None, data: dict[str, Any], *,
              instance: str | None = None) -> SourceEvent | Ignored:
    """The event a rule matches on, or why it is ignored (docs/sources.md's ``kind`` list). ``instance``
    is GitLab's ``X-Gitlab-Instance`` (its base URL), used when a Job Hook carries no ``project``."""
    if source == "github":
        return _github(event_type or "", data)
    return _gitlab(event_type or "", data, instance)


def _github(event_type: str, data: dict[str, Any]) -> SourceEvent | Ignored:
    if event_type == "ping":
        return Ignored("ping")
    if event_type not in ("workflow_run", "workflow_job"):
        return Ignored(f"GitHub event {event_type or '(none)'!r} is not acted on (workflow_run, workflow_job)")
    if event_type == "workflow_run":
        run_event: _GitHubRun = _parse(_GitHubRun, data, "workflow_run")
        run, key = run_event.workflow_run, "workflow_run"
        if run_event.action == "completed" and run.conclusion == "cancelled":
            kind: Kind = "cancelled"
        elif run_event.action in ("requested", "in_progress"):
            kind = "started"
        else:
            return Ignored(f"workflow_run {run_event.action}" + (f" ({run.conclusion})" if run.conclusion else ""))
        # The workflow's own name: workflow_run.name is the run's title (a pull request's run of "CodeQL"
        # is named "PR #166"), so it serves only when the payload has no workflow object.
        workflow = (run_event.workflow.name if run_event.workflow and run_event.workflow.name else run.name)
        repo, run_id = run_event.repository, run.id
        origin = {"workflow": "workflow.name", "run_id": f"{key}.id"}
    else:
        job_event: _GitHubJob = _parse(_GitHubJob, data, "workflow_job")
        run, key = job_event.workflow_job, "workflow_job"
        if not (job_event.action == "completed" and run.conclusion == "cancelled"):
            return Ignored(f"workflow_job {job_event.action}" + (f" ({run.conclusion})" if run.conclusion else ""))
        kind, repo, run_id = "cancelled", job_event.repository, run.run_id
        workflow = job_event.workflow.name if job_event.workflow and job_event.workflow.name else run.workflow_name
        origin = {"workflow": f"{key}.workflow_name", "run_id": f"{key}.run_id"}
    return SourceEvent("github", kind, repo.full_name if repo else None, workflow, run.head_branch, run.head_sha,
                       _text(run_id), run.html_url,
                       {**origin, "repository": "repository.full_name", "branch": f"{key}.head_branch",
                        "sha": f"{key}.head_sha", "url": f"{key}.html_url", "created_at": f"{key}.created_at"},
                       _utc(run.created_at))


def _job_repository(job: _GitLabJob, instance: str | None) -> str | None:
    """A Job Hook's project path: ``project``, else ``repository.homepage`` less the instance URL (older
    GitLab and some gitlab.com deliveries carry no ``project``), else the project id."""
    if job.project and job.project.path_with_namespace:
        return job.project.path_with_namespace
    homepage = job.repository.homepage if job.repository else None
    if homepage:
        from urllib.parse import urlsplit

        base = (instance or "").rstrip("/")
        path = homepage[len(base):] if base and homepage.startswith(base) else urlsplit(homepage).path
        if path.strip("/"):
            return path.strip("/")
    return None if job.project_id is None else str(job.project_id)


def _gitlab(event_type: str, data: dict[str, Any], instance: str | None = None) -> SourceEvent | Ignored:
    if event_type == "Pipeline Hook":
        pipeline: _GitLabPipeline = _parse(_GitLabPipeline, data, "Pipeline Hook")
        attrs = pipeline.object_attributes
        if attrs.status in ("canceled", "canceling"):
            kind: Kind = "cancelled"
        elif attrs.status in ("created", "pending", "running"):
            kind = "started"
        else:
            return Ignored(f"pipeline {attrs.status}")
        project = pipeline.project
        return SourceEvent("gitlab", kind, project.path_with_namespace if project else None, None, attrs.ref,
                           attrs.sha, _text(attrs.id), attrs.url,
                           {"repository": "project.path_with_namespace", "branch": "object_attributes.ref",
                            "sha": "object_attributes.sha", "run_id": "object_attributes.id",
                            "url": "object_attributes.url", "created_at": "object_attributes.created_at"},
                           _utc(attrs.created_at))
    if event_type == "Job Hook":
        job: _GitLabJob = _parse(_GitLabJob, data, "Job Hook")
        if job.build_status != "canceled":
            return Ignored(f"job {job.build_status}")
        project = job.project
        url = f"{project.web_url}/-/jobs/{job.build_id}" if project and project.web_url and job.build_id else None
        return SourceEvent("gitlab", "cancelled", _job_repository(job, instance), None, job.ref,
                           job.sha, _text(job.pipeline_id), url,
                           {"repository": "project.path_with_namespace", "branch": "ref", "sha": "sha",
                            "run_id": "pipeline_id", "url": "project.web_url", "created_at": "build_created_at"},
                           _utc(job.build_created_at))
    return Ignored(f"GitLab event {event_type or '(none)'!r} is not acted on (Pipeline Hook, Job Hook)")
