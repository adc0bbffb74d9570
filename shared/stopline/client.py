"""The calls' logic, free of I/O: planning each request and the flows that make up an attempt.

Request building lives once, in :class:`ClientCore`, as a generator "flow" that yields what it needs
(an IAM token, or a request to send) and receives the answer -- the same sans-IO shape as
``httpx.Auth.auth_flow``. :class:`stopline.driver.Client` drives it over httpx. Reading an answer is
:mod:`stopline.answers`' job; choosing what to stop from a look-up and combining the members' results,
:mod:`stopline.resolution`'s (loaded by the first look-up: a cold start stopping one build does without); the
CodeArts Pipeline requests, :mod:`stopline.codearts_pipeline`'s.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Generator
from typing import TYPE_CHECKING, Any, Literal, cast
from urllib.parse import quote

from stopline import codearts_pipeline as runs
from stopline.answers import Answers
from stopline.auth.credentials import AkSk, Credentials, StaticToken
from stopline.endpoints import Endpoints
from stopline.errors import (
    ConfigurationError,
    InvalidCommand,
    NotFound,
    StoplineError,
    UpstreamAuth,
    UpstreamRejected,
)
from stopline.models import DeleteBuildTask, Outcome, StopBuild, StopDataArtsJob, StopPipelineRun
from stopline.operations import (
    ApiGone,
    Flow,
    Found,
    Member,
    NeedToken,
    Operation,
    Reply,
    Resolving,
    Step,
    StopInstance,
    build_no,
    cloud_time,
    describe,
    window,
)
from stopline.wire import Call, RawReply

if TYPE_CHECKING:
    from stopline.auth.iam import IamPasswordToken
    from stopline.settings import Settings

log = logging.getLogger("stopline")

JSON_HEADERS = {"Content-Type": "application/json"}
USER_AGENT = "stopline/0.1"
RECORD_PAGE_SIZE = 100
INSTANCE_PAGE_SIZE = 100
MAX_PAGES = 50
"""A look-up reads at most this many pages (5,000 records): a bound, not a limit anyone should reach."""
FAN_OUT = 20
"""Stops of one resolved command in flight at once."""


class ClientCore:
    """Everything about the calls that does not depend on how bytes are moved."""

    def __init__(
        self,
        *,
        credentials: Credentials,
        endpoints: Endpoints,
        project_id: str | None,
        not_running_codes: tuple[str, ...],
        build_stop_api: Literal["auto", "v3", "v1"] = "auto",
        max_attempts: int = 4,
        timeout_s: float = 10.0,
        codearts_project_id: str | None = None,
    ) -> None:
        self.credentials = credentials
        self.codearts_project_id = codearts_project_id
        self.endpoints = endpoints
        self.project_id = project_id
        self.answers = Answers(frozenset(not_running_codes))
        self.build_stop_api = build_stop_api
        self.max_attempts = max_attempts
        self.timeout_s = timeout_s
        self._use_v1 = build_stop_api == "v1"
        self._lock = threading.Lock()

    @property
    def stop_api(self) -> str:
        """The CodeArts stop path this process uses now: ``v3`` (seed 000) or ``v1`` (its replacement)."""
        return "v1" if self._use_v1 else "v3"

    # -- planning -------------------------------------------------------------------------------------------
    def _project(self, command: StopDataArtsJob) -> str:
        project = command.project_id or self.project_id
        if not project:
            raise InvalidCommand(
                "stop_dataarts_job needs a project_id: give one in the command or set HUAWEICLOUD_SDK_PROJECT_ID",
                details=[{"field": "project_id", "message": "required when no project is configured"}],
            )
        return project

    def _codearts_project(self, command: StopPipelineRun) -> str:
        project = command.codearts_project_id or self.codearts_project_id
        if not project:
            raise InvalidCommand(
                "stop_pipeline_run needs the CodeArts project id: give codearts_project_id in the command or "
                "set STOPLINE_CODEARTS_PROJECT_ID (it is the CodeArts project's id, not the IAM project)",
                details=[{"field": "codearts_project_id", "message": "required when none is configured"}])
        return project

    @staticmethod
    def _headers(workspace: str | None = None) -> dict[str, str]:
        headers = {**JSON_HEADERS, "User-Agent": USER_AGENT}
        if workspace:
            headers["workspace"] = workspace
        return headers

    def plan(self, command: Operation) -> Call:
        """The request for one stop or delete, without authentication."""
        headers = self._headers()
        if isinstance(command, StopBuild):
            base = self.endpoints.codearts_build
            if self._use_v1:
                # build_no in the query (the official SDK's stop_the_job) and in the body (the API
                # reference and terraform): they disagree, so send both (docs/cloud-answers.md).
                return Call.build(
                    "POST", base, f"/v1/job/{command.job_id}/stop", api="v1",
                    query=(("build_no", str(command.build_no)),), headers=headers,
                    body=f'{{"build_no":{command.build_no}}}'.encode(),
                )
            body = f'{{"job_id":"{command.job_id}","build_no":"{command.build_no}"}}'.encode()
            return Call.build("POST", base, "/v3/jobs/stop", api="v3", headers=headers, body=body)
        if isinstance(command, DeleteBuildTask):
            return Call.build(
                "POST", self.endpoints.codearts_build, f"/v3/jobs/{command.job_id}/delete",
                api="delete", headers=headers,
            )
        if isinstance(command, StopPipelineRun):
            return runs.plan_stop(command, self.endpoints.codearts_pipeline, self._codearts_project(command),
                                  {"User-Agent": USER_AGENT})
        if isinstance(command, StopInstance):
            return Call.build(
                "POST", self.endpoints.dataarts,
                f"/v1/{command.project_id}/jobs/{quote(command.job_name, safe='')}/instances/"
                f"{command.instance_id}/stop", api="dataarts-instance", headers=self._headers(command.workspace),
            )
        return Call.build(
            "POST", self.endpoints.dataarts,
            f"/v1/{self._project(command)}/jobs/{quote(command.job_name, safe='')}/stop",
            api="dataarts", headers=self._headers(command.workspace),
        )

    def plan_records(self, command: StopBuild, page: int, span: tuple[float, float], *, v1: bool = False) -> Call:
        """One page of the task's build records (v3 route, or v1 where v3 answers nothing; section 10.1)."""
        path = (f"/v1/record/{command.job_id}/list" if v1
                else f"/v3/jobs/{command.job_id}/build-info-records")
        query = (("end_time", cloud_time(span[1])), ("page_index", str(page)),
                 ("page_size", str(RECORD_PAGE_SIZE)), ("start_time", cloud_time(span[0])))
        return Call.build("GET", self.endpoints.codearts_build, path, api="records", query=query,
                          headers={"User-Agent": USER_AGENT})

    def plan_instances(self, command: StopDataArtsJob, offset: int, span: tuple[float, float]) -> Call:
        """One page of the job's instances of the last 7 days (docs/commands.md)."""
        query = (("jobName", command.job_name), ("limit", str(INSTANCE_PAGE_SIZE)),
                 ("maxPlanTime", str(int(span[1] * 1000))), ("minPlanTime", str(int(span[0] * 1000))),
                 ("offset", str(offset)), ("preciseQuery", "jobName"))
        headers = {"User-Agent": USER_AGENT, **({"workspace": command.workspace} if command.workspace else {})}
        return Call.build("GET", self.endpoints.dataarts, f"/v1/{self._project(command)}/jobs/instances/detail",
                          api="instances", query=query, headers=headers)

    # -- reading --------------------------------------------------------------------------------------------
    def _exchange(self, call: Call) -> Generator[Step, Any, tuple[RawReply, str | None]]:
        """Authenticate and send ``call``: (reply, the token used)."""
        token: str | None = (yield NeedToken()) if self.credentials.needs_token else None
        reply = yield self.authorize(call, token)
        return reply, token

    def _refresh(self, exc: UpstreamAuth, token: str | None, refreshed: bool) -> bool:
        """Whether to resend once with a new IAM token after a 401 (section 5, mode 3)."""
        if (self.credentials.needs_token and token is not None
                and exc.upstream is not None and exc.upstream.status == 401 and not refreshed):
            cast("IamPasswordToken", self.credentials).invalidate(token)
            return True
        return False

    def flow(self, command: Operation) -> Flow:
        """One attempt: yields NeedToken / Call steps, receives a token / RawReply, returns a Reply.

        Inside one attempt it also handles the two re-sends that are not retries: switching to the
        v1 stop API when v3 is gone (``auto``), and refreshing a refused IAM token once.
        """
        if isinstance(command, StopPipelineRun):
            return (yield from self.run_stop_flow(command))
        return (yield from self._plain_flow(command))

    def _plain_flow(self, command: Operation) -> Flow:
        refreshed = False
        while True:
            call = self.plan(command)
            reply, token = yield from self._exchange(call)
            try:
                return self.answers.read(command, call, reply)
            except ApiGone:
                if call.api == "v3" and self.build_stop_api == "auto":
                    with self._lock:
                        self._use_v1 = True
                    log.warning("CodeArts Build v3 stop API is gone (APIGW.0101); using the v1 stop API "
                                "for the rest of this process", extra={"api": "v1"})
                    continue
                raise
            except UpstreamAuth as exc:
                if self._refresh(exc, token, refreshed):
                    refreshed = True
                    continue
                raise

    def records_flow(self, command: StopBuild) -> Generator[Step, Any, list[dict[str, Any]]]:
        """One attempt at reading every page of the task's build records in the window (docs/commands.md).

        The v3 route first; when it lists nothing for this task (or is gone), the v1 route too, for this
        call only: in some tenants only v1 lists builds, and one idle task must not send every later
        look-up to v1, where a build only v3 lists would be missed (docs/cloud-answers.md)."""
        span = window(36, 14)  # the last 24 hours in any time zone the cloud reads them in (docs/commands.md)
        records: list[dict[str, Any]] = []
        page, refreshed, v1 = 0, False, False
        while page < MAX_PAGES:
            call = self.plan_records(command, page, span, v1=v1)
            reply, token = yield from self._exchange(call)
            try:
                found = self.answers.read_records(command, call, reply, page)
            except ApiGone:
                if v1:
                    raise
                found = Found([], False)
            except UpstreamAuth as exc:
                if self._refresh(exc, token, refreshed):
                    refreshed = True
                    continue
                raise
            if page == 0 and not found.items and not v1:
                v1 = True
                continue
            records.extend(found.items)
            if not found.more:
                break
            page += 1
        return records

    def running_flow(self, command: StopBuild) -> Generator[Step, Any, list[dict[str, Any]]]:
        """The running or queued build records that match the command's filters, oldest build first."""
        from stopline import resolution
        records = yield from self.records_flow(command)
        return resolution.select_builds(command, records)

    def instances_flow(self, command: StopDataArtsJob) -> Generator[Step, Any, list[dict[str, Any]]]:
        """One attempt at reading every page of the job's instances of the last 7 days (docs/commands.md)."""
        span = window(7 * 24, 1)
        items: list[dict[str, Any]] = []
        offset, refreshed = 0, False
        for _ in range(MAX_PAGES):
            call = self.plan_instances(command, offset, span)
            reply, token = yield from self._exchange(call)
            try:
                found = self.answers.read_instances(command, call, reply, offset)
            except UpstreamAuth as exc:
                if self._refresh(exc, token, refreshed):
                    refreshed = True
                    continue
                raise
            items.extend(found.items)
            if not found.more:
                break
            offset += len(found.items)
        return items

    def runs_flow(self, command: StopPipelineRun) -> Generator[Step, Any, list[dict[str, Any]]]:
        """One attempt at reading every page of the pipeline's running runs; those matching the filters."""
        project = self._codearts_project(command)
        found: list[dict[str, Any]] = []
        offset, refreshed = 0, False
        for _ in range(MAX_PAGES):
            call = runs.plan_list(command, self.endpoints.codearts_pipeline, project, {"User-Agent": USER_AGENT},
                                  offset)
            reply, token = yield from self._exchange(call)
            try:
                items, more = runs.page(self.answers.read_page(command, call, reply), offset)
            except UpstreamAuth as exc:
                if self._refresh(exc, token, refreshed):
                    refreshed = True
                    continue
                raise
            found.extend(items)
            if not more:
                break
            offset += len(items)
        return runs.select(command, found)

    def run_stop_flow(self, command: StopPipelineRun) -> Flow:
        """Stop one run. A refused stop is settled by the run's detail, since the cloud documents no code
        for "not running" or "no such run": a run no longer in progress is ``already_stopped``, one the
        detail cannot find is ``not_found``; a run still in progress keeps the stop's own failure."""
        try:
            return (yield from self._plain_flow(command))
        except (UpstreamRejected, NotFound) as exc:
            if exc.details and exc.details[0].get("field") in ("pipeline_id", "codearts_project_id"):
                raise  # the pipeline or project itself is wrong: the run's detail would say no more
            refused: StoplineError = exc
        call = runs.plan_detail(command, self.endpoints.codearts_pipeline, self._codearts_project(command),
                                {"User-Agent": USER_AGENT})
        reply, _ = yield from self._exchange(call)
        try:
            detail = self.answers.read_page(command, call, reply)
        except (NotFound, UpstreamRejected):
            raise NotFound(f"{describe(command)} does not exist (the stop was refused: {refused.message})",
                           upstream=refused.upstream,
                           details=[{"field": "pipeline_run_id", "message": "no such run"}]) from None
        if runs.still_running(detail) is False:
            return Reply(Outcome.ALREADY_STOPPED, reply.header("x-request-id"), "pipeline")
        raise refused

    def run_detail_flow(self, command: StopPipelineRun) -> Generator[Step, Any, Any]:
        """One read of a run's detail (``status``): how a stop of it is verified."""
        call = runs.plan_detail(command, self.endpoints.codearts_pipeline, self._codearts_project(command),
                                {"User-Agent": USER_AGENT})
        reply, _ = yield from self._exchange(call)
        return self.answers.read_page(command, call, reply)

    def exchange(self, call: Call) -> Generator[Step, Any, RawReply]:
        """Authenticate and send one call of another service (an SMN publish): its raw reply."""
        reply, _ = yield from self._exchange(call)
        return reply

    def lookup_flow(self, command: Resolving) -> Generator[Step, Any, list[Member]]:
        """One attempt at the look-up: every page, then the members to stop."""
        from stopline import resolution
        if isinstance(command, StopBuild):
            records = yield from self.running_flow(command)
            return [StopBuild(job_id=command.job_id, build_no=build_no(r)) for r in records]
        if isinstance(command, StopPipelineRun):
            found = yield from self.runs_flow(command)
            project = self._codearts_project(command)
            return [StopPipelineRun(pipeline_id=command.pipeline_id, pipeline_run_id=r["pipeline_run_id"],
                                    codearts_project_id=project) for r in found]
        items = yield from self.instances_flow(command)
        return [*resolution.select_instances(command, items, self._project(command))]

    def authorize(self, call: Call, token: str | None) -> Call:
        return Call(call.method, call.scheme, call.host, call.path, call.query,
                    self.credentials.apply(call, token), call.body, call.api)


