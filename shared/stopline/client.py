"""The calls' logic, free of I/O: planning each request, reading each answer, resolving what runs.

Request building and response reading live once, in :class:`ClientCore`, as a generator "flow" that
yields what it needs (an IAM token, or a request to send) and receives the answer -- the same
sans-IO shape as ``httpx.Auth.auth_flow``. :class:`stopline.driver.Client` drives it over httpx.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

from stopline import codearts_pipeline as runs
from stopline.auth.credentials import AkSk, Credentials, IamPasswordToken, StaticToken
from stopline.endpoints import Endpoints
from stopline.errors import (
    ConfigurationError,
    InvalidCommand,
    NotFound,
    StoplineError,
    Transient,
    UpstreamAuth,
    UpstreamInfo,
    UpstreamMisconfigured,
    UpstreamRejected,
    UpstreamUnexpected,
)
from stopline.models import Command, DeleteBuildTask, Outcome, StopBuild, StopDataArtsJob, StopPipelineRun
from stopline.wire import (
    Call,
    RawReply,
    decode_body,
    epoch_ms,
    parse_error_body,
    parse_retry_after,
    success_error_code,
)

if TYPE_CHECKING:
    from stopline.deadline import Deadline
    from stopline.settings import Settings

log = logging.getLogger("stopline")

# docs/cloud-answers.md: what the cloud really answers.
TRANSIENT_CODES = frozenset({"CB.00060211", "CB.00060100", "CB.00060101", "APIGW.0308"})
TASK_MISSING_CODES = frozenset({"DEVCB.00031006", "CB.00031006"})
NO_BUILD_HISTORY = "CB.00031059"
INSTANCE_MISSING_CODES = frozenset({"DLF.0137", "DLF.30137"})
CODEARTS_PREFIXES = ("CB.", "DEVCB.", "DEV.CB.")
API_NOT_FOUND = "APIGW.0101"
JSON_HEADERS = {"Content-Type": "application/json"}
USER_AGENT = "stopline/0.1"

# docs/commands.md: finding what runs.
RUNNING_BUILD_STATES = frozenset({"running", "inqueue", "queued", "building", "waiting"})
RUNNING_INSTANCE_STATES = frozenset({"running", "waiting", "waiting-confirm", "pause"})
RECORD_PAGE_SIZE = 100
INSTANCE_PAGE_SIZE = 100
MAX_PAGES = 50
"""A look-up reads at most this many pages (5,000 records): a bound, not a limit anyone should reach."""
FAN_OUT = 20
"""Stops of one resolved command in flight at once."""
MIN_ATTEMPT_S = 0.05
"""An attempt is not worth starting with less time than this before the deadline."""


@dataclass(frozen=True, slots=True)
class Reply:
    """A successful upstream answer, reduced to what a result needs."""

    outcome: Outcome
    request_id: str | None
    api: str
    attempts: int = 1
    resolved: tuple[str, list[dict[str, Any]]] | None = None


@dataclass(frozen=True, slots=True)
class NeedToken:
    """Flow step: the driver must supply a valid IAM token (fetching it under its lock)."""


@dataclass(frozen=True, slots=True)
class StopInstance:
    """One member of a DataArts ``scope: instances`` command: a running job instance to stop."""

    project_id: str
    job_name: str
    workspace: str | None
    instance_id: int
    action: str = "stop_dataarts_job"


class _ApiGone(UpstreamMisconfigured):
    """The gateway says the API path does not exist (404 APIGW.0101)."""


class _RunNotStopped(UpstreamRejected):
    """A pipeline run stop answered ``{"success": false}``: the run's detail says why."""


Member = StopBuild | StopDataArtsJob | StopInstance | StopPipelineRun
"""What a resolved command runs: one build stop, the job (schedule) stop, one instance or run stop."""
Resolving = StopBuild | StopDataArtsJob | StopPipelineRun
Operation = Command | StopInstance
Step = Call | NeedToken
Flow = Generator[Step, Any, Reply]


def describe(command: Operation) -> str:
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


