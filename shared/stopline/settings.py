"""Every environment variable of docs/configuration.md, read and validated once.

Variable names are spelled here and nowhere else. Loading never raises anything but
:class:`~stopline.errors.ConfigurationError`, whose message names the offending variables -- never
their values, since several of them are secrets (kept as ``SecretStr`` so no repr shows them).

Built for a cold start, since every function target validates these first: the checks of single variables
ride on their types (``Annotated`` validators) rather than on decorated methods pydantic inspects one by one,
and annotations are not postponed, so pydantic has no annotation strings to evaluate when the class is
defined (together about 0.4 ms of every cold start; bench/README.md, "Cold start").
"""

import os
import re
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)

from stopline.errors import ConfigurationError
from stopline.models import Action, expected

CredentialMode = Literal["aksk", "token", "iam"]

DEFAULT_NOT_RUNNING_CODES = ("DEV.CB.032302", "CB.00060301", "DLF.0137")
"""Error codes meaning "no longer running" (docs/cloud-answers.md): ``DEV.CB.032302`` is what CodeArts
answers for a finished build in the field; the other two are earlier stand-ins kept so configurations
that relied on them keep working. Users can replace the list."""

CREDENTIAL_VARIABLES = (
    "HUAWEICLOUD_SDK_AK + HUAWEICLOUD_SDK_SK (AK/SK signing), STOPLINE_AUTH_TOKEN (a ready IAM token), "
    "or STOPLINE_IAM_USERNAME + STOPLINE_IAM_PASSWORD + STOPLINE_IAM_DOMAIN (IAM password)"
)

ENV_ALIASES: dict[str, tuple[str, ...]] = {
    "ak": ("HUAWEICLOUD_SDK_AK",),
    "sk": ("HUAWEICLOUD_SDK_SK",),
    "security_token": ("HUAWEICLOUD_SDK_SECURITY_TOKEN",),
    "project_id": ("HUAWEICLOUD_SDK_PROJECT_ID", "RUNTIME_PROJECT_ID"),
}
"""Fields read from variables other than ``STOPLINE_<FIELD>``, first match wins. Every other field is
``STOPLINE_<FIELD>``; names are matched case-insensitively, like the environment of most platforms."""


