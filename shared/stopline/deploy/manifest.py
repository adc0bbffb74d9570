"""``serverless.yml`` as FunctionGraph wants it: typed function specs, every value checked up front.

The file is the Serverless Framework's (with the Huawei plugin's keys), so the same file works with
either tool. What the plugin's keys cannot say -- a RabbitMQ trigger, a queue function's async
invocation config -- stopline reads from ``custom.stopline``, a section the framework passes through
untouched. Variables: ``${env:NAME}`` and ``${env:NAME, 'default'}``, and ``${opt:stage}`` /
``${opt:region}``; an unset variable without a default is an error naming the key that uses it, reported
only for the functions being deployed. A function's own ``environment`` replaces the provider's, as the
plugin's shallow merge does; the repository's file shares the common variables with a YAML anchor so
both tools agree.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from stopline.deploy import triggers as trigger_specs
from stopline.deploy.triggers import DeployFileError, Trigger, whole_number

MEMORY_SIZES = (128, 256, 512, 768, 1024, 1280, 1536, 1792, 2048, 2560, 3072, 3584, 4096)
RUNTIMES = ("Python3.12",)
"""stopline needs Python 3.11 or newer; FunctionGraph's Python runtimes are 2.7, 3.6, 3.9, 3.10 and 3.12."""
MAX_VARIABLES = 20
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,59}$")
_HANDLER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")
_VARIABLE = re.compile(r"\$\{(?P<source>[a-z]+):(?P<name>[^,}\s]+)\s*(?:,\s*(?P<default>[^}]*))?\}")
_FUNCTION_KEYS = {"name", "handler", "runtime", "memorySize", "timeout", "description", "package", "xrole",
                  "agencyName", "appXrole", "initializerHandler", "initializerTimeout", "code", "codeType",
                  "environment", "userData", "funcVpc", "events", "enterpriseProjectId"}
PACKAGE_SHA256 = "STOPLINE_PACKAGE_SHA256"
"""The variable stopline records its package's sha256 in: FunctionGraph exposes no hash a client can compute."""


@dataclass(frozen=True)
class _Missing:
    """An ``${env:NAME}`` with NAME unset and no default: an error if a deployed function uses it."""

    key: str
    variable: str


class _Unset(DeployFileError):
    def __init__(self, gaps: list[_Missing]) -> None:
        super().__init__("unset variables")
        self.gaps = gaps


@dataclass(frozen=True)
class AsyncConfig:
    """A queue function's async invocation config: what FunctionGraph does when an invocation raises."""

    max_retry_attempts: int = 3
    max_event_age_s: int = 3600
    on_failure: tuple[str, str] | None = None
    """(destination type, its parameters as the JSON string the API takes), or none."""

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"max_async_retry_attempts": self.max_retry_attempts,
                                "max_async_event_age_in_seconds": self.max_event_age_s}
        if self.on_failure is not None:
            body["destination_config"] = {"on_failure": {"destination": self.on_failure[0],
                                                         "param": self.on_failure[1]}}
        return body


@dataclass(frozen=True)
class FunctionSpec:
    """One function of the file, in the API's terms."""

    key: str
    name: str
    package: str
    runtime: str
    handler: str
    memory_size: int
    timeout: int
    environment: dict[str, str]
    xrole: str = ""
    app_xrole: str = ""
    description: str = ""
    initializer_handler: str = ""
    initializer_timeout: int = 0
    func_vpc: dict[str, str] | None = None
    triggers: tuple[Trigger, ...] = ()
    async_config: AsyncConfig | None = None
    code_uri: str = ""
    enterprise_project_id: str = ""

    def config(self, package_sha256: str) -> dict[str, Any]:
        """The update-config body (also the create body's non-code part); the environment carries the
        package's sha256, so a later deploy can tell whether the code changed."""
        variables = {**self.environment, PACKAGE_SHA256: package_sha256}
        body: dict[str, Any] = {"func_name": self.name, "runtime": self.runtime, "timeout": self.timeout,
                                "handler": self.handler, "memory_size": self.memory_size,
                                "user_data": json.dumps(variables, separators=(",", ":"), sort_keys=True)}
        optional = {"xrole": self.xrole, "app_xrole": self.app_xrole, "description": self.description,
                    "initializer_handler": self.initializer_handler,
                    "initializer_timeout": self.initializer_timeout or None, "func_vpc": self.func_vpc}
        body.update({k: v for k, v in optional.items() if v})
        return body