def credentials_from(settings: Settings, endpoints: Endpoints, *, agency: Credentials | None = None) -> Credentials:
    """Pick the credential source, first match wins (docs/configuration.md)."""
    mode = settings.credential_mode()
    if mode == "aksk":
        assert settings.ak is not None and settings.sk is not None
        return AkSk(settings.ak, settings.sk, settings.project_id, settings.security_token)
    if mode == "token":
        assert settings.auth_token is not None
        return StaticToken(settings.auth_token)
    if mode == "iam":
        assert settings.iam_username and settings.iam_password and settings.iam_domain
        from stopline.auth.iam import IamPasswordToken

        return IamPasswordToken(settings.iam_username, settings.iam_password, settings.iam_domain,
                                endpoints.iam, settings.project_id, settings.region)
    if agency is not None:
        return agency
    from stopline.settings import CREDENTIAL_VARIABLES

    raise ConfigurationError(f"no Huawei Cloud credentials configured: set {CREDENTIAL_VARIABLES}")


def core_from(settings: Settings, *, agency: Credentials | None = None,
              project_id: str | None = None) -> ClientCore:
    endpoints = Endpoints.for_region(
        settings.region, codearts_build=settings.codearts_build_endpoint,
        dataarts=settings.dataarts_endpoint, iam=settings.iam_endpoint,
        codearts_pipeline=settings.codearts_pipeline_endpoint, smn=settings.smn_endpoint,
        functiongraph=settings.functiongraph_endpoint,
    )
    return ClientCore(
        credentials=credentials_from(settings, endpoints, agency=agency),
        endpoints=endpoints,
        project_id=settings.project_id or project_id,
        not_running_codes=settings.not_running_codes,
        build_stop_api=settings.build_stop_api,
        max_attempts=settings.max_attempts,
        timeout_s=settings.timeout_s,
        codearts_project_id=settings.codearts_project_id,
    )
