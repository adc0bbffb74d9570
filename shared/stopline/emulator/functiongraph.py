"""The emulator's FunctionGraph management API: the calls ``stopline deploy functiongraph`` makes.

Written from the API's documented requests, answers and ``FSS.*`` codes (docs/cloud-answers.md), not
from stopline's deploy code: create / read / update code / update config of a function, its triggers
(list, create, delete) and its async invocation config. Where the cloud's answer is not documented the
emulator says so in a stand-in code (``FSS.EMULATOR.*``): the answer for a function without an async
config. Trigger passwords are kept but never listed back, since whether the cloud returns them is not
documented either. ``digest`` is the SHA-512 of the uploaded zip (which bytes the cloud hashes is not
documented); a code update with the same digest answers ``409 FSS.0409``, as the plugin's source says.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import re
import time
import uuid
import zipfile
from typing import Any

from stopline.emulator.replies import EmuReply, EmuRequest, cloud_error, json_reply
from stopline.emulator.state import CloudState

_URN = r"(?P<function_urn>[^/]+)"
_BASE = r"^/v2/(?P<project_id>[^/]+)/fgs"
ROUTES = (
    ("POST", re.compile(_BASE + r"/functions$"), "create"),
    ("GET", re.compile(_BASE + r"/functions$"), "list_functions"),
    ("GET", re.compile(_BASE + rf"/functions/{_URN}/config$"), "show_config"),
    ("PUT", re.compile(_BASE + rf"/functions/{_URN}/config$"), "update_config"),
    ("PUT", re.compile(_BASE + rf"/functions/{_URN}/code$"), "update_code"),
    ("GET", re.compile(_BASE + rf"/functions/{_URN}/async-invoke-config$"), "show_async"),
    ("PUT", re.compile(_BASE + rf"/functions/{_URN}/async-invoke-config$"), "update_async"),
    ("DELETE", re.compile(_BASE + rf"/functions/{_URN}$"), "delete_function"),
    ("GET", re.compile(_BASE + rf"/triggers/{_URN}$"), "list_triggers"),
    ("POST", re.compile(_BASE + rf"/triggers/{_URN}$"), "create_trigger"),
    ("DELETE", re.compile(_BASE + rf"/triggers/{_URN}/(?P<type_code>[^/]+)/(?P<trigger_id>[^/]+)$"),
     "delete_trigger"),
)
RUNTIMES = frozenset({"Python2.7", "Python3.6", "Python3.9", "Python3.10", "Python3.12", "Java8", "Java11", "Java17",
                      "Go1.x", "Node.js14.18", "Node.js16.17", "Node.js18.15", "Custom", "http"})
MEMORY = frozenset({128, 256, 512, 768, 1024, 1280, 1536, 1792, 2048, 2560, 3072, 3584, 4096})
MAX_ZIP = 50 * 1024 * 1024
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,59}$")
_HANDLER = re.compile(r"^[^.\s]+\.[^.\s]+$")
_SECRETS = ("kafka_password", "access_password", "db_password")
_TRIGGER_CODES = {"SMN": "FSS.1102", "APIG": "FSS.1107", "DEDICATEDGATEWAY": "FSS.1107", "TIMER": "FSS.1109",
                  "KAFKA": "FSS.1112"}
_REQUIRED = {"TIMER": ("schedule_type", "schedule"), "SMN": ("topic_urn",), "CTS": ("operations",),
             "KAFKA": ("instance_id", "topic_ids", "batch_size"),
             "RABBITMQ": ("instance_id", "batch_size", "access_password", "exchange_name"),
             "APIG": ("path", "protocol", "req_method", "group_id", "match_mode", "env_name", "env_id", "auth"),
             "DEDICATEDGATEWAY": ("path", "protocol", "req_method", "group_id", "match_mode", "env_name", "env_id",
                                  "auth"),
             "OBS": ("bucket", "events")}
_EXISTS = {"SMN": ("FSS.1141", "topic_urn"), "APIG": ("FSS.1147", "path"), "DEDICATEDGATEWAY": ("FSS.1147", "path"),
           "TIMER": ("FSS.1148", "name"), "KAFKA": ("FSS.1150", "instance_id")}
_PUBLIC = ("func_id", "func_urn", "func_name", "domain_id", "namespace", "project_name", "package", "runtime",
           "timeout", "handler", "memory_size", "cpu", "code_type", "code_url", "code_filename", "code_size",
           "user_data", "digest", "version", "image_name", "xrole", "app_xrole", "description", "last_modified",
           "func_vpc", "initializer_handler", "initializer_timeout", "enterprise_project_id", "type",
           "strategy_config")


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())


def _body(request: EmuRequest) -> dict[str, Any] | None:
    try:
        found = json.loads(request.body or b"null")
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


def _latest(project_id: str, urn: str) -> str | None:
    """The function's key (project, package, name, version -- ``latest`` when absent), or None when the URN
    is not one of this project's functions. The region part is not compared: the emulator serves one."""
    parts = urn.split(":")
    if len(parts) not in (7, 8) or parts[:2] != ["urn", "fss"] or parts[3] != project_id or parts[4] != "function":
        return None
    return ":".join([parts[3], parts[5], parts[6], parts[7] if len(parts) == 8 else "latest"])


