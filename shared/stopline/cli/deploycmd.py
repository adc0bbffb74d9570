"""``stopline deploy functiongraph``: deploy serverless.yml's functions without the Serverless Framework.

Reads the file (:mod:`stopline.deploy.manifest`), builds and zips the package, then for each function
prints what it will change and -- unless ``--plan`` -- changes it, step by step, stopping at the first
refusal with the function, the key of serverless.yml and the cloud's code (docs/deploy.md).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from stopline.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, _die, main


@main.group(short_help="Deploy serverless.yml's functions to FunctionGraph through its API.")
def deploy() -> None:
    """Deploy the functions serverless.yml declares, with stopline's own API client."""


@deploy.command("functiongraph")
@click.option("-c", "--config", "config_path", type=click.Path(path_type=Path), default=Path("serverless.yml"),
              show_default=True, help="The Serverless Framework file to read.")
@click.option("--plan", is_flag=True, help="Print what would change and change nothing (it only reads).")
@click.option("--only", multiple=True, metavar="KEY", help="Deploy only this function (its key under functions:); "
              "repeatable.")
@click.option("--stage", help="The stage in derived function names (default: provider.stage, else dev).")
@click.option("--region", help="The region (default: provider.region, else STOPLINE_REGION, else cn-north-4).")
@click.option("--no-build", is_flag=True, help="Upload the folder code.codeUri names as it is, instead of building "
              "it with scripts/package fg.")
@click.option("--replace-triggers", is_flag=True, help="Delete and create every trigger again, even one that looks "
              "the same (FunctionGraph does not list passwords back, so a changed one is not seen otherwise).")
@click.option("--timeout", "timeout_s", type=click.FloatRange(1, 300), default=120, show_default=True,
              help="Seconds each API call may take (a package upload is several MB).")
def functiongraph(config_path: Path, plan: bool, only: tuple[str, ...], stage: str | None, region: str | None,
                  no_build: bool, replace_triggers: bool, timeout_s: float) -> None:
    """Create or update each function of serverless.yml, its environment, triggers and async config.

    Idempotent: a second run with the same file and package changes nothing. Credentials and project are
    stopline's usual variables (HUAWEICLOUD_SDK_AK/SK, HUAWEICLOUD_SDK_PROJECT_ID), else the file's
    provider.credentials; STOPLINE_FUNCTIONGRAPH_ENDPOINT points it elsewhere (the emulator).
    """
    from stopline.deploy import manifest as manifest_file
    from stopline.deploy.triggers import DeployFileError

    try:
        found = manifest_file.load(config_path, stage=stage, region=region, only=only,
                                   default_region=os.environ.get("STOPLINE_REGION") or "cn-north-4")
    except DeployFileError as exc:
        _problems(exc.problems, config_path.name)
    if not found.functions:
        _die(f"{config_path}: no functions to deploy")
    api = _api(found, timeout_s)
    package = _package(found, config_path, no_build)
    _check_rules_shipped(found, package)
    click.echo(f"{'plan' if plan else 'deploy'}: {len(found.functions)} functions of {config_path} (service "
               f"{found.service}, stage {found.stage}) to FunctionGraph in {found.region}")
    click.echo(f"package: {package.describe()}")
    sys.exit(_run(api, found, package, plan, replace_triggers))


def _problems(problems: list[str], where: str = "serverless.yml") -> None:
    click.echo(f"stopline: {where} has {len(problems)} problem{'s' if len(problems) > 1 else ''}; nothing "
               "was called:", err=True)
    for problem in problems:
        click.echo(f"  {problem}", err=True)
    sys.exit(EXIT_USAGE)


def _api(found: Any, timeout_s: float) -> Any:
    """FunctionGraph's API with stopline's credentials (or the file's credentials file) and driver."""
    from stopline.client import core_from
    from stopline.deploy.fgapi import FunctionGraph
    from stopline.driver import Client
    from stopline.errors import ConfigurationError
    from stopline.settings import load_settings

    overrides: dict[str, Any] = {"region": found.region, "timeout_s": timeout_s}
    if not os.environ.get("HUAWEICLOUD_SDK_AK") and found.credentials_file:
        overrides.update(_credentials_file(Path(found.credentials_file).expanduser()))
    try:
        settings = load_settings(**overrides)
        if not settings.project_id:
            raise ConfigurationError("deploying needs the IAM project id of the region: set HUAWEICLOUD_SDK_PROJECT_ID")
        client = Client(core_from(settings))
    except ConfigurationError as exc:
        _die(exc.message)
    return FunctionGraph(client, settings.project_id, found.region)


