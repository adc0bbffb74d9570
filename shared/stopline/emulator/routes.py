"""The emulator's HTTP layer: request -> reply, written against the cloud's documented behaviour.

The moto "responses" half: it reads parameters, checks authentication as the API gateway would
(``X-Auth-Token`` against issued tokens, AK/SK signatures with the gateway's 15-minute clock window),
calls :class:`~stopline.emulator.state.CloudState`, and answers with the cloud's status codes, error
bodies and ``X-Request-Id``. It imports nothing of stopline's client, signer, pipeline or triggers:
signatures are checked by the emulator's own ``gateway_auth``, and the control API lives in
``control``.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from stopline.emulator import control, dashboard, functiongraph, gateway_auth, pipelines, smn
from stopline.emulator.faults import FaultRule, Faults
from stopline.emulator.feed import Deliveries
from stopline.emulator.replies import EmuReply, EmuRequest, cloud_error, gateway_error, json_reply
from stopline.emulator.state import CloudState

SIGNATURE_WINDOW_S = 15 * 60
# The cloud's own codes (docs/cloud-answers.md says which are seen in the field).
CODE_TASK_MISSING_V3 = "CB.00031006"      # 422, v3 routes [field]
CODE_TASK_MISSING_V1 = "DEVCB.00031006"   # 422, v1 routes [field]
CODE_NO_BUILD = "CB.00031059"             # 403, no such build in the history [field, history-details route]
CODE_BUILD_NOT_RUNNING = "DEV.CB.032302"  # 400, status already refreshed [field, /v3/jobs/stop]
CODE_WINDOW_TOO_LONG = "CB.00031105"      # 400, record window over 31 days [field]
CODE_BAD_JOB_ID = "CB.00060201"           # 400 [field]
CODE_JOB_NOT_RUNNING = "DLF.0137"         # 400; the cloud's "job not running" code is unknown (stand-in)
CODE_INSTANCE_MISSING = "DLF.0137"        # 400, job instance does not exist [documented]
CODE_WORKSPACE_MISSING = "DLF.0819"       # 400, workspace does not exist [documented]
RECORD_TIME = "%Y-%m-%d %H:%M:%S"
_STATUS_TEXT = {"running": "Running", "queued": "InQueue", "finished": "SUCCESS", "stopped": "ABORTED"}


def _build_no_of(request: EmuRequest) -> int | None:
    """The build a stop call names (v3: JSON body; v1: query, else body), for the call log."""
    value = dict(request.query).get("build_no", "")
    if value.isdigit():
        return int(value)
    if request.method == "POST" and request.body[:1] == b"{":
        try:
            return int(json.loads(request.body).get("build_no"))
        except (ValueError, TypeError, AttributeError):
            return None
    return None


def _record_time(value: str | None) -> int | None:
    """A build-record window bound (``yyyy-MM-dd HH:mm:ss``, read as UTC here) in epoch ms."""
    if not value:
        return None
    try:
        return int(datetime.strptime(value, RECORD_TIME).replace(tzinfo=UTC).timestamp() * 1000)
    except ValueError:
        return None


def _int_param(query: dict[str, str], name: str, default: int) -> int | None:
    value = query.get(name)
    if value is None or value == "":
        return default
    return int(value) if value.isdigit() else None


class Router:
    """Dispatches cloud paths and the ``/_emulator/`` control API."""

    def __init__(self, state: CloudState, faults: Faults) -> None:
        self.state = state
        self.faults = faults
        self.calls: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.deliveries = Deliveries()  # the dashboard's feed, not cloud state (feed.py)
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., EmuReply]]] = [
            ("POST", re.compile(r"^/v3/auth/tokens$"), self._iam_token),
            ("POST", re.compile(r"^/v3/jobs/stop$"), self._stop_build_v3),
            ("POST", re.compile(r"^/v1/job/(?P<job_id>[^/]+)/stop$"), self._stop_build_v1),
            ("POST", re.compile(r"^/v3/jobs/(?P<job_id>[^/]+)/delete$"), self._delete_task),
            ("GET", re.compile(r"^/v3/jobs/(?P<job_id>[^/]+)/build-info-records$"), self._records_v3),
            ("GET", re.compile(r"^/v1/record/(?P<job_id>[^/]+)/list$"), self._records_v1),
            ("GET", re.compile(r"^/v1/job/(?P<job_id>[^/]+)/running-status$"), self._running_status),
            ("GET", re.compile(r"^/v1/(?P<project_id>[^/]+)/jobs/instances/detail$"), self._list_instances),
            ("POST", re.compile(r"^/v1/(?P<project_id>[^/]+)/jobs/(?P<job_name>[^/]+)/instances/"
                                r"(?P<instance_id>[^/]+)/stop$"), self._stop_instance),
            ("POST", re.compile(r"^/v1/(?P<project_id>[^/]+)/jobs/(?P<job_name>[^/]+)/stop$"), self._stop_job),
            *((method, pattern, self._view(pipelines, name)) for method, pattern, name in pipelines.ROUTES),
            *((method, pattern, self._view(smn, name)) for method, pattern, name in smn.ROUTES),
            *((method, pattern, self._view(functiongraph, name)) for method, pattern, name in functiongraph.ROUTES),
        ]

    def _view(self, module: Any, name: str) -> Callable[..., EmuReply]:
        """A call of another service's module (pipelines.py, smn.py, functiongraph.py) behind the same
        authentication."""
        call = getattr(module, name)

        def view(request: EmuRequest, request_id: str, project: str | None, **params: str) -> EmuReply:
            return call(self.state, request, **params)  # type: ignore[no-any-return]

        return view

    # -- entry -------------------------------------------------------------------------------------
    def handle(self, request: EmuRequest) -> EmuReply:
        if request.path.startswith("/_emulator/"):
            return self._control(request)
        if request.path == "/" and request.method == "GET":  # the dev dashboard
            return dashboard.page()
        with self.state.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        request_id = uuid.uuid4().hex
        started = time.time()
        auth_kind = "none"
        fault = self.faults.pick(request.path)
        if fault is not None and fault.kind in ("throttle", "error", "drop", "respond"):
            reply = self._fault_reply(fault, request_id)
            reply.delay_s = fault.delay_s
        else:
            reply, auth_kind = self._dispatch(request, request_id)
            if fault is not None and fault.kind in ("dribble", "dribble_head"):  # done; the answer trickles out
                reply.dribble_s = fault.delay_s
                reply.dribble_head = fault.kind == "dribble_head"
            elif fault is not None:  # latency / hold: the work is done, the answer comes late
                reply.delay_s = fault.delay_s
        reply.headers.setdefault("X-Request-Id", request_id)
        build_no = _build_no_of(request)
        with self.state.lock:
            self.calls.append({
                "method": request.method, "path": request.path,
                "query": "&".join(f"{k}={v}" for k, v in request.query),
                "status": None if reply.drop else reply.status, "auth": auth_kind,
                "request_id": request_id, "time": started,
                "fault": fault.kind if fault is not None else None,
                "workspace": request.headers.get("workspace"), "build_no": build_no,
                "body": request.body.decode("utf-8", "replace") if 0 < len(request.body) <= 2048 else None,
            })
        return reply

    def _fault_reply(self, fault: FaultRule, request_id: str) -> EmuReply:
        if fault.kind == "drop":
            return EmuReply(0, drop=True)
        if fault.kind == "respond":
            body = fault.payload()
            if body is None:
                body = json.dumps({"error_code": fault.error_code, "error_msg": fault.error_msg}).encode() \
                    if fault.error_code else b""
            headers = {"Content-Type": "application/json"} if body else {}
            if fault.retry_after is not None and fault.status in (429, 503):
                headers["Retry-After"] = str(fault.retry_after)
            return EmuReply(fault.status, headers, body)
        extra = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        if fault.kind == "throttle":
            return gateway_error(429, fault.error_code or "APIGW.0308",
                                  fault.error_msg or "The throttling threshold has been reached: policy user "
                                  "over ratelimit,limit:10,time:1 second", request_id, **extra)
        code = fault.error_code or ("APIGW.0201" if fault.status in (502, 504) else "CB.00060101")
        return cloud_error(fault.status, code, fault.error_msg or "Injected fault", **extra)

    def _dispatch(self, request: EmuRequest, request_id: str) -> tuple[EmuReply, str]:
        for method, pattern, view in self._routes:
            match = pattern.match(request.path)
            if match is None or method != request.method:
                continue
            params = {k: unquote(v) for k, v in match.groupdict().items()}
            if view == self._iam_token:
                return view(request, request_id), "none"
            auth_kind, problem, project = self._authenticate(request, request_id)
            if problem is not None:
                return problem, auth_kind
            return view(request, request_id, project=project, **params), auth_kind
        return gateway_error(404, "APIGW.0101", "The API does not exist or has not been published in the "
                              "environment.", request_id), "none"

    # -- authentication ------------------------------------------------------------------------------
    def _authenticate(self, request: EmuRequest, request_id: str) -> tuple[str, EmuReply | None, str | None]:
        token = request.headers.get("x-auth-token")
        if token:
            if not self.state.token_valid(token):
                return "token", gateway_error(401, "APIGW.0301", "Incorrect IAM authentication information: "
                                               "decrypt token fail", request_id), None
            issued = self.state.tokens.get(token)
            return "token", None, issued.project_id if issued else None
        authorization = request.headers.get("authorization")
        if not authorization:
            return "none", gateway_error(401, "APIGW.0301", "Incorrect IAM authentication information: "
                                          "no token or AK/SK signature", request_id), None
        parsed = gateway_auth.parse(authorization)
        if parsed is None:
            return "aksk", gateway_error(401, "APIGW.0301", "Incorrect IAM authentication information: "
                                          "unsupported authorization", request_id), None
        access_key = parsed[0]
        credential = self.state.credentials.get(access_key)
        if credential is None:
            return "aksk", gateway_error(401, "APIGW.0301", "Incorrect IAM authentication information: "
                                          f"Get secretKey failed,ak:{access_key},err:ak not exist",
                                          request_id), None
        date = request.headers.get("x-sdk-date", "")
        try:
            signed_at = datetime.strptime(date, gateway_auth.DATE_FORMAT).replace(tzinfo=UTC).timestamp()
        except ValueError:
            signed_at = 0.0
        if abs(time.time() - signed_at) > SIGNATURE_WINDOW_S:
            return "aksk", gateway_error(401, "APIGW.0303", "Incorrect app authentication information.",
                                          request_id), None
        if not gateway_auth.verify(secret_key=credential.sk, method=request.method, path=request.path,
                             query=request.query, headers=request.headers, body=request.body):
            return "aksk", gateway_error(401, "APIGW.0301", "Incorrect IAM authentication information: "
                                          "verify aksk signature fail", request_id), None
        if credential.security_token is not None and \
                request.headers.get("x-security-token") != credential.security_token:
            return "aksk", gateway_error(401, "APIGW.0301", "Incorrect IAM authentication information: "
                                          "security token mismatch", request_id), None
        return "aksk", None, request.headers.get("x-project-id") or credential.project_id

    # -- IAM -----------------------------------------------------------------------------------------------
    def _iam_token(self, request: EmuRequest, request_id: str) -> EmuReply:
        try:
            auth = json.loads(request.body)["auth"]
            user = auth["identity"]["password"]["user"]
            scope = auth.get("scope", {}).get("project", {})
            name, password, domain = user["name"], user["password"], user["domain"]["name"]
        except (ValueError, KeyError, TypeError):
            return cloud_error(400, "IAM.0011", "Request body is invalid.")
        token = self.state.issue_token(domain, name, password, scope.get("id"))
        if token is None:
            return json_reply(401, {"error": {"code": 401, "message": "The username or password is wrong.",
                                         "title": "Unauthorized"}})
        now = datetime.now(UTC)
        expires = datetime.fromtimestamp(now.timestamp() + 24 * 3600, UTC)
        fmt = "%Y-%m-%dT%H:%M:%S.%fZ"
        body = {"token": {"expires_at": expires.strftime(fmt), "issued_at": now.strftime(fmt),
                          "methods": ["password"],
                          "project": {"id": scope.get("id") or "", "name": scope.get("name") or ""},
                          "user": {"name": name, "domain": {"name": domain}}}}
        return json_reply(201, body, **{"X-Subject-Token": token})

    # -- CodeArts Build ------------------------------------------------------------------------------------
    def _stop_answer(self, job_id: str, build_no: int, missing_code: str, success: EmuReply) -> EmuReply:
        result = self.state.stop_build(job_id, build_no)
        if result == "missing":
            return cloud_error(422, missing_code, "The job does not exist or has been deleted.")
        if result == "no_build":
            return cloud_error(403, CODE_NO_BUILD, "任务尚未构建或历史已删除\uff0c不存在构建历史")
        if result == "not_running":
            return cloud_error(400, CODE_BUILD_NOT_RUNNING, "任务状态已刷新,请刷新页面后重试")
        return success

    def _stop_build_v3(self, request: EmuRequest, request_id: str, project: str | None) -> EmuReply:
        try:
            data = json.loads(request.body)
            job_id, build_no = str(data["job_id"]), int(str(data["build_no"]))
        except (ValueError, KeyError, TypeError):
            return cloud_error(400, "CB.00060200", "Invalid parameter.")
        if not re.fullmatch(r"[A-Za-z0-9]{32}", job_id):
            return cloud_error(400, CODE_BAD_JOB_ID, "Invalid job ID.")
        return self._stop_answer(job_id, build_no, CODE_TASK_MISSING_V3, json_reply(200, {"result": True}))

    def _stop_build_v1(self, request: EmuRequest, request_id: str, project: str | None, job_id: str) -> EmuReply:
        # The SDK sends build_no in the query, the API reference in the body: both are read.
        build_no = _build_no_of(request)
        if build_no is None:
            return cloud_error(400, "CB.00060200", "Invalid parameter: build_no.")
        return self._stop_answer(job_id, build_no, CODE_TASK_MISSING_V1, json_reply(200, {"status": "success"}))

    def _delete_task(self, request: EmuRequest, request_id: str, project: str | None, job_id: str) -> EmuReply:
        task = self.state.delete_task(job_id)
        if task is None:
            return cloud_error(422, CODE_TASK_MISSING_V3, "The job does not exist or has been deleted.")
        return json_reply(200, {"status": "success", "result": {"job_id": task.job_id, "project_id": task.project_id}})

    def _records(self, request: EmuRequest, job_id: str, missing_code: str) -> EmuReply:
        query = dict(request.query)
        start, end = _record_time(query.get("start_time")), _record_time(query.get("end_time"))
        page, size = _int_param(query, "page_index", 0), _int_param(query, "page_size", 10)
        if start is None or end is None or page is None or size is None or not 1 <= size <= 100 or end < start:
            return cloud_error(400, "CB.00060200", "Invalid parameter: start_time, end_time, page_index "
                                "(>= 0) and page_size (1-100) are required.")
        if end - start > 31 * 24 * 3600 * 1000:
            return cloud_error(400, CODE_WINDOW_TOO_LONG, "The time range cannot exceed 31 days.")
        records = self.state.records(job_id, start, end)
        if records is None:
            return cloud_error(422, missing_code, "The job does not exist or has been deleted.")
        total_pages = (len(records) + size - 1) // size
        chunk = records[page * size:(page + 1) * size]
        states = [{
            "number": n, "build_time": b.start_ms, "start_time": b.start_ms,
            "job_running_status": _STATUS_TEXT[b.state], "state": _STATUS_TEXT[b.state],
            "user_id": "0" * 32, "executor": "devuser", "nickname": "devuser", "daily_build_number": f"{n}",
            "trigger_type": "Manual", "cost_time": 0, "commit_id": b.commit_id, "build_type": "branch",
            "code_branch": b.branch, "scm_type": "codehub", "scm_web_url": "", "commit_detail_url": "",
        } for n, b in chunk]
        result = {"health_score": "100", "page_index": str(page), "total_page": str(total_pages),
                  "total_record": str(len(records)), "job_build_states": states}
        return json_reply(200, {"result": result, "error": None, "status": "success"})

    def _records_v3(self, request: EmuRequest, request_id: str, project: str | None, job_id: str) -> EmuReply:
        return self._records(request, job_id, CODE_TASK_MISSING_V3)

    def _records_v1(self, request: EmuRequest, request_id: str, project: str | None, job_id: str) -> EmuReply:
        return self._records(request, job_id, CODE_TASK_MISSING_V1)

    def _running_status(self, request: EmuRequest, request_id: str, project: str | None, job_id: str) -> EmuReply:
        task = self.state.task(job_id)
        if task is None:
            return cloud_error(422, CODE_TASK_MISSING_V1, "The job does not exist or has been deleted.")
        with self.state.lock:
            last = max(task.builds) if task.builds else None
            build = task.builds[last].settle() if last is not None else None
        return json_reply(200, {"result": {"last_job_id": job_id, "last_build_no": str(last or ""),
                                      "last_build_status": _STATUS_TEXT[build.state] if build else "",
                                      "is_running": bool(build and build.state in ("running", "queued"))},
                           "error": None, "status": "success"})

    # -- DataArts Studio -----------------------------------------------------------------------------------
    def _dataarts_scope(self, request: EmuRequest, request_id: str, project: str | None,
                        project_id: str) -> EmuReply | None:
        if project is not None and project != project_id:
            return gateway_error(403, "APIGW.0302", "The IAM user is not authorized to access the API.",
                                  request_id)
        if not self.state.workspace_exists(project_id, request.headers.get("workspace")):
            return cloud_error(400, CODE_WORKSPACE_MISSING, "The workspace does not exist.")
        return None

    def _stop_job(self, request: EmuRequest, request_id: str, project: str | None, project_id: str,
                  job_name: str) -> EmuReply:
        refused = self._dataarts_scope(request, request_id, project, project_id)
        if refused is not None:
            return refused
        result = self.state.stop_job(project_id, request.headers.get("workspace"), job_name)
        if result == "missing":
            return cloud_error(400, "DLF.0100", "The job does not exists.")
        if result == "not_running":
            return cloud_error(400, CODE_JOB_NOT_RUNNING, "The job instance does not exist.")
        return EmuReply(204)

    def _list_instances(self, request: EmuRequest, request_id: str, project: str | None,
                        project_id: str) -> EmuReply:
        refused = self._dataarts_scope(request, request_id, project, project_id)
        if refused is not None:
            return refused
        query = dict(request.query)
        now_ms = int(time.time() * 1000)
        midnight = int(datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0).timestamp() * 1000)
        limit, offset = _int_param(query, "limit", 10), _int_param(query, "offset", 0)
        low, high = _int_param(query, "minPlanTime", midnight), _int_param(query, "maxPlanTime", now_ms)
        if limit is None or offset is None or low is None or high is None or not 1 <= limit <= 1000:
            return cloud_error(400, "DLF.0002", "The parameter is invalid.")
        name = query.get("jobName") or None
        exact = query.get("preciseQuery") == "jobName"
        found = self.state.instances(project_id, request.headers.get("workspace"), name if exact else None,
                                     low, high)
        if name is not None and not exact:
            found = [(n, i) for n, i in found if name in n]
        if query.get("status"):
            found = [(n, i) for n, i in found if i.status == query["status"]]
        page = found[offset:offset + limit]
        return json_reply(200, {"total": len(found), "instances": [{
            "jobName": n, "status": i.status, "planTime": i.plan_ms, "startTime": i.plan_ms, "endTime": None,
            "executeTime": i.plan_ms, "submitTime": i.plan_ms, "instanceId": i.instance_id, "jobId": 0,
            "jobInstanceName": f"{n}_{i.instance_id}", "instanceType": 0, "version": 1, "ignoreSuccess": False,
            "forceSuccess": False, "errorMessage": None} for n, i in page]})

    def _stop_instance(self, request: EmuRequest, request_id: str, project: str | None, project_id: str,
                       job_name: str, instance_id: str) -> EmuReply:
        refused = self._dataarts_scope(request, request_id, project, project_id)
        if refused is not None:
            return refused
        if not instance_id.isdigit():
            return cloud_error(400, CODE_INSTANCE_MISSING, "The job instance does not exist.")
        result = self.state.stop_instance(project_id, request.headers.get("workspace"), job_name, int(instance_id))
        if result == "missing":
            return cloud_error(400, CODE_INSTANCE_MISSING, "The job instance does not exist.")
        # An instance that is no longer in flight: the cloud's answer is unknown; this answers 204 (no effect).
        return EmuReply(204)

    # -- control API -----------------------------------------------------------------------------------------
    def _control(self, request: EmuRequest) -> EmuReply:
        return control.handle(self, request)

    def done(self) -> None:
        """The server or transport finished answering one cloud call (after any delay)."""
        with self.state.lock:
            self.in_flight -= 1

    def reset(self) -> None:
        self.state.reset()
        self.faults.clear()
        with self.state.lock:
            self.calls.clear()
            self.max_in_flight = 0
        self.deliveries.clear()