def _split(value: Any) -> Any:
    """A comma-separated variable as a tuple of its non-empty parts."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


def _from_environment(fields: dict[str, Any]) -> dict[str, str]:
    """The raw values of every known variable that is set, keyed by field name.

    A plain pydantic model fed from ``os.environ`` rather than pydantic-settings: the latter imports
    asyncio, argparse and python-dotenv for sources stopline does not use, about 20 ms of every cold
    start (bench/README.md, "Reading the figures")."""
    environ = {key.upper(): value for key, value in os.environ.items()}
    found: dict[str, str] = {}
    for name in fields:
        for variable in ENV_ALIASES.get(name, (f"STOPLINE_{name.upper()}",)):
            if variable in environ:
                found[name] = environ[variable]
                break
    return found


SMN_TOPIC = r"urn:smn:[a-z0-9-]+:[A-Za-z0-9]{1,64}:[A-Za-z0-9_-]{1,255}"
"""An SMN topic URN (the ``smn://`` audit sink); compiled by ``re`` when first matched, not at import."""


def _http_url(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if not value.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")
    return value.rstrip("/")


def _store_url(value: str) -> str:
    # Only the scheme is judged here, and the message never repeats the value: it may hold a password.
    if not value.startswith(("memory://", "redis://", "rediss://", "unix://", "redis+cluster://",
                             "rediss+cluster://", "redis+sentinel://")):
        raise ValueError("must be memory://, redis://, rediss://, redis+cluster://, rediss+cluster:// "
                         "or redis+sentinel://")
    return value


def _audit_url(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if value.startswith("smn://"):
        if not re.fullmatch(SMN_TOPIC, value[len("smn://"):]):
            raise ValueError("smn:// must be followed by a topic URN (urn:smn:<region>:<project id>:<topic>)")
        return value
    if not value.startswith(("http://", "https://")):
        raise ValueError("must start with http://, https:// or smn:// (unset: audit events are log lines)")
    return value


def _known_actions(value: tuple[str, ...]) -> tuple[str, ...]:
    unknown = [a for a in value if a not in {x.value for x in Action}]
    if unknown:
        raise ValueError(f"unknown actions {unknown}; use {', '.join(a.value for a in Action)}")
    return value


CommaList = Annotated[tuple[str, ...], BeforeValidator(_split)]
Secrets = Annotated[tuple[SecretStr, ...], BeforeValidator(_split)]
Endpoint = Annotated[str | None, AfterValidator(_http_url)]
LogLevel = Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
                     BeforeValidator(lambda value: value.upper() if isinstance(value, str) else value)]
ProjectId32 = Annotated[Annotated[str, Field(pattern=r"^[A-Za-z0-9]{32}$",
                                             description="the CodeArts project's id: 32 letters/digits")] | None,
                        BeforeValidator(lambda value: None if value == "" else value)]


class Settings(BaseModel):
    """stopline's configuration; see README "Configuration" for the table. ``Settings()`` reads the
    environment; keyword arguments (by field name) win over it."""

    model_config = ConfigDict(extra="ignore", frozen=False)

    ak: str | None = None
    sk: SecretStr | None = None
    security_token: SecretStr | None = None
    project_id: str | None = None
    auth_token: SecretStr | None = None
    iam_username: str | None = None
    iam_password: SecretStr | None = None
    iam_domain: str | None = None

    region: str = Field("cn-north-4", pattern=r"^[a-z0-9-]+$",
                        description="a region id such as cn-north-4 (lower-case letters, digits and '-')")
    codearts_build_endpoint: Endpoint = None
    dataarts_endpoint: Endpoint = None
    iam_endpoint: Endpoint = None
    codearts_pipeline_endpoint: Endpoint = None
    smn_endpoint: Endpoint = None
    functiongraph_endpoint: Endpoint = None
    codearts_project_id: ProjectId32 = None
    timeout_s: float = Field(10.0, gt=0, le=300)
    sender_wait_s: float = Field(10.0, gt=0.5, le=3600)
    max_attempts: int = Field(4, ge=1, le=20)
    build_stop_api: Literal["auto", "v3", "v1"] = "auto"
    not_running_codes: CommaList = DEFAULT_NOT_RUNNING_CODES

    webhook_secrets: Secrets = ()
    github_secrets: Secrets = ()
    gitlab_tokens: Secrets = ()
    gitlab_signing_secrets: Secrets = ()
    rules: str | None = None
    webhook_tolerance_s: int = Field(300, ge=1, le=86400)
    allow_unsigned: bool = False
    retries_auth: Literal["signature", "platform"] = "signature"
    """``platform``: the ``retries`` target takes unsigned requests, because the platform authenticates its
    callers (Cloud Scheduler's OIDC token checked by Cloud Run IAM); a scheduler cannot sign each request."""
    allowed_actions: Annotated[CommaList, AfterValidator(_known_actions)] = tuple(a.value for a in Action)
    allowed_job_ids: CommaList = ()
    allowed_project_ids: CommaList = ()
    allowed_pipeline_ids: CommaList = ()
    dry_run: bool = False

    idempotency_url: Annotated[str, AfterValidator(_store_url)] = "memory://"
    idempotency_prefix: str = Field("stopline:", max_length=64)
    idempotency_ttl_s: int = Field(3600, ge=1)
    idempotency_max_entries: int = Field(100_000, ge=100)
    retry_for_s: int = Field(3600, ge=1, le=7 * 86400)
    log_level: LogLevel = "INFO"
    batch_concurrency: int = Field(16, ge=1, le=100)
    verify: bool = False
    verify_s: float = Field(30, gt=0, le=600)
    audit_url: Annotated[str | None, AfterValidator(_audit_url)] = None
    audit_secret: SecretStr | None = None
    prewarm: bool = False  # read by stopline.entry.warm_if_asked at import; validated here

    @model_validator(mode="before")
    @classmethod
    def _environment(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        return {**_from_environment(cls.model_fields), **data}

    @model_validator(mode="after")
    def _audit_is_signed(self) -> Self:
        # An unsigned audit event could be forged by anyone who can reach the receiver.
        if self.audit_url is not None and not self.audit_url.startswith("smn://"):
            from stopline.webhooks import secret_key

            if self.audit_secret is None or not self.audit_secret.get_secret_value():
                raise ValueError("STOPLINE_AUDIT_URL needs STOPLINE_AUDIT_SECRET (a whsec_ secret) to sign "
                                 "the events it sends")
            try:
                secret_key(self.audit_secret.get_secret_value())
            except ValueError as exc:
                raise ValueError(f"STOPLINE_AUDIT_SECRET: {exc}") from None
        return self

    @model_validator(mode="after")
    def _replays_stay_duplicates(self) -> Self:
        # A replay inside the signature window must still find its key (docs/sources.md).
        if self.idempotency_ttl_s < self.webhook_tolerance_s:
            raise ValueError(f"STOPLINE_IDEMPOTENCY_TTL_S ({self.idempotency_ttl_s}) must be at least "
                             f"STOPLINE_WEBHOOK_TOLERANCE_S ({self.webhook_tolerance_s}), or a replayed webhook "
                             "inside the signature window would run again")
        return self

    def credential_mode(self) -> CredentialMode | None:
        """Which of the documented credential sources applies (first match wins, section 5)."""
        if self.ak or self.sk:
            if not (self.ak and self.sk):
                raise ConfigurationError(
                    "HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK must be set together"
                )
            return "aksk"
        if self.auth_token is not None and self.auth_token.get_secret_value():
            return "token"
        iam = (self.iam_username, self.iam_password, self.iam_domain)
        if any(iam):
            if not all(iam):
                raise ConfigurationError(
                    "IAM password authentication needs STOPLINE_IAM_USERNAME, STOPLINE_IAM_PASSWORD "
                    "and STOPLINE_IAM_DOMAIN together"
                )
            return "iam"
        return None


_ENV_NAMES = {name: ENV_ALIASES.get(name, (f"STOPLINE_{name.upper()}",))[0] for name in Settings.model_fields}


def env_name(field_name: str) -> str:
    """The environment variable behind a settings field."""
    return str(_ENV_NAMES.get(field_name, f"STOPLINE_{field_name.upper()}"))


def load_settings(**overrides: Any) -> Settings:
    """Read the environment; on bad values raise one error naming every offending variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False, include_input=False):
            if not err["loc"]:  # a rule across variables: its message names them
                problems.append(err["msg"].removeprefix("Value error, "))
                continue
            loc = str(err["loc"][0])
            name = env_name(loc) if loc in _ENV_NAMES else loc.upper()
            problems.append(f"{name}: {expected(Settings, err)}")
        raise ConfigurationError("invalid configuration: " + "; ".join(problems)) from None