@dataclass(frozen=True)
class Manifest:
    path: Path
    service: str
    stage: str
    region: str
    credentials_file: str | None
    functions: tuple[FunctionSpec, ...] = field(default=())


def load(path: Path, *, stage: str | None = None, region: str | None = None, default_region: str = "cn-north-4",
         only: tuple[str, ...] = ()) -> Manifest:
    """Read ``path``; raise :class:`DeployFileError` naming every bad key at once."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DeployFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise DeployFileError(f"{path} is not valid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("functions"), dict):
        raise DeployFileError(f"{path}: no `functions:` mapping; is this a serverless.yml?")
    problems: list[str] = []
    options = {"stage": stage, "region": region}
    provider = raw.get("provider") or {}
    if provider.get("name") not in (None, "huawei"):
        problems.append(f"provider.name: {provider.get('name')!r} is not huawei")
    stage = stage or _plain(_resolve(provider.get("stage"), "provider.stage", options)) or "dev"
    options["stage"] = stage
    region = region or _plain(_resolve(provider.get("region"), "provider.region", options)) or default_region
    options["region"] = region
    service = raw.get("service")
    service = service.get("name") if isinstance(service, dict) else service
    if not isinstance(service, str) or not service:
        problems.append("service: required (the function names derive from it)")
        service = ""
    unknown = [name for name in only if name not in raw["functions"]]
    if unknown:
        raise DeployFileError(f"--only {', '.join(unknown)}: no such function in {path} (it has "
                              f"{', '.join(raw['functions'])})")
    custom = ((raw.get("custom") or {}).get("stopline") or {})
    problems += [f"custom.stopline.functions.{key}: no function {key} under functions:"
                 for key in (custom.get("functions") or {}) if key not in raw["functions"]]
    functions = []
    unset: dict[str, list[str]] = {}
    for key, body in raw["functions"].items():
        if only and key not in only:
            continue
        try:
            functions.append(_function(key, body, provider, custom, service, stage, options))
        except _Unset as exc:
            for gap in exc.gaps:
                unset.setdefault(gap.variable, [])
                if gap.key not in unset[gap.variable]:
                    unset[gap.variable].append(gap.key)
        except DeployFileError as exc:
            problems.extend(exc.problems)
    for variable, keys in unset.items():
        more = f" (and {len(keys) - 1} more key{'s' if len(keys) > 2 else ''})" if len(keys) > 1 else ""
        problems.append(f"{keys[0]}{more}: ${{env:{variable}}} is not set; export it, or give a default "
                        f"(${{env:{variable}, 'value'}})")
    if problems:
        raise DeployFileError(f"{path}: " + "; ".join(problems), problems)
    credentials = provider.get("credentials")
    return Manifest(path, service, stage, region, credentials if isinstance(credentials, str) else None,
                    tuple(functions))


def _plain(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _resolve(node: Any, key: str, options: dict[str, str | None]) -> Any:
    """``node`` with its variables replaced; an unset one becomes a :class:`_Missing` marker."""
    if isinstance(node, dict):
        return {k: _resolve(v, f"{key}.{k}", options) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, f"{key}[{i}]", options) for i, v in enumerate(node)]
    if not isinstance(node, str) or "${" not in node:
        return node
    missing: list[_Missing] = []

    def one(found: re.Match[str]) -> str:
        source, name, default = found.group("source"), found.group("name"), found.group("default")
        value = os.environ.get(name) if source == "env" else options.get(name) if source == "opt" else None
        if source not in ("env", "opt"):
            raise DeployFileError(f"{key}: ${{{source}:...}} is not resolved by stopline deploy (it resolves "
                                  "${env:NAME}, ${env:NAME, 'default'}, ${opt:stage} and ${opt:region})")
        if value is None and default is not None:
            value = default.strip().strip("'\"")
        if value is None:
            missing.append(_Missing(key, name))
            return ""
        return value

    text = _VARIABLE.sub(one, node)
    if missing:
        return missing[0]
    if "${" in text:
        raise DeployFileError(f"{key}: {node!r} has a variable stopline deploy cannot read")
    return text


def _missing_in(node: Any) -> list[_Missing]:
    if isinstance(node, _Missing):
        return [node]
    if isinstance(node, dict):
        return [m for v in node.values() for m in _missing_in(v)]
    if isinstance(node, list):
        return [m for v in node for m in _missing_in(v)]
    return []


def _function(key: str, body: Any, provider: dict[str, Any], custom: dict[str, Any], service: str, stage: str,
              options: dict[str, str | None]) -> FunctionSpec:
    """One function: the provider's keys under its own (shallowly, as the plugin merges them), its
    ``custom.stopline`` additions, every value checked; :class:`_Unset` first when variables are missing,
    since the other checks would only repeat what the missing values cause."""
    where = f"functions.{key}"
    if not isinstance(body, dict):
        raise DeployFileError(f"{where}: must be a mapping", [f"{where}: must be a mapping"])
    inherited = {k: v for k, v in provider.items() if k not in ("name", "credentials", "stage", "region")}
    own = (custom.get("functions") or {}).get(key) or {}
    resolved = {**_resolve(inherited, "provider", options), **_resolve(body, where, options)}
    extra = _resolve(own, f"custom.stopline.functions.{key}", options)
    defaults = _resolve(custom.get("asyncInvoke") or {}, "custom.stopline.asyncInvoke", options)
    gaps = _missing_in(resolved) + _missing_in(extra) + _missing_in(defaults)
    if gaps:
        raise _Unset(gaps)
    problems = [_unknown_key(where, k) for k in body if k not in _FUNCTION_KEYS]
    spec = _checked(key, where, resolved, service, stage, problems)
    events = [*(resolved.get("events") or []), *(extra.get("events") or [])]
    found = []
    for index, event in enumerate(events):
        origin = (f"{where}.events[{index}]" if index < len(resolved.get("events") or [])
                  else f"custom.stopline.functions.{key}.events[{index - len(resolved.get('events') or [])}]")
        try:
            found.append(trigger_specs.parse(event, origin))
        except DeployFileError as exc:
            problems.extend(exc.problems)
    asynchronous = any(t.asynchronous for t in found)
    settings = {**defaults, **(extra.get("asyncInvoke") or {})}
    async_config = _async_config(settings, f"custom.stopline.functions.{key}.asyncInvoke", problems) \
        if asynchronous else None
    if problems:
        raise DeployFileError("; ".join(problems), problems)
    return FunctionSpec(**{**spec, "triggers": tuple(found), "async_config": async_config})


def _checked(key: str, where: str, resolved: dict[str, Any], service: str, stage: str,
             problems: list[str]) -> dict[str, Any]:
    """The function's own fields, each checked against FunctionGraph's documented limits."""
    name = resolved.get("name") or f"{service}-{stage}-{key}"
    if not _NAME.match(str(name)):
        problems.append(f"{where}.name: {name!r} is not a FunctionGraph function name (a letter, then up to 59 "
                        "letters, digits, '-' or '_')")
    runtime = str(resolved.get("runtime") or "")
    if runtime not in RUNTIMES:
        problems.append(f"{where}.runtime: {runtime or 'unset'}: stopline's package is built for Python3.12 "
                        "(stopline needs Python 3.11 or newer); set runtime: Python3.12")
    handler = str(resolved.get("handler") or "")
    if not _HANDLER.match(handler):
        problems.append(f"{where}.handler: {handler or 'unset'} is not `file.function`")
    memory = whole_number(resolved.get("memorySize", 256), f"{where}.memorySize", problems)
    if memory is not None and memory not in MEMORY_SIZES:
        problems.append(f"{where}.memorySize: {memory} MB is not one of {', '.join(map(str, MEMORY_SIZES))}")
    timeout = whole_number(resolved.get("timeout", 30), f"{where}.timeout", problems)
    if timeout is not None and not 3 <= timeout <= 259200:
        problems.append(f"{where}.timeout: {timeout} s is outside 3..259200")
    initializer = str(resolved.get("initializerHandler") or "")
    init_timeout = whole_number(resolved.get("initializerTimeout", 30 if initializer else 0),
                                f"{where}.initializerTimeout", problems)
    if initializer and not _HANDLER.match(initializer):
        problems.append(f"{where}.initializerHandler: {initializer} is not `file.function`")
    if initializer and init_timeout is not None and not 1 <= init_timeout <= 300:
        problems.append(f"{where}.initializerTimeout: {init_timeout} s is outside 1..300")
    if str(resolved.get("codeType") or "zip") != "zip":
        problems.append(f"{where}.codeType: stopline deploy uploads a zip package; other code types are not read")
    environment = _environment(resolved, where, problems)
    vpc = resolved.get("funcVpc") or {}
    func_vpc = {"vpc_id": str(vpc.get("vpcId", "")), "subnet_id": str(vpc.get("subnetId", ""))} if vpc else None
    if func_vpc is not None and not all(func_vpc.values()):
        problems.append(f"{where}.funcVpc: needs vpcId and subnetId")
    package = resolved.get("package")
    code = resolved.get("code") or {}
    return {"key": key, "name": str(name), "package": package if isinstance(package, str) and package else "default",
            "runtime": runtime, "handler": handler, "memory_size": memory or 0, "timeout": timeout or 0,
            "environment": environment, "xrole": str(resolved.get("xrole") or resolved.get("agencyName") or ""),
            "app_xrole": str(resolved.get("appXrole") or ""), "description": str(resolved.get("description") or ""),
            "initializer_handler": initializer, "initializer_timeout": init_timeout if initializer else 0,
            "func_vpc": func_vpc, "code_uri": str(code.get("codeUri", "") if isinstance(code, dict) else ""),
            "enterprise_project_id": str(resolved.get("enterpriseProjectId") or "")}


def _environment(resolved: dict[str, Any], where: str, problems: list[str]) -> dict[str, str]:
    """``userData``, else ``environment.variables`` (the plugin's order); empty values are left out."""
    source = resolved.get("userData")
    if source is None:
        source = (resolved.get("environment") or {}).get("variables") or {}
    if not isinstance(source, dict):
        problems.append(f"{where}.environment.variables: must be a mapping of names to values")
        return {}
    variables = {str(k): str(v) for k, v in source.items() if v not in (None, "")}
    if PACKAGE_SHA256 in variables:
        problems.append(f"{where}.environment.variables.{PACKAGE_SHA256}: set by stopline deploy itself")
    if len(variables) + 1 > MAX_VARIABLES:
        problems.append(f"{where}.environment.variables: {len(variables)} variables plus {PACKAGE_SHA256} is over "
                        f"FunctionGraph's {MAX_VARIABLES}")
    return variables


def _unknown_key(where: str, key: str) -> str:
    from difflib import get_close_matches

    close = get_close_matches(key, _FUNCTION_KEYS, n=1)
    hint = f"did you mean {close[0]}?" if close else f"it reads {', '.join(sorted(_FUNCTION_KEYS))}"
    return f"{where}.{key}: not a key stopline deploy reads ({hint})"


def _async_config(settings: dict[str, Any], key: str, problems: list[str]) -> AsyncConfig:
    retries = whole_number(settings.get("maxRetryAttempts", 3), f"{key}.maxRetryAttempts", problems)
    age = whole_number(settings.get("maxEventAgeInSeconds", 3600), f"{key}.maxEventAgeInSeconds", problems)
    if retries is not None and not 0 <= retries <= 3:
        problems.append(f"{key}.maxRetryAttempts: {retries} is outside 0..3")
    if age is not None and not 1 <= age <= 86400:
        problems.append(f"{key}.maxEventAgeInSeconds: {age} is outside 1..86400")
    on_failure = settings.get("onFailure")
    failure = None
    if on_failure:
        kind = str(on_failure.get("destination", "")) if isinstance(on_failure, dict) else ""
        params = {k: v for k, v in on_failure.items() if k != "destination"} if isinstance(on_failure, dict) else {}
        if kind not in ("SMN", "OBS", "DIS", "FunctionGraph") or not params:
            problems.append(f"{key}.onFailure: needs destination (SMN, OBS, DIS or FunctionGraph) and its parameters "
                            "(topic_urn; bucket and prefix; stream_name; func_urn)")
        else:
            failure = (kind, json.dumps(params, separators=(",", ":"), sort_keys=True))
    return AsyncConfig(retries if retries is not None else 3, age or 3600, failure)
