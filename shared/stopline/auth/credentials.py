"""The credential sources of docs/configuration.md that need no request of their own: AK/SK signing and a
ready token. The IAM password source, which fetches and caches a token, is :mod:`stopline.auth.iam`,
loaded only when configured.

Secrets stay ``SecretStr`` until the moment a header is built, and no repr shows them.
"""

from typing import Literal, NamedTuple, Protocol

from pydantic import SecretStr

from stopline.auth import signer
from stopline.wire import Call


class Credentials(Protocol):
    """Turns a planned call into the headers that authenticate it."""

    @property
    def kind(self) -> str: ...

    @property
    def needs_token(self) -> bool: ...

    def apply(self, call: Call, token: str | None) -> dict[str, str]: ...


class AkSk(NamedTuple):
    """AK/SK signing; also FunctionGraph agency credentials (temporary keys plus security token)."""

    access_key: str
    secret_key: SecretStr
    project_id: str | None = None
    security_token: SecretStr | None = None
    kind: Literal["aksk", "agency"] = "aksk"
    needs_token: bool = False

    def apply(self, call: Call, token: str | None) -> dict[str, str]:
        headers = dict(call.headers)
        if self.project_id:
            headers["X-Project-Id"] = self.project_id
        if self.security_token is not None:
            headers["X-Security-Token"] = self.security_token.get_secret_value()
        return signer.sign(
            access_key=self.access_key,
            secret_key=self.secret_key.get_secret_value(),
            method=call.method,
            host=call.host,
            path=call.path,
            query=call.query,
            headers=headers,
            body=call.body,
        )


class StaticToken(NamedTuple):
    """A ready IAM token (STOPLINE_AUTH_TOKEN, or a FunctionGraph agency token)."""

    token: SecretStr
    kind: Literal["token"] = "token"
    needs_token: bool = False

    def apply(self, call: Call, token: str | None) -> dict[str, str]:
        return {**call.headers, "X-Auth-Token": self.token.get_secret_value()}
