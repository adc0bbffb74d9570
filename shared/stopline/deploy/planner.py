"""What to change so the cloud matches ``serverless.yml``, and changing it.

:func:`plan_function` only reads (function config, triggers, async config) and returns the steps;
:func:`apply` carries them out in order. A second deploy of the same file and package plans nothing:
the package's sha256 is recorded on the function (``STOPLINE_PACKAGE_SHA256``) and the upload is
skipped when it matches; the configuration is compared field by field; a trigger is kept when the
cloud's copy has the same type, status and fields, and otherwise deleted and created again (the API
cannot edit one in place) -- triggers the file does not name are deleted too, since the file is the
whole description of the function. Printed text names variables, never their values, and never a
trigger's password.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from stopline.deploy.fgapi import FunctionGraph
from stopline.deploy.manifest import PACKAGE_SHA256, FunctionSpec
from stopline.deploy.package import Package
from stopline.deploy.triggers import Trigger, label

_COMPARED = ("runtime", "handler", "memory_size", "timeout", "xrole", "app_xrole", "description",
             "initializer_handler", "initializer_timeout")


@dataclass(frozen=True)
class Step:
    kind: str
    """``create``, ``code``, ``config``, ``delete-trigger``, ``create-trigger`` or ``async``."""
    text: str
    key: str
    """The key of serverless.yml the step carries out, for errors."""
    run: Callable[[], Any]


@dataclass(frozen=True)
class FunctionPlan:
    spec: FunctionSpec
    urn: str
    exists: bool
    steps: tuple[Step, ...]


def plan_function(api: FunctionGraph, spec: FunctionSpec, package: Package, *,
                  replace_triggers: bool = False) -> FunctionPlan:
    """The steps that make the cloud's function ``spec``; calls only reads. ``replace_triggers`` deletes and
    creates every trigger even when it looks the same (a changed password is not listed back)."""
    urn = api.urn(spec.package, spec.name)
    where = f"functions.{spec.key}"
    config = spec.config(package.sha256)
    current = api.config(urn)
    steps: list[Step] = []
    if current is None:
        body = {**config, "package": spec.package, "code_type": "zip", "type": "v2",
                "func_code": {"file": package.encoded}}
        if spec.enterprise_project_id:
            body["enterprise_project_id"] = spec.enterprise_project_id
        steps.append(Step("create", f"create function ({spec.runtime}, {spec.memory_size} MB, {spec.timeout} s, "
                          f"{len(spec.environment) + 1} variables, package sha256 {package.sha256[:12]})", where,
                          lambda: api.create(body)))
        existing: list[dict[str, Any]] = []
        current_async = None
    else:
        variables = _variables(current.get("user_data"))
        recorded = variables.get(PACKAGE_SHA256, "")
        if recorded != package.sha256:
            was = f"was {recorded[:12]}" if recorded else "none recorded"
            code = {"code_type": "zip", "func_code": {"file": package.encoded}}
            steps.append(Step("code", f"upload the package (sha256 {package.sha256[:12]}, {was})",
                              f"{where}.code", lambda: api.update_code(urn, code)))
        changes = _config_changes(current, config, variables)
        if changes:
            steps.append(Step("config", "update configuration: " + "; ".join(changes), where,
                              lambda: api.update_config(urn, config)))
        existing = api.triggers(urn)
        current_async = api.async_config(urn) if spec.async_config is not None else None
    steps += _trigger_steps(api, urn, spec.triggers, existing, replace_triggers)
    if spec.async_config is not None:
        wanted = spec.async_config.body()
        if current_async is None or not _covers(current_async, wanted):
            failure = spec.async_config.on_failure
            text = (f"set async invocation: {spec.async_config.max_retry_attempts} retries, events kept "
                    f"{spec.async_config.max_event_age_s} s" + (f", failures to {failure[0]}" if failure else ""))
            steps.append(Step("async", text, f"custom.stopline.asyncInvoke ({where})",
                              lambda: api.set_async_config(urn, wanted)))
    return FunctionPlan(spec, urn, current is not None, tuple(steps))


def _covers(current: Any, wanted: Any) -> bool:
    """Whether ``current`` says everything ``wanted`` does: nested objects are compared by the keys
    ``wanted`` has, so fields the cloud adds to its answer (timestamps, an empty ``on_success``) are not
    taken for a difference."""
    if isinstance(wanted, dict):
        return isinstance(current, dict) and all(_covers(current.get(k), v) for k, v in wanted.items())
    return bool(current == wanted)


def _variables(user_data: Any) -> dict[str, str]:
    if isinstance(user_data, dict):
        return {str(k): str(v) for k, v in user_data.items()}
    try:
        found = json.loads(user_data) if user_data else {}
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def _config_changes(current: dict[str, Any], wanted: dict[str, Any], variables: dict[str, str]) -> list[str]:
    """What differs, in words: field names with old and new values, variable names only."""
    changes = []
    for name in _COMPARED:
        old, new = current.get(name) or "", wanted.get(name) or ""
        if str(old) != str(new):
            changes.append(f"{name} {old or 'unset'} -> {new or 'unset'}")
    vpc_old = current.get("func_vpc") or {}
    vpc_new = wanted.get("func_vpc") or {}
    if any(vpc_old.get(k) != v for k, v in vpc_new.items()):
        changes.append("func_vpc")
    new_variables = _variables(wanted["user_data"])
    added = sorted(set(new_variables) - set(variables))
    removed = sorted(set(variables) - set(new_variables))
    changed = sorted(k for k in set(variables) & set(new_variables) if variables[k] != new_variables[k]
                     and k != PACKAGE_SHA256)
    if added or removed or changed:
        parts = [*(f"+{k}" for k in added), *(f"~{k}" for k in changed), *(f"-{k}" for k in removed)]
        changes.append("variables " + " ".join(parts))
    elif variables.get(PACKAGE_SHA256) != new_variables.get(PACKAGE_SHA256):
        changes.append(f"record the package's sha256 ({PACKAGE_SHA256})")
    return changes


def _trigger_steps(api: FunctionGraph, urn: str, wanted: tuple[Trigger, ...], existing: list[dict[str, Any]],
                   replace: bool) -> list[Step]:
    """Keep the cloud's triggers that match the file; delete the others, then create what is missing."""
    left = list(existing)
    missing: list[Trigger] = []
    for trigger in wanted:
        same = None if replace else next((t for t in left if not trigger.differences(t)), None)
        if same is not None:
            left.remove(same)
        else:
            missing.append(trigger)
    steps = []
    for old in left:
        type_code, trigger_id = str(old.get("trigger_type_code")), str(old.get("trigger_id"))
        twin = next((t for t in missing if t.type_code == type_code and _label(old) == t.label), None)
        why = ("replaced: " + (", ".join(twin.differences(old)) or "--replace-triggers")) if twin is not None \
            else "not in serverless.yml"
        steps.append(Step("delete-trigger", f"delete trigger {_label(old)} ({why})", twin.origin if twin else urn,
                          partial(api.delete_trigger, urn, type_code, trigger_id)))
    for trigger in missing:
        steps.append(Step("create-trigger", f"create trigger {trigger.label}", trigger.origin,
                          partial(api.create_trigger, urn, trigger.body())))
    return steps


def _label(current: dict[str, Any]) -> str:
    return label(str(current.get("trigger_type_code")), current.get("event_data") or {})