def _missing() -> EmuReply:
    return cloud_error(404, "FSS.1051", "Not found the function")


def _checked_config(body: dict[str, Any]) -> EmuReply | None:
    """The FSS.100x checks shared by create and update config."""
    checks = (
        (_NAME.match(str(body.get("func_name", ""))), "FSS.1002", "Invalid function name"),
        (_HANDLER.match(str(body.get("handler", ""))), "FSS.1003", "Invalid handler"),
        (body.get("runtime") in RUNTIMES, "FSS.1005", "Invalid runtime"),
        (body.get("memory_size") in MEMORY, "FSS.1007", "Invalid memory size"),
        (isinstance(body.get("timeout"), int) and 3 <= body["timeout"] <= 259200, "FSS.1008", "Invalid timeout"),
    )
    for ok, code, message in checks:
        if not ok:
            return cloud_error(400, code, message)
    if body.get("initializer_handler") is not None:
        if not _HANDLER.match(str(body["initializer_handler"])):
            return cloud_error(400, "FSS.1404", "Invalid initializer handler")
        timeout = body.get("initializer_timeout")
        if not isinstance(timeout, int) or not 1 <= timeout <= 300:
            return cloud_error(400, "FSS.1405", "Invalid initializer timeout")
    return _checked_user_data(body.get("user_data"))


def _checked_user_data(user_data: Any) -> EmuReply | None:
    if user_data in (None, ""):
        return None
    try:
        variables = json.loads(user_data) if isinstance(user_data, str) else None
    except ValueError:
        variables = None
    if not isinstance(variables, dict):
        return cloud_error(400, "FSS.1009", "Invalid UserData: a JSON object serialized into a string")
    if len(variables) > 20:
        return cloud_error(400, "FSS.1017", "The number of environment variables exceeds 20")
    if len(user_data.encode()) > 4096:
        return cloud_error(400, "FSS.1018", "The environment variables exceed the size limit")
    return None


def _code(body: dict[str, Any]) -> tuple[bytes, list[str]] | EmuReply:
    """The zip bytes of a ``func_code.file`` and the names inside, or the refusal."""
    if body.get("code_type") != "zip":
        return cloud_error(400, "FSS.1006", "Invalid code type (the emulator takes zip)")
    encoded = (body.get("func_code") or {}).get("file")
    try:
        data = base64.b64decode(encoded or "", validate=True)
        names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    except (binascii.Error, ValueError, zipfile.BadZipFile):
        return cloud_error(400, "FSS.0400", "func_code.file is not the base64 of a zip")
    if len(data) > MAX_ZIP:
        return cloud_error(413, "FSS.1071", "The code package exceeds 50 MB")
    return data, names


def _public(function: dict[str, Any]) -> dict[str, Any]:
    return {k: function[k] for k in _PUBLIC if k in function}