def _said(status: int, code: str | None, msg: str | None, request_id: str | None) -> str:
    """The cloud's answer in words a user can quote to support: status, code, message, request id."""
    text = f"HTTP {status}" + (f" {code}" if code else "") + (f": {msg}" if msg else "")
    return text + (f"; request id {request_id}" if request_id else "")


def _window(hours_back: float, hours_ahead: float) -> tuple[float, float]:
    now = time.time()
    return now - hours_back * 3600, now + hours_ahead * 3600


def _cloud_time(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch))


def build_no(record: dict[str, Any]) -> int:
    """A build record's number (``number``; 0 when it has none)."""
    try:
        return int(record.get("number", record.get("build_no")))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0


def _commit_matches(commit: Any, prefix: str) -> bool:
    return isinstance(commit, str) and commit.strip().lower().startswith(prefix)


@dataclass(frozen=True, slots=True)
class Found:
    """One look-up page read: what it holds and whether another page follows."""

    items: list[dict[str, Any]]
    more: bool


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
        self.not_running_codes = frozenset(not_running_codes)
        self.build_stop_api = build_stop_api
        self.max_attempts = max_attempts
        self.timeout_s = timeout_s
        self._use_v1 = build_stop_api == "v1"
        self._records_v1 = False
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

    def plan_records(self, command: StopBuild, page: int, window: tuple[float, float]) -> Call:
        """One page of the task's build records (v3 route, or v1 where v3 answers nothing; section 10.1)."""
        path = (f"/v1/record/{command.job_id}/list" if self._records_v1
                else f"/v3/jobs/{command.job_id}/build-info-records")
        query = (("end_time", _cloud_time(window[1])), ("page_index", str(page)),
                 ("page_size", str(RECORD_PAGE_SIZE)), ("start_time", _cloud_time(window[0])))
        return Call.build("GET", self.endpoints.codearts_build, path, api="records", query=query,
                          headers={"User-Agent": USER_AGENT})

    def plan_instances(self, command: StopDataArtsJob, offset: int, window: tuple[float, float]) -> Call:
        """One page of the job's instances of the last 7 days (section 10.2)."""
        query = (("jobName", command.job_name), ("limit", str(INSTANCE_PAGE_SIZE)),
                 ("maxPlanTime", str(int(window[1] * 1000))), ("minPlanTime", str(int(window[0] * 1000))),
                 ("offset", str(offset)), ("preciseQuery", "jobName"))
        headers = {"User-Agent": USER_AGENT, **({"workspace": command.workspace} if command.workspace else {})}
        return Call.build("GET", self.endpoints.dataarts, f"/v1/{self._project(command)}/jobs/instances/detail",
                          api="instances", query=query, headers=headers)

    # -- reading --------------------------------------------------------------------------------------------
    def read(self, command: Operation, call: Call, reply: RawReply) -> Reply:
        """Map the cloud's answer to an outcome, or raise the matching :class:`StoplineError`."""
        request_id = reply.header("x-request-id")
        if 200 <= reply.status < 300:
            data = decode_body(reply.body)
            code, msg = success_error_code(data)
            if code is None:
                return Reply(self._success(command, call, data, reply, request_id), request_id, call.api)
        else:
            code, msg = parse_error_body(reply.body)
        outcome = self._classify(command, call, reply, code, msg)
        return Reply(outcome, request_id, call.api)

    def _success(self, command: Operation, call: Call, data: Any, reply: RawReply, request_id: str | None) -> Outcome:
        """A 2xx without an error code, read only as far as it is evidence: each API's documented success
        shape (an empty body only where the API answers one), else :class:`UpstreamUnexpected`."""
        empty = not reply.body.strip()
        if call.api == "v3" and (empty or (isinstance(data, dict) and isinstance(data.get("result"), bool))):
            return Outcome.ALREADY_STOPPED if not empty and data["result"] is False else Outcome.STOPPED
        if call.api == "v1" and isinstance(data, dict) and isinstance(data.get("status"), str):
            if data["status"] != "success":
                raise UpstreamRejected(
                    f"{describe(command)}: the v1 stop API answered status {data['status']!r}, not 'success' "
                    f"({_said(reply.status, None, None, request_id)})",
                    upstream=UpstreamInfo(reply.status, None, str(data["status"]), request_id))
            return Outcome.STOPPED
        if call.api == "delete" and (reply.status == 204 or (isinstance(data, dict) and (
                data.get("status") == "success" or isinstance(data.get("result"), dict)))):
            return Outcome.DELETED
        if call.api == "pipeline" and isinstance(data, dict) and isinstance(data.get("success"), bool):
            if data["success"]:
                return Outcome.STOPPED
            raise _RunNotStopped(f"{describe(command)}: the cloud answered success: false "
                                 f"({_said(reply.status, None, None, request_id)})",
                                 upstream=UpstreamInfo(reply.status, None, "success: false", request_id))
        if call.api in ("dataarts", "dataarts-instance") and (empty or isinstance(data, dict)):
            return Outcome.STOPPED  # documented: 204 without a body; a JSON object is tolerated
        excerpt = reply.body[:200].decode("utf-8", "replace")
        log.warning("unexpected success answer from the cloud: %s", excerpt,
                    extra={"upstream_status": reply.status, "api": call.api, "upstream_request_id": request_id})
        raise UpstreamUnexpected(
            f"{describe(command)}: the cloud answered {reply.status} with a body that is no evidence of success "
            f"({'empty' if empty else 'not the JSON this API returns'}; request id {request_id}); nothing is "
            "assumed stopped -- check the endpoint settings",
            upstream=UpstreamInfo(reply.status, None, None, request_id))

    def _classify(self, command: Operation, call: Call, reply: RawReply, code: str | None, msg: str | None,
                  *, lookup: bool = False) -> Outcome:
        """A failure answer (or a 2xx carrying an error code) by the table of section 13: an outcome
        for the few that mean success, else the matching :class:`StoplineError` is raised."""
        status, request_id = reply.status, reply.header("x-request-id")
        info = UpstreamInfo(status, code, msg, request_id)
        what = describe(command)
        said = _said(status, code, msg, request_id)
        codearts = code is not None and code.startswith(CODEARTS_PREFIXES)
        if code == API_NOT_FOUND:
            raise _ApiGone(f"the API {call.method} {call.path} does not exist at {call.host} ({said}); "
                           "check the endpoint settings and STOPLINE_BUILD_STOP_API", upstream=info)
        if code in runs.PIPELINE_MISSING:
            raise NotFound(f"{what}: the pipeline does not exist ({said})", upstream=info,
                           details=[{"field": "pipeline_id", "message": "no such pipeline"}])
        if code in runs.PROJECT_MISSING or code == runs.PROJECT_MISMATCH:
            raise NotFound(f"{what}: the CodeArts project does not exist or does not hold this pipeline ({said}); "
                           "codearts_project_id is the CodeArts project's id, not the IAM project", upstream=info,
                           details=[{"field": "codearts_project_id", "message": "not the pipeline's CodeArts project"}])
        if code in TASK_MISSING_CODES or (status == 404 and codearts):
            if isinstance(command, DeleteBuildTask) and not lookup:
                return Outcome.ALREADY_DELETED
            raise NotFound(f"{what}: the build task does not exist ({said})", upstream=info)
        if code == NO_BUILD_HISTORY and isinstance(command, StopBuild):
            raise NotFound(f"{what} does not exist: the task has no such build ({said})", upstream=info)
        if status == 404 and (code is None or code.startswith("APIGW.")):
            raise UpstreamMisconfigured(
                f"{what}: the endpoint answered 404 without a service error ({said}); the endpoint or API "
                "path is wrong -- check STOPLINE_CODEARTS_BUILD_ENDPOINT / STOPLINE_DATAARTS_ENDPOINT / "
                "STOPLINE_CODEARTS_PIPELINE_ENDPOINT",
                upstream=info)
        if not lookup:
            if isinstance(command, StopInstance) and code in INSTANCE_MISSING_CODES:
                return Outcome.ALREADY_STOPPED
            if not isinstance(command, DeleteBuildTask) and code in self.not_running_codes:
                return Outcome.ALREADY_STOPPED
        if status in (408, 429) or status >= 500 or code in TRANSIENT_CODES:
            raise Transient(f"{what}: the cloud is unavailable or throttling ({said})", upstream=info,
                            retry_after=parse_retry_after(reply.header("retry-after")))
        if code == "DLF.0100":
            raise NotFound(f"{what} does not exist ({said})", upstream=info)
        if code == "DLF.0819":
            raise NotFound(f"{what}: the workspace does not exist ({said})", upstream=info,
                           details=[{"field": "workspace", "message": "the DataArts workspace does not exist"}])
        if status == 404:
            raise NotFound(f"{what} does not exist ({said})", upstream=info)
        if status in (401, 403):
            raise UpstreamAuth(f"the cloud refused our credentials or permissions for {what} ({said})",
                               upstream=info)
        raise UpstreamRejected(f"the cloud rejected the parameters for {what} ({said})", upstream=info)

    def _read_page(self, command: Operation, call: Call, reply: RawReply) -> Any:
        """The JSON of a look-up answer, or the failure it stands for."""
        data = decode_body(reply.body)
        if 200 <= reply.status < 300:
            code, msg = success_error_code(data)
            if code is None:
                if not isinstance(data, dict):
                    raise Transient(f"{describe(command)}: the look-up answered a body that is not a JSON "
                                    f"object ({_said(reply.status, None, None, reply.header('x-request-id'))})")
                return data
        else:
            code, msg = parse_error_body(reply.body)
        self._classify(command, call, reply, code, msg, lookup=True)
        raise UpstreamRejected(f"{describe(command)}: unexpected look-up answer "
                               f"({_said(reply.status, code, msg, reply.header('x-request-id'))})")

    def read_records(self, command: StopBuild, call: Call, reply: RawReply, page: int) -> Found:
        data = self._read_page(command, call, reply)
        result = data.get("result") if isinstance(data.get("result"), dict) else data
        items = result.get("job_build_states") or []
        if not isinstance(items, list):
            items = []
        try:
            total_pages = int(result.get("total_page") or 0)
        except (TypeError, ValueError):
            total_pages = 0
        return Found([i for i in items if isinstance(i, dict)], bool(items) and page + 1 < total_pages)

    def read_instances(self, command: StopDataArtsJob, call: Call, reply: RawReply, offset: int) -> Found:
        data = self._read_page(command, call, reply)
        items = data.get("instances") or []
        if not isinstance(items, list):
            items = []
        try:
            total = int(data.get("total") or 0)
        except (TypeError, ValueError):
            total = 0
        return Found([i for i in items if isinstance(i, dict)], bool(items) and offset + len(items) < total)

    # -- selection ----------------------------------------------------------------------------------------
    @staticmethod
    def select_builds(command: StopBuild, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The running or queued records matching the filters, one per build number, oldest first."""
        chosen: dict[int, dict[str, Any]] = {}
        for record in records:
            states = {str(record.get(k) or "").strip().lower() for k in ("job_running_status", "state")}
            if not states & RUNNING_BUILD_STATES:
                continue
            if command.commit_id and not _commit_matches(record.get("commit_id"), command.commit_id):
                continue
            if command.except_commit_id and _commit_matches(record.get("commit_id"), command.except_commit_id):
                continue
            if command.branch is not None and record.get("code_branch") != command.branch:
                continue
            if command.started_before is not None:
                started = epoch_ms(record.get("start_time"))
                if started is None or started >= command.started_before.timestamp() * 1000:
                    continue  # a record without a start time is never stopped under this filter
            number = build_no(record)
            if number >= 1:
                chosen.setdefault(number, record)
        return [chosen[n] for n in sorted(chosen)]

    def select_instances(self, command: StopDataArtsJob, items: list[dict[str, Any]]) -> list[StopInstance]:
        chosen: dict[int, StopInstance] = {}
        project = self._project(command)
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
    def _exchange(self, call: Call) -> Generator[Step, Any, tuple[RawReply, str | None]]:
        """Authenticate and send ``call``: (reply, the token used)."""
        token: str | None = (yield NeedToken()) if self.credentials.needs_token else None
        reply = yield self.authorize(call, token)
        return reply, token

    def _refresh(self, exc: UpstreamAuth, token: str | None, refreshed: bool) -> bool:
        """Whether to resend once with a new IAM token after a 401 (section 5, mode 3)."""
        if (isinstance(self.credentials, IamPasswordToken) and token is not None
                and exc.upstream is not None and exc.upstream.status == 401 and not refreshed):
            self.credentials.invalidate(token)
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
                return self.read(command, call, reply)
            except _ApiGone:
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
        """One attempt at reading every page of the task's build records in the window (section 10.1)."""
        window = _window(36, 14)  # the last 24 hours in any time zone the cloud reads them in (README)
        records: list[dict[str, Any]] = []
        page, refreshed, tried_v1 = 0, False, self._records_v1
        while page < MAX_PAGES:
            call = self.plan_records(command, page, window)
            reply, token = yield from self._exchange(call)
            try:
                found = self.read_records(command, call, reply, page)
            except _ApiGone:
                if tried_v1:
                    raise
                found = Found([], False)
            except UpstreamAuth as exc:
                if self._refresh(exc, token, refreshed):
                    refreshed = True
                    continue
                raise
            if page == 0 and not found.items and not tried_v1:
                # In some tenants only the v1 record route lists builds (docs/cloud-answers.md).
                tried_v1 = True
                with self._lock:
                    self._records_v1 = True
                continue
            records.extend(found.items)
            if not found.more:
                break
            page += 1
        return records

    def running_flow(self, command: StopBuild) -> Generator[Step, Any, list[dict[str, Any]]]:
        """The running or queued build records that match the command's filters, oldest build first."""
        records = yield from self.records_flow(command)
        return self.select_builds(command, records)

    def instances_flow(self, command: StopDataArtsJob) -> Generator[Step, Any, list[dict[str, Any]]]:
        """One attempt at reading every page of the job's instances of the last 7 days (section 10.2)."""
        window = _window(7 * 24, 1)
        items: list[dict[str, Any]] = []
        offset, refreshed = 0, False
        for _ in range(MAX_PAGES):
            call = self.plan_instances(command, offset, window)
            reply, token = yield from self._exchange(call)
            try:
                found = self.read_instances(command, call, reply, offset)
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
                items, more = runs.page(self._read_page(command, call, reply), offset)
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
            detail = self._read_page(command, call, reply)
        except (NotFound, UpstreamRejected):
            raise NotFound(f"{describe(command)} does not exist (the stop was refused: {refused.message})",
                           upstream=refused.upstream,
                           details=[{"field": "pipeline_run_id", "message": "no such run"}]) from None
        if runs.still_running(detail) is False:
            return Reply(Outcome.ALREADY_STOPPED, reply.header("x-request-id"), "pipeline")
        raise refused

    def lookup_flow(self, command: Resolving) -> Generator[Step, Any, list[Member]]:
        """One attempt at the look-up: every page, then the members to stop."""
        if isinstance(command, StopBuild):
            records = yield from self.running_flow(command)
            return [StopBuild(job_id=command.job_id, build_no=build_no(r)) for r in records]
        if isinstance(command, StopPipelineRun):
            found = yield from self.runs_flow(command)
            project = self._codearts_project(command)
            return [StopPipelineRun(pipeline_id=command.pipeline_id, pipeline_run_id=r["pipeline_run_id"],
                                    codearts_project_id=project) for r in found]
        items = yield from self.instances_flow(command)
        return list(self.select_instances(command, items))

    def combine(self, command: Resolving,
                done: list[tuple[Member, Reply | StoplineError]]) -> Reply:
        """The command's outcome from its members' (section 10.1): ``stopped`` when one was stopped and
        none failed, ``nothing_running`` when none matched, else the failure (transient wins)."""
        key = ("builds" if isinstance(command, StopBuild) else
               "runs" if isinstance(command, StopPipelineRun) else "instances")
        entries: list[dict[str, Any]] = []
        failures: list[StoplineError] = []
        outcomes: list[Outcome] = []
        request_id, attempts, api = None, 1, {"builds": "records", "runs": "pipeline-runs"}.get(key, key)
        job_reply: Reply | StoplineError | None = None
        for member, answer in done:
            if isinstance(member, StopDataArtsJob):
                job_reply = answer
                if isinstance(answer, StoplineError):
                    failures.append(answer)
                else:
                    outcomes.append(answer.outcome)
                continue
            entry: dict[str, Any] = (
                {"build_no": member.build_no} if isinstance(member, StopBuild)
                else {"pipeline_run_id": member.pipeline_run_id} if isinstance(member, StopPipelineRun)
                else {"instance_id": member.instance_id})
            if isinstance(answer, StoplineError):
                entry.update(outcome=str(Outcome.FAILED), status=answer.status, error=answer.to_json())
                failures.append(answer)
            else:
                entry.update(outcome=str(answer.outcome), upstream_request_id=answer.request_id)
                outcomes.append(answer.outcome)
                request_id, attempts, api = answer.request_id, max(attempts, answer.attempts), answer.api
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
            error.attempts = max([f.attempts for f in failures] + [attempts])
            error.resolved = resolved
            raise error
        if isinstance(job_reply, Reply) and not entries:
            return Reply(job_reply.outcome, job_reply.request_id, job_reply.api, job_reply.attempts, resolved)
        if isinstance(job_reply, Reply):
            request_id, api = job_reply.request_id, job_reply.api
        if not outcomes:
            return Reply(Outcome.NOTHING_RUNNING, None, api, attempts, resolved)
        stopped = Outcome.STOPPED in outcomes
        return Reply(Outcome.STOPPED if stopped else Outcome.ALREADY_STOPPED, request_id, api, attempts, resolved)

    def job_member(self, command: StopDataArtsJob) -> StopDataArtsJob | None:
        """Scope ``both`` also stops the job (its schedule) once the instances are done."""
        if command.scope == "both":
            return command.model_copy(update={"scope": None, "idempotency_key": None})
        return None

    def authorize(self, call: Call, token: str | None) -> Call:
        return Call(call.method, call.scheme, call.host, call.path, call.query,
                    self.credentials.apply(call, token), call.body, call.api)

    def attempt_budget(self, what: str, deadline: Deadline | None) -> float:
        """How long an attempt starting now may take: one timeout, cut at the delivery's deadline. None may
        start with less than one timeout left before the hard end (the process may not be there to see it
        through), nor once the deadline has passed: a transient failure, so the claim is released and a
        redelivery (or a pending retry) runs it."""
        if deadline is None:
            return self.timeout_s
        budget = deadline.room_for_attempt(self.timeout_s)
        if budget >= MIN_ATTEMPT_S:
            return budget
        hard_left = max(0.0, deadline.hard - time.monotonic())
        if hard_left < self.timeout_s:
            reason = (f"{hard_left:.1f} s are left of this delivery's time, less than one request timeout "
                      f"({self.timeout_s:g} s)")
        else:
            reason = "the delivery's deadline has passed (the sender stops waiting for the answer then)"
        raise Transient(f"{what}: not sent: {reason}", retry_after=1)

    def overdue(self, what: str, budget_s: float) -> Transient:
        """An exchange abandoned (its connection closed) because it was still going when its bound -- the
        timeout, or what was left of the delivery's deadline -- ran out."""
        return Transient(f"{what}: the exchange was still going after {budget_s:.3g} s (STOPLINE_TIMEOUT_S or "
                         "the delivery's deadline); abandoned", retry_after=1)

    def transport_failure(self, what: str, exc: Exception) -> Transient:
        """A timeout or dropped connection, as the transient failure it is."""
        kind = "timed out" if "Timeout" in type(exc).__name__ else "connection failed"
        return Transient(f"{what}: the request {kind} ({type(exc).__name__})")

    def retry_wait(self, exc: Exception) -> bool | float:
        """stamina's ``on=`` hook: retry transient failures only, honouring Retry-After."""
        if isinstance(exc, Transient):
            return exc.retry_after if exc.retry_after is not None else True
        return False


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
        codearts_pipeline=settings.codearts_pipeline_endpoint,
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


def running_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a user wants to see of the running build records: number, state, branch, commit, start."""
    return [{"build_no": build_no(r), "state": str(r.get("job_running_status") or r.get("state") or ""),
             "branch": r.get("code_branch"), "commit_id": r.get("commit_id"), "start_time": r.get("start_time")}
            for r in records]

