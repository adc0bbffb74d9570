"""The commands that call the cloud directly, with the configured credentials."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from stopline.cli import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    _configured_runtime,
    _die,
    _fields,
    _json_option,
    _verbose_option,
    main,
)
from stopline.errors import ConfigurationError, InvalidCommand, StoplineError


def _summary(result: Any) -> str:
    target = " ".join(f"{k}={v}" for k, v in result.target.items())
    if result.error is None:
        extra = [f"api {result.api}" if result.api else "",
                 f"{result.attempts} attempt{'s' if result.attempts != 1 else ''}" if result.attempts else "",
                 f"request {result.upstream_request_id}" if result.upstream_request_id else ""]
        listed = ", ".join(e for e in extra if e)
        return f"{result.outcome}: {result.action} {target}" + (f" ({listed})" if listed else "")
    err = result.error
    upstream = ""
    if err.upstream is not None:
        upstream = f" [upstream HTTP {err.upstream.status} {err.upstream.error_code or ''}".rstrip() + "]"
    return f"{err.type} (HTTP {err.status}): {err.message}{upstream}"


def _member_lines(result: Any) -> list[str]:
    """One line per build (or DataArts instance) a resolving command touched (docs/commands.md)."""
    if result.resolved is None:
        return []
    kind, entries = result.resolved
    lines = []
    for entry in entries:
        name = (f"build {entry['build_no']}" if kind == "builds" else f"run {entry['pipeline_run_id']}"
                if kind == "runs" else f"instance {entry['instance_id']}")
        if "error" in entry:
            lines.append(f"  {name}: failed (HTTP {entry['status']}): {entry['error']['message']}")
        else:
            rid = entry.get("upstream_request_id")
            lines.append(f"  {name}: {entry['outcome']}" + (f" (request {rid})" if rid else ""))
    return lines


def _confirm_everything(raw: dict[str, Any], number: str) -> None:
    """A person at a terminal who gave no number and no filter is asked before every running build (run)
    is stopped: a forgotten BUILD_NO must not stop a whole task. Scripts (no terminal) and --yes are not
    asked: the documented form stays usable unattended."""
    from stopline.models import names_nothing

    if not names_nothing(raw, number) or not sys.stdin.isatty():
        return
    what = (f"build of task {raw['job_id']}" if raw["action"] == "stop_build"
            else f"run of pipeline {raw['pipeline_id']}")
    if not click.confirm(f"No number and no filter given: stop every running {what}?", err=True):
        _die("nothing stopped (give a number or a filter, or --yes)", EXIT_FAILED)


def _run_direct(raw: dict[str, Any], as_json: bool, verbose: bool, *, ask_without: str | None = None) -> NoReturn:
    """Validate the command, ask first when it would stop everything that runs (``ask_without``: the
    number it may leave out; None: never ask), run it, print the answer and exit with its code."""
    from stopline.models import parse_command
    from stopline.pipeline import Delivery

    try:
        parse_command(raw)
    except InvalidCommand as exc:
        _die(f"invalid arguments: {_fields(exc)}")
    if ask_without is not None:
        _confirm_everything(raw, ask_without)
    # A person reads the one-line summary; the JSON log lines are for -v or an explicit log level.
    runtime = _configured_runtime(verbose)
    if raw.get("action") == "stop_dataarts_job" and not raw.get("project_id") and not runtime.settings.project_id:
        _die("no DataArts project: give --project-id or set HUAWEICLOUD_SDK_PROJECT_ID")
    if raw.get("action") == "stop_pipeline_run" and not raw.get("codearts_project_id") \
            and not runtime.settings.codearts_project_id:
        _die("no CodeArts project: give --codearts-project-id or set STOPLINE_CODEARTS_PROJECT_ID (the CodeArts "
             "project's id, not the IAM project)")
    result = runtime.pipeline.handle(raw, Delivery(None, "cli"))
    if as_json:
        click.echo(json.dumps(result.to_json(with_status=True), indent=2))
    else:
        click.echo(_summary(result))  # the message already quotes the cloud's code, message and request id
        for line in _member_lines(result):
            click.echo(line)
    if result.error is not None and result.error.type == ConfigurationError.type:
        sys.exit(EXIT_USAGE)
    sys.exit(EXIT_OK if result.ok else EXIT_FAILED)


_F = TypeVar("_F", bound=Callable[..., Any])


def _commit_option(what: str) -> Callable[[_F], _F]:
    # --commit is the documented spelling; --commit-id, the field's name, is kept as an alias
    return click.option("--commit", "--commit-id", "commit_id", metavar="SHA",
                        help=f"Only {what} of this commit (a sha or a 7+ hex prefix).")


def _filter_options(what: str) -> Callable[[_F], _F]:
    """The resolution filters of a stop without a number (commit, branch, except-commit, started-before),
    and --yes for a stop of everything that runs."""
    def add(command: _F) -> _F:
        for option in reversed([
                _commit_option(what),
                click.option("--branch", metavar="NAME", help=f"Only {what} of this branch."),
                click.option("--except-commit", "--except-commit-id", "except_commit_id", metavar="SHA",
                             help=f"Leave the {what} of this commit running."),
                click.option("--started-before", metavar="TIME", help=f"Only {what} started before this RFC 3339 "
                             "time (e.g. 2026-12-07T10:00:00Z)."),
                click.option("--yes", "-y", is_flag=True, help=f"With no number and no filter, stop all running "
                             f"{what} without asking (a terminal is asked; a script never is).")]):
            command = option(command)
        return command
    return add


@main.command("stop-build", short_help="Stop a CodeArts Build build, or the running builds of a commit or branch.")
@click.argument("job_id")
@click.argument("build_no", required=False)
@_filter_options("builds")
@_json_option
@_verbose_option
def stop_build(job_id: str, build_no: str | None, commit_id: str | None, branch: str | None,
               except_commit_id: str | None, started_before: str | None, yes: bool, as_json: bool,
               verbose: bool) -> None:
    """Stop build BUILD_NO of CodeArts Build task JOB_ID; without BUILD_NO, every running or queued build
    that matches the filters (one line per build)."""
    raw: dict[str, Any] = {"action": "stop_build", "job_id": job_id}
    for name, value in (("build_no", build_no), ("commit_id", commit_id), ("branch", branch),
                        ("except_commit_id", except_commit_id), ("started_before", started_before)):
        if value is not None:
            raw[name] = value
    _run_direct(raw, as_json, verbose, ask_without=None if yes else "build_no")


@main.command(short_help="List what runs: the builds of a task, or the runs of a pipeline.")
@click.argument("job_id", required=False)
@click.option("--pipeline", "pipeline_id", metavar="PIPELINE_ID", help="List the running runs of this CodeArts "
              "Pipeline instead of a task's builds.")
@click.option("--codearts-project-id", metavar="ID", help="The pipeline's CodeArts project (default: "
              "STOPLINE_CODEARTS_PROJECT_ID).")
@_commit_option("builds (runs)")
@click.option("--branch", metavar="NAME", help="Only builds (runs) of this branch.")
@_json_option
@_verbose_option
def running(job_id: str | None, pipeline_id: str | None, codearts_project_id: str | None, commit_id: str | None,
            branch: str | None, as_json: bool, verbose: bool) -> None:
    """List the running and queued builds of CodeArts Build task JOB_ID (number, state, branch, commit), or
    with --pipeline the running runs of a CodeArts Pipeline."""
    from stopline.models import StopBuild, StopPipelineRun, parse_command

    if (job_id is None) == (pipeline_id is None):
        _die("give a build task JOB_ID, or --pipeline PIPELINE_ID (one of them)")
    raw: dict[str, Any] = ({"action": "stop_build", "job_id": job_id} if job_id is not None else
                           {"action": "stop_pipeline_run", "pipeline_id": pipeline_id,
                            "codearts_project_id": codearts_project_id})
    raw.update({k: v for k, v in (("commit_id", commit_id), ("branch", branch)) if v is not None})
    try:
        command = parse_command({k: v for k, v in raw.items() if v is not None})
    except InvalidCommand as exc:
        _die(f"invalid arguments: {_fields(exc)}")
    assert isinstance(command, StopBuild | StopPipelineRun)
    runtime = _configured_runtime(verbose)
    try:
        found = runtime.client().running(command)
    except StoplineError as exc:
        click.echo(f"{exc.type} (HTTP {exc.status}): {exc.message}", err=True)
        sys.exit(EXIT_USAGE if exc.type in (ConfigurationError.type, InvalidCommand.type) else EXIT_FAILED)
    if isinstance(command, StopPipelineRun):
        _print_runs(command.pipeline_id, found, as_json)
    else:
        _print_builds(command.job_id, found, as_json)
    sys.exit(EXIT_OK)


def _print_builds(job_id: str, records: list[dict[str, Any]], as_json: bool) -> None:
    from stopline.resolution import running_rows

    _print_running({"job_id": job_id}, "builds", running_rows(records), as_json,
                   f"no running or queued build of {job_id} in the last 24 hours",
                   (("BUILD", "build_no", ">7"), ("STATE", "state", "<10"), ("BRANCH", "branch", "<24"),
                    ("COMMIT", "commit_id", "")))


def _print_runs(pipeline_id: str, runs: list[dict[str, Any]], as_json: bool) -> None:
    from stopline.codearts_pipeline import running_rows

    _print_running({"pipeline_id": pipeline_id}, "runs", running_rows(runs), as_json,
                   f"no running run of pipeline {pipeline_id}",
                   (("RUN", "pipeline_run_id", "<32"), ("NO.", "run_number", ">4"), ("STATE", "state", "<8"),
                    ("BRANCH", "branch", "<24"), ("COMMIT", "commit_id", "")))


def _print_running(owner: dict[str, str], name: str, rows: list[dict[str, Any]], as_json: bool, empty: str,
                   columns: tuple[tuple[str, str, str], ...]) -> None:
    """What runs, as JSON or as a table of ``columns`` (header, row key, format spec); '-' for no value."""
    if as_json:
        click.echo(json.dumps({**owner, name: rows}, indent=2))
    elif not rows:
        click.echo(f"nothing running: {empty}")
    else:
        click.echo("  ".join(f"{header:{spec}}" for header, _, spec in columns).rstrip())
        for row in rows:
            click.echo("  ".join(f"{row[key] if row[key] not in (None, '') else '-':{spec}}"
                                 for _, key, spec in columns).rstrip())


@main.command("stop-pipeline", short_help="Stop a CodeArts Pipeline run, or its running runs.")
@click.argument("pipeline_id")
@click.argument("run_id", required=False)
@click.option("--codearts-project-id", metavar="ID", help="The pipeline's CodeArts project (default: "
              "STOPLINE_CODEARTS_PROJECT_ID; not the IAM project).")
@_filter_options("runs")
@_json_option
@_verbose_option
def stop_pipeline(pipeline_id: str, run_id: str | None, codearts_project_id: str | None, commit_id: str | None,
                  branch: str | None, except_commit_id: str | None, started_before: str | None, yes: bool,
                  as_json: bool, verbose: bool) -> None:
    """Stop run RUN_ID of CodeArts Pipeline PIPELINE_ID; without RUN_ID, every running run that matches the
    filters (one line per run)."""
    raw: dict[str, Any] = {"action": "stop_pipeline_run", "pipeline_id": pipeline_id}
    for name, value in (("pipeline_run_id", run_id), ("codearts_project_id", codearts_project_id),
                        ("commit_id", commit_id), ("branch", branch), ("except_commit_id", except_commit_id),
                        ("started_before", started_before)):
        if value is not None:
            raw[name] = value
    _run_direct(raw, as_json, verbose, ask_without=None if yes else "pipeline_run_id")


@main.command("delete-build-task")
@click.argument("job_id")
@_json_option
@_verbose_option
def delete_build_task(job_id: str, as_json: bool, verbose: bool) -> None:
    """Delete CodeArts Build task JOB_ID."""
    _run_direct({"action": "delete_build_task", "job_id": job_id}, as_json, verbose)


@main.command("stop-job")
@click.argument("job_name")
@click.option("--project-id", help="DataArts project (default: HUAWEICLOUD_SDK_PROJECT_ID).")
@click.option("--workspace", help="DataArts workspace id (default: the default workspace).")
@click.option("--scope", type=click.Choice(["job", "instances", "both"]), default="job", show_default=True,
              help="job: stop the job (its schedule); instances: stop its running instances only; both.")
@_json_option
@_verbose_option
def stop_job(job_name: str, project_id: str | None, workspace: str | None, scope: str, as_json: bool,
             verbose: bool) -> None:
    """Stop DataArts Studio job JOB_NAME (or, with --scope, its running instances)."""
    raw: dict[str, Any] = {"action": "stop_dataarts_job", "job_name": job_name}
    if project_id:
        raw["project_id"] = project_id
    if workspace:
        raw["workspace"] = workspace
    if scope != "job":
        raw["scope"] = scope
    _run_direct(raw, as_json, verbose)
