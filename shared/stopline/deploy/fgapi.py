"""FunctionGraph's management API, the calls ``stopline deploy`` makes, through stopline's own driver.

Requests are signed like every other cloud call (the same credentials, signer and driver, with its
retries of 429 and 5xx answers and dropped connections). The function URN goes into the path
percent-encoded, as the official SDK sends it. An answer that is not the documented success is raised
as :class:`CloudRefusal` with the cloud's ``FSS.*`` code, for the planner to name the function and the
key of ``serverless.yml`` it concerns.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from stopline.errors import StoplineError, Transient
from stopline.wire import Call, RawReply, decode_body, parse_error_body, parse_retry_after

if TYPE_CHECKING:
    from stopline.driver import Client
    from stopline.operations import Step

CODE_NOT_CHANGED = "FSS.0409"
"""What a code update answers when the code is the same; it is not a failure."""


class CloudRefusal(Exception):
    """FunctionGraph said no (or could not be reached after the retries)."""

    def __init__(self, what: str, status: int | None, code: str | None, message: str | None,
                 request_id: str | None = None) -> None:
        said = f"HTTP {status}" if status else "no answer"
        super().__init__(f"{what}: {said}" + (f" {code}" if code else "") + (f": {message}" if message else ""))
        self.what = what
        self.status = status
        self.code = code
        self.detail = message or ""
        self.request_id = request_id

    def sentence(self) -> str:
        """What happened, for a person: the refusal with its code, or why there was no answer."""
        if self.status is None:
            return f"could not {self.what}: {self.detail}"
        said = f"HTTP {self.status}" + (f" {self.code}" if self.code else "")
        said += f": {self.detail}" if self.detail else ""
        said += f" [request {self.request_id}]" if self.request_id else ""
        return f"FunctionGraph refused to {self.what}: {said}"


class FunctionGraph:
    """One project's functions in one region."""

    def __init__(self, client: Client, project_id: str, region: str) -> None:
        self._client = client
        self._project = project_id
        self._region = region
        self._base = client.core.endpoints.functiongraph

    def urn(self, package: str, name: str) -> str:
        return f"urn:fss:{self._region}:{self._project}:function:{package}:{name}:latest"

    # -- functions ---------------------------------------------------------------------------------------
    def config(self, urn: str) -> dict[str, Any] | None:
        """The function's configuration, or None when there is no such function (404, FSS.1051)."""
        reply = self._send("read the function", "GET", f"functions/{quote(urn, safe='')}/config")
        return None if reply.status == 404 else _object(self._expect(reply, "read the function", (200,)))

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        return _object(self._expect(self._send("create the function", "POST", "functions", body),
                                    "create the function", (200, 201)))

    def update_code(self, urn: str, body: dict[str, Any]) -> None:
        reply = self._send("upload the code", "PUT", f"functions/{quote(urn, safe='')}/code", body)
        if reply.status == 409 and parse_error_body(reply.body)[0] == CODE_NOT_CHANGED:
            return
        self._expect(reply, "upload the code", (200,))

    def update_config(self, urn: str, body: dict[str, Any]) -> None:
        self._expect(self._send("update the configuration", "PUT", f"functions/{quote(urn, safe='')}/config", body),
                     "update the configuration", (200,))

    def async_config(self, urn: str) -> dict[str, Any] | None:
        """The async invocation config, or None when none is set (the cloud's answer then is not documented:
        any 404 counts as none)."""
        reply = self._send("read the async invocation config", "GET",
                           f"functions/{quote(urn, safe='')}/async-invoke-config")
        return None if reply.status == 404 else _object(self._expect(reply, "read the async invocation config", (200,)))

    def set_async_config(self, urn: str, body: dict[str, Any]) -> None:
        self._expect(self._send("set the async invocation config", "PUT",
                                f"functions/{quote(urn, safe='')}/async-invoke-config", body),
                     "set the async invocation config", (200,))

    # -- triggers ----------------------------------------------------------------------------------------------
    def triggers(self, urn: str) -> list[dict[str, Any]]:
        reply = self._send("list the triggers", "GET", f"triggers/{quote(urn, safe='')}")
        if reply.status == 404:
            return []
        found = self._expect(reply, "list the triggers", (200,))
        return [t for t in found if isinstance(t, dict)] if isinstance(found, list) else []

    def create_trigger(self, urn: str, body: dict[str, Any]) -> dict[str, Any]:
        return _object(self._expect(self._send("create the trigger", "POST", f"triggers/{quote(urn, safe='')}", body),
                                    "create the trigger", (200, 201)))

    def delete_trigger(self, urn: str, type_code: str, trigger_id: str) -> None:
        reply = self._send("delete the trigger", "DELETE",
                           f"triggers/{quote(urn, safe='')}/{quote(type_code, safe='')}/{quote(trigger_id, safe='')}")
        if reply.status != 404:  # already gone is what was wanted
            self._expect(reply, "delete the trigger", (200, 204))

    # -- the exchange ----------------------------------------------------------------------------------------
    def _send(self, what: str, method: str, path: str, body: dict[str, Any] | None = None) -> RawReply:
        content = json.dumps(body, separators=(",", ":")).encode() if body is not None else b""
        call = Call.build(method, self._base, f"/v2/{self._project}/fgs/{path}", api="functiongraph",
                          headers={"Content-Type": "application/json", "User-Agent": "stopline-deploy"},
                          body=content)
        core = self._client.core

        def flow() -> Generator[Step, Any, RawReply]:
            reply = yield from core.exchange(call)
            if reply.status == 429 or reply.status >= 500:
                info = reply.upstream()
                raise Transient(f"FunctionGraph answered HTTP {reply.status} {info.error_code or ''}".strip()
                                + f" to {what}", retry_after=parse_retry_after(reply.header("retry-after")),
                                upstream=info)
            return reply

        found = self._client.perform(f"FunctionGraph ({what})", flow)
        if isinstance(found, StoplineError):
            upstream = found.upstream
            raise CloudRefusal(what, upstream.status if upstream else None, upstream.error_code if upstream else None,
                               found.message if upstream is None else upstream.error_msg,
                               upstream.request_id if upstream else None)
        return found

    @staticmethod
    def _expect(reply: RawReply, what: str, statuses: tuple[int, ...]) -> Any:
        if reply.status in statuses:
            return decode_body(reply.body) if reply.body else {}
        info = reply.upstream()
        raise CloudRefusal(what, reply.status, info.error_code, info.error_msg, info.request_id)


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