def _credentials_file(path: Path) -> dict[str, str]:
    """``access_key_id`` / ``secret_access_key`` from the plugin's credentials file, when it exists."""
    if not path.is_file():
        return {}
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        name, sep, value = line.partition("=")
        if sep:
            values[name.strip()] = value.strip()
    pairs = {"ak": values.get("access_key_id"), "sk": values.get("secret_access_key")}
    return {k: v for k, v in pairs.items() if v}


def _package(found: Any, config_path: Path, no_build: bool) -> Any:
    from stopline.deploy import package as packaging
    from stopline.deploy.triggers import DeployFileError

    checkout = config_path.resolve().parent
    try:
        if no_build:
            uris = {spec.code_uri for spec in found.functions}
            if len(uris) != 1 or not next(iter(uris)):
                _die("--no-build needs one code.codeUri shared by the functions deployed (stopline ships one package)")
            return packaging.zip_folder((checkout / next(iter(uris))).resolve())
        with tempfile.TemporaryDirectory(prefix="stopline-fg-") as temp:
            out = Path(temp) / "fg"
            click.echo("building the FunctionGraph package (scripts/package fg)", err=True)
            packaging.build(checkout, out)
            return packaging.zip_folder(out)
    except DeployFileError as exc:
        _die(exc.message)


def _check_rules_shipped(found: Any, package: Any) -> None:
    """A function whose STOPLINE_RULES names a file the package lacks would answer every event with 500."""
    problems = []
    for spec in found.functions:
        rules = spec.environment.get("STOPLINE_RULES")
        if rules and not rules.startswith("/") and rules not in package.files:
            problems.append(f"functions.{spec.key}.environment.variables.STOPLINE_RULES: {rules} is not in the "
                            "package; "
                            "set STOPLINE_RULES to your rules file when deploying, so it is packaged as "
                            f"{rules}, or deploy without this function (--only)")
    if problems:
        _problems(problems, found.path.name)


def _run(api: Any, found: Any, package: Any, plan_only: bool, replace_triggers: bool) -> int:
    from stopline.deploy.fgapi import CloudRefusal
    from stopline.deploy.planner import plan_function

    counts = {"created": 0, "updated": 0, "unchanged": 0}
    for spec in found.functions:
        try:
            planned = plan_function(api, spec, package, replace_triggers=replace_triggers)
        except CloudRefusal as exc:
            return _refused(spec.name, f"functions.{spec.key}", exc, plan_only)
        click.echo(f"{spec.name}  ({planned.urn})")
        kind = "unchanged" if not planned.steps else "updated" if planned.exists else "created"
        counts[kind] += 1
        if not planned.steps:
            click.echo("  = unchanged")
        for step in planned.steps:
            mark = {"create": "+", "create-trigger": "+", "delete-trigger": "-"}.get(step.kind, "~")
            if plan_only:
                click.echo(f"  {mark} {step.text}")
                continue
            started = time.monotonic()
            try:
                step.run()
            except CloudRefusal as exc:
                click.echo(f"  {mark} {step.text}: FAILED")
                return _refused(spec.name, step.key, exc, plan_only)
            click.echo(f"  {mark} {step.text}: done ({time.monotonic() - started:.1f} s)")
    verb = {"created": "to create", "updated": "to update"} if plan_only else {}
    click.echo(f"{len(found.functions)} functions: " + ", ".join(
        f"{n} {verb.get(k, k)}" for k, n in counts.items()) + (" (--plan: nothing was changed)" if plan_only else ""))
    return EXIT_OK


def _refused(name: str, key: str, exc: Any, plan_only: bool) -> int:
    after = ("nothing was changed" if plan_only else
             "what came before it is deployed, and running the command again continues from here")
    click.echo(f"stopline: {name} ({key}): {exc.sentence()}; {after}", err=True)
    return EXIT_FAILED
