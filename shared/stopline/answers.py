"""What the cloud's answers mean: the table of docs/cloud-answers.md, applied to one answer at a time.

Pure functions of an answer (status, error code, body) and the operation it answers; no I/O. The rows
are kept as data where they are data -- which codes mean "the task is gone", "not running", "try again"
-- and as one ordered decision where the order matters (a gateway's "no such API" before a service's
"not found", "not found" before "transient").
"""

from __future__ import annotations

import logging
from typing import Any

from stopline import codearts_pipeline as runs
from stopline.errors import (
    NotFound,
    Transient,
    UpstreamAuth,
    UpstreamInfo,
    UpstreamMisconfigured,
    UpstreamRejected,
    UpstreamUnexpected,
)
from stopline.models import DeleteBuildTask, Outcome, StopBuild, StopDataArtsJob
from stopline.operations import ApiGone, Found, Operation, Reply, RunNotStopped, StopInstance, describe, said
from stopline.wire import Call, RawReply, decode_body, parse_error_body, parse_retry_after, success_error_code

log = logging.getLogger("stopline")

TRANSIENT_CODES = frozenset({"CB.00060211", "CB.00060100", "CB.00060101", "APIGW.0308"})
"""Throttling and busy codes: retried, then 503, whatever HTTP status carries them."""
TASK_MISSING_CODES = frozenset({"DEVCB.00031006", "CB.00031006"})
"""The build task does not exist: a stop is ``not_found``, a delete ``already_deleted``."""
NO_BUILD_HISTORY = "CB.00031059"
INSTANCE_MISSING_CODES = frozenset({"DLF.0137", "DLF.30137"})
CODEARTS_PREFIXES = ("CB.", "DEVCB.", "DEV.CB.")
API_NOT_FOUND = "APIGW.0101"
MISSING: dict[str, tuple[str, str | None]] = {
    "DLF.0100": ("does not exist", None),
    "DLF.0819": ("the DataArts workspace does not exist", "workspace"),
    **{code: ("the pipeline does not exist", "pipeline_id") for code in runs.PIPELINE_MISSING},
    **{code: ("the CodeArts project does not exist or does not hold this pipeline (codearts_project_id is the "
              "CodeArts project's id, not the IAM project)", "codearts_project_id")
       for code in (*runs.PROJECT_MISSING, runs.PROJECT_MISMATCH)},
}
"""Codes meaning "what the command names does not exist" (404 ``not_found``), whatever HTTP status carries
them (DataArts sends 400): what is missing, and the command field to name in ``details``."""


class Answers:
    """Reads answers with the deployment's "not running" codes (``STOPLINE_NOT_RUNNING_CODES``)."""

    def __init__(self, not_running_codes: frozenset[str]) -> None:
        self.not_running_codes = not_running_codes

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
                    f"({said(reply.status, None, None, request_id)})",
                    upstream=UpstreamInfo(reply.status, None, str(data["status"]), request_id))
            return Outcome.STOPPED
        if call.api == "delete" and (reply.status == 204 or (isinstance(data, dict) and (
                data.get("status") == "success" or isinstance(data.get("result"), dict)))):
            return Outcome.DELETED
        if call.api == "pipeline" and isinstance(data, dict) and isinstance(data.get("success"), bool):
            if data["success"]:
                return Outcome.STOPPED
            raise RunNotStopped(f"{describe(command)}: the cloud answered success: false "
                                 f"({said(reply.status, None, None, request_id)})",
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
        """A failure answer (or a 2xx carrying an error code) by the table of docs/cloud-answers.md: an outcome
        for the few that mean success, else the matching :class:`StoplineError` is raised."""
        status, request_id = reply.status, reply.header("x-request-id")
        info = UpstreamInfo(status, code, msg, request_id)
        what = describe(command)
        quoted = said(status, code, msg, request_id)
        codearts = code is not None and code.startswith(CODEARTS_PREFIXES)
        if code == API_NOT_FOUND:
            raise ApiGone(f"the API {call.method} {call.path} does not exist at {call.host} ({quoted}); "
                           "check the endpoint settings and STOPLINE_BUILD_STOP_API", upstream=info)
        if code in MISSING:
            missing, field = MISSING[code]
            raise NotFound(f"{what}: {missing} ({quoted})", upstream=info,
                           details=[{"field": field, "message": missing}] if field else [])
        if code in TASK_MISSING_CODES or (status == 404 and codearts):
            if isinstance(command, DeleteBuildTask) and not lookup:
                return Outcome.ALREADY_DELETED
            raise NotFound(f"{what}: the build task does not exist ({quoted})", upstream=info)
        if code == NO_BUILD_HISTORY and isinstance(command, StopBuild):
            raise NotFound(f"{what} does not exist: the task has no such build ({quoted})", upstream=info)
        if status == 404 and (code is None or code.startswith("APIGW.")):
            raise UpstreamMisconfigured(
                f"{what}: the endpoint answered 404 without a service error ({quoted}); the endpoint or API "
                "path is wrong -- check STOPLINE_CODEARTS_BUILD_ENDPOINT / STOPLINE_DATAARTS_ENDPOINT / "
                "STOPLINE_CODEARTS_PIPELINE_ENDPOINT",
                upstream=info)
        if not lookup:
            if isinstance(command, StopInstance) and code in INSTANCE_MISSING_CODES:
                return Outcome.ALREADY_STOPPED
            if not isinstance(command, DeleteBuildTask) and code in self.not_running_codes:
                return Outcome.ALREADY_STOPPED
        if status in (408, 429) or status >= 500 or code in TRANSIENT_CODES:
            raise Transient(f"{what}: the cloud is unavailable or throttling ({quoted})", upstream=info,
                            retry_after=parse_retry_after(reply.header("retry-after")))
        if status == 404:
            raise NotFound(f"{what} does not exist ({quoted})", upstream=info)
        if status in (401, 403):
            raise UpstreamAuth(f"the cloud refused our credentials or permissions for {what} ({quoted})",
                               upstream=info)
        raise UpstreamRejected(f"the cloud rejected the parameters for {what} ({quoted})", upstream=info)

    def read_page(self, command: Operation, call: Call, reply: RawReply) -> Any:
        """The JSON of a look-up answer, or the failure it stands for."""
        data = decode_body(reply.body)
        if 200 <= reply.status < 300:
            code, msg = success_error_code(data)
            if code is None:
                if not isinstance(data, dict):
                    raise Transient(f"{describe(command)}: the look-up answered a body that is not a JSON "
                                    f"object ({said(reply.status, None, None, reply.header('x-request-id'))})")
                return data
        else:
            code, msg = parse_error_body(reply.body)
        self._classify(command, call, reply, code, msg, lookup=True)
        raise UpstreamRejected(f"{describe(command)}: unexpected look-up answer "
                               f"({said(reply.status, code, msg, reply.header('x-request-id'))})")

    def read_records(self, command: StopBuild, call: Call, reply: RawReply, page: int) -> Found:
        data = self.read_page(command, call, reply)
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
        data = self.read_page(command, call, reply)
        items = data.get("instances") or []
        if not isinstance(items, list):
            items = []
        try:
            total = int(data.get("total") or 0)
        except (TypeError, ValueError):
            total = 0
        return Found([i for i in items if isinstance(i, dict)], bool(items) and offset + len(items) < total)
