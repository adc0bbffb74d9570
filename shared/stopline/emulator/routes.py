"""The emulator's HTTP layer: request -> reply, written against the cloud's documented behaviour.

The moto "responses" half: it reads parameters, checks authentication as the API gateway would
(``X-Auth-Token`` against issued tokens, AK/SK signatures with the gateway's 15-minute clock window),
calls :class:`~stopline.emulator.state.CloudState`, and answers with the cloud's status codes, error
bodies and ``X-Request-Id``. It never imports stopline's client, pipeline or triggers: the only
shared piece is the signer's canonicalization, pinned by the SDK-equality tests.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from stopline.auth import signer
from stopline.emulator.faults import FaultRule, Faults
from stopline.emulator.state import CloudState

SIGNATURE_WINDOW_S = 15 * 60
# Stand-ins where the cloud's codes are undocumented (huaweicloud-apis.md 4.3/4.4 UNVERIFIED items).
CODE_TASK_MISSING = "CB.00060404"
CODE_BUILD_NOT_RUNNING = "CB.00060301"
CODE_JOB_NOT_RUNNING = "DLF.0137"


@dataclass
class EmuRequest:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class EmuReply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay_s: float = 0.0
    drop: bool = False


def _json(status: int, data: Any, **headers: str) -> EmuReply:
    return EmuReply(status, {"Content-Type": "application/json", **headers}, json.dumps(data).encode())


def _cloud_error(status: int, code: str, msg: str, **headers: str) -> EmuReply:
    return _json(status, {"error_code": code, "error_msg": msg}, **headers)


def _gateway_error(status: int, code: str, msg: str, request_id: str, **headers: str) -> EmuReply:
    return _json(status, {"error_code": code, "error_msg": msg, "request_id": request_id}, **headers)


def _build_no_of(request: EmuRequest) -> int | None:
    """The build a stop call names (v3: JSON body; v1: query), for the call log."""
    if request.path == "/v3/jobs/stop":
        try:
            return int(json.loads(request.body).get("build_no"))
        except (ValueError, TypeError, AttributeError):
            return None
    value = dict(request.query).get("build_no", "")
    return int(value) if value.isdigit() else None


class Router:
    """Dispatches cloud paths and the ``/_emulator/`` control API."""

    def __init__(self, state: CloudState, faults: Faults) -> None:
        self.state = state
        self.faults = faults
        self.calls: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., EmuReply]]] = [
            ("POST", re.compile(r"^/v3/auth/tokens$"), self._iam_token),
            ("POST", re.compile(r"^/v3/jobs/stop$"), self._stop_build_v3),
            ("POST", re.compile(r"^/v1/job/(?P<job_id>[^/]+)/stop$"), self._stop_build_v1),
            ("POST", re.compile(r"^/v3/jobs/(?P<job_id>[^/]+)/delete$"), self._delete_task),
            ("POST", re.compile(r"^/v1/(?P<project_id>[^/]+)/jobs/(?P<job_name>[^/]+)/stop$"), self._stop_job),
        ]

    # -- entry -------------------------------------------------------------------------------------
    def handle(self, request: EmuRequest) -> EmuReply:
        if request.path.startswith("/_emulator/"):
            return self._control(request)
        with self.state.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        request_id = uuid.uuid4().hex
        started = time.time()
        auth_kind = "none"
        fault = self.faults.pick(request.path)
        if fault is not None and fault.kind in ("throttle", "error", "drop"):
            reply = self._fault_reply(fault, request_id)
        else:
            reply, auth_kind = self._dispatch(request, request_id)
            if fault is not None:  # latency / hold: the work is done, the answer comes late
                reply.delay_s = fault.delay_ms / 1000
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
            })
        return reply

    def _fault_reply(self, fault: FaultRule, request_id: str) -> EmuReply:
        if fault.kind == "drop":
            return EmuReply(0, drop=True)
        extra = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        if fault.kind == "throttle":
            return _gateway_error(429, fault.error_code or "APIGW.0308",
                                  fault.error_msg or "The throttling threshold has been reached: policy user "
                                  "over ratelimit,limit:10,time:1 second", request_id, **extra)
        code = fault.error_code or ("APIGW.0201" if fault.status in (502, 504) else "CB.00060101")
        return _cloud_error(fault.status, code, fault.error_msg or "Injected fault", **extra)

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
        return _gateway_error(404, "APIGW.0101", "The API does not exist or has not been published in the "
                              "environment.", request_id), "none"

    # -- authentication ------------------------------------------------------------------------------
    def _authenticate(self, request: EmuRequest, request_id: str) -> tuple[str, EmuReply | None, str | None]:
        token = request.headers.get("x-auth-token")
        if token:
            if not self.state.token_valid(token):
                return "token", _gateway_error(401, "APIGW.0301", "Incorrect IAM authentication information: "
                                               "decrypt token fail", request_id), None
            issued = self.state.tokens.get(token)
            return "token", None, issued.project_id if issued else None
        authorization = request.headers.get("authorization")
        if not authorization:
            return "none", _gateway_error(401, "APIGW.0301", "Incorrect IAM authentication information: "
                                          "no token or AK/SK signature", request_id), None
        parsed = signer.parse_authorization(authorization)
        if parsed is None:
            return "aksk", _gateway_error(401, "APIGW.0301", "Incorrect IAM authentication information: "
                                          "unsupported authorization", request_id), None
        access_key = parsed[0]
        credential = self.state.credentials.get(access_key)
        if credential is None:
            return "aksk", _gateway_error(401, "APIGW.0301", "Incorrect IAM authentication information: "
                                          f"Get secretKey failed,ak:{access_key},err:ak not exist",
                                          request_id), None
        date = request.headers.get("x-sdk-date", "")
        try:
            signed_at = datetime.strptime(date, signer.DATE_FORMAT).replace(tzinfo=UTC).timestamp()
        except ValueError:
            signed_at = 0.0
        if abs(time.time() - signed_at) > SIGNATURE_WINDOW_S:
            return "aksk", _gateway_error(401, "APIGW.0303", "Incorrect app authentication information.",
                                          request_id), None
        if not signer.verify(secret_key=credential.sk, method=request.method, path=request.path,
                             query=request.query, headers=request.headers, body=request.body):
            return "aksk", _gateway_error(401, "APIGW.0301", "Incorrect IAM authentication information: "
                                          "verify aksk signature fail", request_id), None
        if credential.security_token is not None and \
                request.headers.get("x-security-token") != credential.security_token:
            return "aksk", _gateway_error(401, "APIGW.0301", "Incorrect IAM authentication information: "
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
            return _cloud_error(400, "IAM.0011", "Request body is invalid.")
        token = self.state.issue_token(domain, name, password, scope.get("id"))
        if token is None:
            return _json(401, {"error": {"code": 401, "message": "The username or password is wrong.",
                                         "title": "Unauthorized"}})
        now = datetime.now(UTC)
        expires = datetime.fromtimestamp(now.timestamp() + 24 * 3600, UTC)
        fmt = "%Y-%m-%dT%H:%M:%S.%fZ"
        body = {"token": {"expires_at": expires.strftime(fmt), "issued_at": now.strftime(fmt),
                          "methods": ["password"],
                          "project": {"id": scope.get("id") or "", "name": scope.get("name") or ""},
                          "user": {"name": name, "domain": {"name": domain}}}}
        return _json(201, body, **{"X-Subject-Token": token})

    # -- CodeArts Build ------------------------------------------------------------------------------------
    def _stop_build_v3(self, request: EmuRequest, request_id: str, project: str | None) -> EmuReply:
        try:
            data = json.loads(request.body)
            job_id, build_no = str(data["job_id"]), int(str(data["build_no"]))
        except (ValueError, KeyError, TypeError):
            return _cloud_error(400, "CB.00060200", "Invalid parameter.")
        if not re.fullmatch(r"[A-Za-z0-9]{32}", job_id):
            return _cloud_error(400, "CB.00060201", "Invalid job ID.")
        result = self.state.stop_build(job_id, build_no)
        if result == "missing":
            return _cloud_error(404, CODE_TASK_MISSING, "The build task or build does not exist.")
        return _json(200, {"result": result == "stopped"})

    def _stop_build_v1(self, request: EmuRequest, request_id: str, project: str | None, job_id: str) -> EmuReply:
        query = dict(request.query)
        try:
            build_no = int(query["build_no"])
        except (KeyError, ValueError):
            return _cloud_error(400, "CB.00060200", "Invalid parameter: build_no.")
        result = self.state.stop_build(job_id, build_no)
        if result == "missing":
            return _cloud_error(404, CODE_TASK_MISSING, "The build task or build does not exist.")
        if result == "not_running":
            return _cloud_error(400, CODE_BUILD_NOT_RUNNING, "The build is not running.")
        return _json(200, {"status": "success"})

    def _delete_task(self, request: EmuRequest, request_id: str, project: str | None, job_id: str) -> EmuReply:
        task = self.state.delete_task(job_id)
        if task is None:
            return _cloud_error(404, CODE_TASK_MISSING, "The build task does not exist.")
        return _json(200, {"status": "success", "result": {"job_id": task.job_id, "project_id": task.project_id}})

    # -- DataArts Studio -----------------------------------------------------------------------------------
    def _stop_job(self, request: EmuRequest, request_id: str, project: str | None, project_id: str,
                  job_name: str) -> EmuReply:
        if project is not None and project != project_id:
            return _gateway_error(403, "APIGW.0302", "The IAM user is not authorized to access the API.",
                                  request_id)
        result = self.state.stop_job(project_id, request.headers.get("workspace"), job_name)
        if result == "missing":
            return _cloud_error(400, "DLF.0100", "The job does not exists.")
        if result == "not_running":
            return _cloud_error(400, CODE_JOB_NOT_RUNNING, "The job instance does not exist.")
        return EmuReply(204)

    # -- control API -----------------------------------------------------------------------------------------
    def _control(self, request: EmuRequest) -> EmuReply:
        route = (request.method, request.path.rstrip("/"))
        try:
            body = json.loads(request.body) if request.body else {}
        except ValueError:
            return _json(400, {"ok": False, "error": "body is not JSON"})
        try:
            if route == ("GET", "/_emulator/health"):
                return _json(200, {"ok": True})
            if route == ("POST", "/_emulator/reset"):
                self.reset()
                return _json(200, {"ok": True})
            if route == ("POST", "/_emulator/seed"):
                self.state.seed(body)
                return _json(200, {"ok": True})
            if route == ("GET", "/_emulator/calls"):
                with self.state.lock:
                    return _json(200, {"calls": list(self.calls)})
            if route == ("GET", "/_emulator/state"):
                return _json(200, {**self.state.snapshot(), "faults_injected": dict(self.faults.injected),
                                   "max_in_flight": self.max_in_flight})
            if route == ("POST", "/_emulator/faults"):
                self.faults.add(FaultRule.from_json(body))
                return _json(200, {"ok": True, "faults": [r.to_json() for r in self.faults.rules]})
            if route == ("DELETE", "/_emulator/faults"):
                self.faults.clear()
                return _json(200, {"ok": True})
            if route == ("GET", "/_emulator/faults"):
                return _json(200, {"faults": [r.to_json() for r in self.faults.rules]})
        except (ValueError, KeyError, TypeError) as exc:
            return _json(400, {"ok": False, "error": str(exc)})
        return _json(404, {"ok": False, "error": f"no control route {request.method} {request.path}"})

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