def create(state: CloudState, request: EmuRequest, project_id: str) -> EmuReply:
    body = _body(request)
    if body is None:
        return cloud_error(400, "FSS.0400", "The request body is not a JSON object")
    problem = _checked_config(body)
    if problem is not None:
        return problem
    if not body.get("package"):
        return cloud_error(400, "FSS.1004", "Invalid package")
    code = _code(body)
    if isinstance(code, EmuReply):
        return code
    urn = f"{project_id}:{body['package']}:{body['func_name']}:latest"
    with state.lock:
        if urn in state.functions:
            return cloud_error(409, "FSS.1061", "The function already exists")
        function = {k: v for k, v in body.items() if k != "func_code"}
        full = f"urn:fss:{state.fg_region}:{project_id}:function:{body['package']}:{body['func_name']}:latest"
        function.update(func_id=uuid.uuid4().hex, namespace=project_id, func_urn=full, domain_id=project_id,
                        version="latest", cpu=300, last_modified=_now(), strategy_config={"concurrency": -1})
        _store_code(function, *code)
        state.functions[urn] = function
        state.fg_triggers[urn] = []
        return json_reply(200, _public(function))


def _store_code(function: dict[str, Any], data: bytes, names: list[str]) -> None:
    function.update(code_type="zip", code_size=len(data), digest=hashlib.sha512(data).hexdigest(),
                    code_files=names, last_modified=_now())


def list_functions(state: CloudState, request: EmuRequest, project_id: str) -> EmuReply:
    query = dict(request.query)
    with state.lock:
        found = [_public(f) for f in state.functions.values() if f["namespace"] == project_id
                 and query.get("func_name", "") in f["func_name"]
                 and query.get("package_name", f["package"]) == f["package"]]
    return json_reply(200, {"functions": found, "next_marker": len(found), "count": len(found)})


def show_config(state: CloudState, request: EmuRequest, project_id: str, function_urn: str) -> EmuReply:
    urn = _latest(project_id, function_urn)
    with state.lock:
        function = state.functions.get(urn or "")
        return _missing() if function is None else json_reply(200, _public(function))


def update_config(state: CloudState, request: EmuRequest, project_id: str, function_urn: str) -> EmuReply:
    body = _body(request)
    urn = _latest(project_id, function_urn)
    with state.lock:
        function = state.functions.get(urn or "")
        if function is None:
            return _missing()
        if body is None:
            return cloud_error(400, "FSS.0400", "The request body is not a JSON object")
        problem = _checked_config(body)
        if problem is not None:
            return problem
        if body["func_name"] != function["func_name"]:
            return cloud_error(400, "FSS.1002", "func_name does not match the function")
        function.update({k: v for k, v in body.items() if not k.startswith("code_") and k != "func_code"})
        function["last_modified"] = _now()
        return json_reply(200, _public(function))


def update_code(state: CloudState, request: EmuRequest, project_id: str, function_urn: str) -> EmuReply:
    body = _body(request) or {}
    urn = _latest(project_id, function_urn)
    with state.lock:
        function = state.functions.get(urn or "")
        if function is None:
            return _missing()
        code = _code(body)
        if isinstance(code, EmuReply):
            return code
        if hashlib.sha512(code[0]).hexdigest() == function["digest"]:
            return cloud_error(409, "FSS.0409", "code not updated")
        _store_code(function, *code)
        state.fg_code_uploads += 1
        return json_reply(200, {k: function[k] for k in ("func_urn", "func_name", "runtime", "code_type", "code_size",
                                                           "digest", "last_modified")})


def delete_function(state: CloudState, request: EmuRequest, project_id: str, function_urn: str) -> EmuReply:
    urn = _latest(project_id, function_urn)
    with state.lock:
        if state.functions.pop(urn or "", None) is None:
            return _missing()
        state.fg_triggers.pop(urn or "", None)
        state.fg_async.pop(urn or "", None)
    return EmuReply(204)


def show_async(state: CloudState, request: EmuRequest, project_id: str, function_urn: str) -> EmuReply:
    urn = _latest(project_id, function_urn)
    with state.lock:
        if urn not in state.functions:
            return _missing()
        found = state.fg_async.get(urn or "")
    if found is None:
        return cloud_error(404, "FSS.EMULATOR.NO_ASYNC_CONFIG", "stand-in: no async invocation config is set (the "
                           "cloud's answer for this case is not documented)")
    return json_reply(200, found)


def update_async(state: CloudState, request: EmuRequest, project_id: str, function_urn: str) -> EmuReply:
    body = _body(request)
    urn = _latest(project_id, function_urn)
    retries = (body or {}).get("max_async_retry_attempts", 1)
    age = (body or {}).get("max_async_event_age_in_seconds", 3600)
    with state.lock:
        if urn not in state.functions or urn is None:
            return _missing()
        if body is None or not isinstance(retries, int) or not 0 <= retries <= 3 or not isinstance(age, int) \
                or not 1 <= age <= 86400:
            return cloud_error(400, "FSS.0400", "max_async_retry_attempts is 0..3, max_async_event_age_in_seconds "
                               "1..86400")
        old = state.fg_async.get(urn) or {"created_time": _now()}
        state.fg_async[urn] = {**body, "func_urn": state.functions[urn]["func_urn"],
                               "max_async_retry_attempts": retries,
                               "max_async_event_age_in_seconds": age, "created_time": old["created_time"],
                               "last_modified": _now()}
        return json_reply(200, state.fg_async[urn])


def list_triggers(state: CloudState, request: EmuRequest, project_id: str, function_urn: str) -> EmuReply:
    urn = _latest(project_id, function_urn)
    with state.lock:
        if urn not in state.functions or urn is None:
            return _missing()
        return json_reply(200, [_listed(t) for t in state.fg_triggers[urn]])


def _listed(trigger: dict[str, Any]) -> dict[str, Any]:
    data = {k: v for k, v in trigger["event_data"].items() if k not in _SECRETS}
    return {**trigger, "event_data": data}


def create_trigger(state: CloudState, request: EmuRequest, project_id: str, function_urn: str) -> EmuReply:
    body = _body(request)
    urn = _latest(project_id, function_urn)
    with state.lock:
        if urn not in state.functions or urn is None:
            return _missing()
        type_code = (body or {}).get("trigger_type_code")
        data = (body or {}).get("event_data")
        if type_code not in _REQUIRED or not isinstance(data, dict):
            return cloud_error(400, "FSS.1101", "Invalid trigger type or event_data")
        code = _TRIGGER_CODES.get(type_code, "FSS.0400")
        if any(data.get(name) in (None, "", []) for name in _REQUIRED[type_code]):
            return cloud_error(400, code, f"Invalid {type_code} trigger parameters")
        if type_code in ("KAFKA", "RABBITMQ") and not 1 <= int(data.get("batch_size", 0)) <= 1000:
            return cloud_error(400, code, "batch_size is 1..1000")
        status = (body or {}).get("trigger_status") or ("DISABLED" if type_code in ("KAFKA", "DDS") else "ACTIVE")
        clash = _EXISTS.get(type_code)
        for other in state.fg_triggers[urn]:
            if clash and other["trigger_type_code"] == type_code and \
                    other["event_data"].get(clash[1]) == data.get(clash[1]):
                return cloud_error(409, clash[0], f"The {type_code} trigger already exists")
        trigger = {"trigger_id": str(uuid.uuid4()), "trigger_type_code": type_code, "trigger_status": status,
                   "event_type_code": (body or {}).get("event_type_code"), "event_data": dict(data),
                   "last_updated_time": _now(), "created_time": _now()}
        state.fg_triggers[urn].append(trigger)
        return json_reply(201, _listed(trigger))


def delete_trigger(state: CloudState, request: EmuRequest, project_id: str, function_urn: str, type_code: str,
                   trigger_id: str) -> EmuReply:
    urn = _latest(project_id, function_urn)
    with state.lock:
        if urn not in state.functions or urn is None:
            return _missing()
        found = [t for t in state.fg_triggers[urn] if t["trigger_id"] == trigger_id
                 and t["trigger_type_code"] == type_code]
        if not found:
            return cloud_error(404, "FSS.1131", "The trigger does not exist")
        state.fg_triggers[urn].remove(found[0])
    return EmuReply(204)
