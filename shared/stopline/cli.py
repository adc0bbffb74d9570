"""The ``stopline`` command (interface.md section 7). Exit codes: 0 success, 1 failure outcome,
2 usage or configuration error. Every subcommand imports what it needs when it runs, and the
function targets never import this module."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from stopline.errors import ConfigurationError, InvalidCommand, StoplineError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _die(message: str, code: int = EXIT_USAGE) -> NoReturn:
    click.echo(f"stopline: {message}", err=True)
    sys.exit(code)


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
    """One line per build (or DataArts instance) a resolving command touched (interface.md section 10)."""
    if result.resolved is None:
        return []
    kind, entries = result.resolved
    lines = []
    for entry in entries:
        name = f"build {entry['build_no']}" if kind == "builds" else f"instance {entry['instance_id']}"
        if "error" in entry:
            lines.append(f"  {name}: failed (HTTP {entry['status']}): {entry['error']['message']}")
        else:
            rid = entry.get("upstream_request_id")
            lines.append(f"  {name}: {entry['outcome']}" + (f" (request {rid})" if rid else ""))
    return lines


def _run_direct(raw: dict[str, Any], as_json: bool, verbose: bool) -> NoReturn:
    from stopline.models import parse_command
    from stopline.pipeline import Delivery

    try:
        parse_command(raw)
    except InvalidCommand as exc:
        _die(f"invalid arguments: {_fields(exc)}")
    # A person reads the one-line summary; the JSON log lines are for -v or an explicit log level.
    runtime = _configured_runtime(verbose)
    if raw.get("action") == "stop_dataarts_job" and not raw.get("project_id") and not runtime.settings.project_id:
        _die("no DataArts project: give --project-id or set HUAWEICLOUD_SDK_PROJECT_ID")
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


def _fields(exc: InvalidCommand) -> str:
    return "; ".join(f"{d['field'].replace('_', '-')}: {d['message']}" for d in exc.details) or exc.message


def _configured_runtime(verbose: bool) -> Any:
    """The runtime with credentials checked, quiet unless -v; exits 2 on a configuration problem."""
    from stopline import logs
    from stopline.entry import get_runtime

    quiet = not verbose and "STOPLINE_LOG_LEVEL" not in os.environ
    if quiet:
        logs.configure("CRITICAL")
    try:
        runtime = get_runtime()
        if quiet:
            logs.configure("CRITICAL")
        runtime.client()
    except ConfigurationError as exc:
        _die(exc.message)
    return runtime


_json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
_verbose_option = click.option("-v", "--verbose", is_flag=True, help="Also write the JSON log lines to stderr.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="stopline")
def main() -> None:
    """stopline: stop CodeArts Build builds, delete build tasks and stop DataArts Studio jobs."""


@main.command("stop-build")
@click.argument("job_id")
@click.argument("build_no", required=False)
@click.option("--commit", "commit_id", metavar="SHA", help="Only builds of this commit (a sha or a 7+ hex prefix).")
@click.option("--branch", metavar="NAME", help="Only builds of this branch.")
@click.option("--except-commit", "except_commit_id", metavar="SHA", help="Leave the builds of this commit running.")
@_json_option
@_verbose_option
def stop_build(job_id: str, build_no: str | None, commit_id: str | None, branch: str | None,
               except_commit_id: str | None, as_json: bool, verbose: bool) -> None:
    """Stop build BUILD_NO of CodeArts Build task JOB_ID; without BUILD_NO, every running or queued build
    that matches the filters (one line per build)."""
    raw: dict[str, Any] = {"action": "stop_build", "job_id": job_id}
    for name, value in (("build_no", build_no), ("commit_id", commit_id), ("branch", branch),
                        ("except_commit_id", except_commit_id)):
        if value is not None:
            raw[name] = value
    _run_direct(raw, as_json, verbose)


@main.command()
@click.argument("job_id")
@click.option("--commit", "commit_id", metavar="SHA", help="Only builds of this commit.")
@click.option("--branch", metavar="NAME", help="Only builds of this branch.")
@_json_option
@_verbose_option
def running(job_id: str, commit_id: str | None, branch: str | None, as_json: bool, verbose: bool) -> None:
    """List the running and queued builds of CodeArts Build task JOB_ID: number, state, branch, commit."""
    from stopline.client import running_rows
    from stopline.models import StopBuild, parse_command

    raw: dict[str, Any] = {"action": "stop_build", "job_id": job_id}
    raw.update({k: v for k, v in (("commit_id", commit_id), ("branch", branch)) if v is not None})
    try:
        command = parse_command(raw)
    except InvalidCommand as exc:
        _die(f"invalid arguments: {_fields(exc)}")
    assert isinstance(command, StopBuild)
    runtime = _configured_runtime(verbose)
    try:
        records = runtime.client().running(command)
    except StoplineError as exc:
        click.echo(f"{exc.type} (HTTP {exc.status}): {exc.message}", err=True)
        sys.exit(EXIT_USAGE if exc.type == ConfigurationError.type else EXIT_FAILED)
    rows = running_rows(records)
    if as_json:
        click.echo(json.dumps({"job_id": job_id, "builds": rows}, indent=2))
        sys.exit(EXIT_OK)
    if not rows:
        click.echo(f"nothing running: no running or queued build of {job_id} in the last 24 hours")
        sys.exit(EXIT_OK)
    click.echo(f"{'BUILD':>7}  {'STATE':<10} {'BRANCH':<24} COMMIT")
    for row in rows:
        click.echo(f"{row['build_no']:>7}  {row['state']:<10} {row['branch'] or '-':<24} {row['commit_id'] or '-'}")
    sys.exit(EXIT_OK)


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


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8790, show_default=True, type=int, help="Port (0 = any free port).")
@click.option("--seed", type=click.Choice(["demo"]), help="Start with the demo state.")
def emulator(host: str, port: int, seed: str | None) -> None:
    """Serve the Huawei Cloud emulator (IAM, CodeArts Build, DataArts Studio) on one port."""
    import signal

    from stopline.emulator import Emulator
    from stopline.emulator.seeds import demo_environment

    emu = Emulator()
    if seed:
        emu.seed(seed)
    try:
        server = emu.serve(host, port)
    except OSError as exc:
        _die(f"cannot listen on {host}:{port}: {exc.strerror or exc} (is another process using the port? "
             "choose one with --port)")
    click.echo(f"stopline emulator listening on {server.url} (control API: {server.url}/_emulator/)")
    if seed == "demo":
        click.echo("demo state loaded; point stopline at it with:")
        for name, value in demo_environment(server.url).items():
            click.echo(f"  export {name}={value}")
    sys.stdout.flush()
    stopping = {"now": False}

    def stop(*_: Any) -> None:
        stopping["now"] = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        while not stopping["now"]:
            signal.pause() if hasattr(signal, "pause") else __import__("time").sleep(0.5)
    finally:
        server.stop()
        click.echo("emulator stopped")


_SEND_FIELDS = {
    "stop_build": "--job-id ID [--build-no N | --commit-id SHA --branch NAME --except-commit-id SHA]",
    "delete_build_task": "--job-id ID",
    "stop_dataarts_job": "--job-name NAME [--project-id P] [--workspace W] [--scope job|instances|both]",
}
_SEND_EPILOG = "\b\nFields, as --field value (or --field=value), per ACTION:\n" + "\n".join(
    f"  {action:<18} {fields}" for action, fields in _SEND_FIELDS.items()) + \
    "\n  any command        [--idempotency-key KEY]\n\n" \
    "\b\nPipeline sources: --github EVENT / --gitlab EVENT with --file PAYLOAD send a payload as GitHub\n" \
    "(signed with STOPLINE_GITHUB_SECRET) or GitLab (token STOPLINE_GITLAB_TOKEN) would."


def _first(*names: str) -> str | None:
    """The first set variable's value; for a comma-separated list, its first entry (the current secret)."""
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return value.split(",")[0].strip()
    return None


def _read_json_file(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        _die(f"cannot read {what} {path}: {exc.__class__.__name__}")
    except ValueError as exc:
        _die(f"{what} {path} is not valid JSON ({str(exc).splitlines()[0]}); fix the file and retry")


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True}, epilog=_SEND_EPILOG)
@click.argument("action", required=False)
@click.option("--url", envvar="STOPLINE_URL", required=True, help="The target's URL [env STOPLINE_URL].")
@click.option("--secret", help="Signing secret [env STOPLINE_WEBHOOK_SECRET or the first of "
              "STOPLINE_WEBHOOK_SECRETS; with --github STOPLINE_GITHUB_SECRET(S); with --gitlab "
              "STOPLINE_GITLAB_TOKEN(S)].")
@click.option("--id", "msg_id", help="Delivery id to send (default: a new random id).")
@click.option("--batch", "batch_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Send the commands in this JSON file (a list, or {\"commands\": [...]}) as one batch.")
@click.option("--github", "github_event", metavar="EVENT", help="Send --file as a GitHub webhook of this event.")
@click.option("--gitlab", "gitlab_event", metavar="EVENT", help="Send --file as a GitLab webhook of this event "
              "(\"Pipeline Hook\", \"Job Hook\").")
@click.option("--file", "payload_file", type=click.Path(dir_okay=False, path_type=Path),
              help="The payload for --github / --gitlab.")
@_json_option
@click.pass_context
def send(ctx: click.Context, action: str | None, url: str, secret: str | None, msg_id: str | None,
         batch_file: Path | None, github_event: str | None, gitlab_event: str | None, payload_file: Path | None,
         as_json: bool) -> None:
    """Sign (Standard Webhooks) and send one command: stopline send stop_build --job-id ID --build-no 20."""
    from stopline.sender import describe_reply, post, send_signed, source_headers

    if github_event or gitlab_event:
        source, event = ("github", github_event) if github_event else ("gitlab", gitlab_event)
        if payload_file is None:
            _die(f"--{source} needs --file PAYLOAD (for example events/{source}-...json)")
        _read_json_file(payload_file, "payload file")
        content = payload_file.read_bytes()
        secret = secret or (_first("STOPLINE_GITHUB_SECRET", "STOPLINE_GITHUB_SECRETS") if source == "github"
                            else _first("STOPLINE_GITLAB_TOKEN", "STOPLINE_GITLAB_TOKENS"))
        status, reply = post(url, content, source_headers(source, str(event), content, secret=secret,
                                                          msg_id=msg_id))
    else:
        secret = secret or _first("STOPLINE_WEBHOOK_SECRET", "STOPLINE_WEBHOOK_SECRETS")
        if batch_file is not None:
            loaded = _read_json_file(batch_file, "batch file")
            if not isinstance(loaded, list | dict):
                _die(f"batch file {batch_file} must hold a list of commands or {{\"commands\": [...]}}")
            body: dict[str, Any] = loaded if isinstance(loaded, dict) else {"commands": loaded}
        elif action is None:
            _die("give an ACTION (stop_build, delete_build_task, stop_dataarts_job) or --batch FILE; "
                 "see stopline send --help")
        else:
            body = _command_from_words(action, ctx.args)
        try:
            status, reply = send_signed(url, body, secret=secret, msg_id=msg_id)
        except ValueError as exc:
            _die(f"the signing secret is not usable: {exc}; pass the secret the target was started with "
                 "(--secret or STOPLINE_WEBHOOK_SECRET)")
    if status == 0:
        _die(f"{reply['error']['message']}; is the target running, and is the port right?", EXIT_FAILED)
    if as_json:
        click.echo(json.dumps(reply, indent=2))
    elif reply.get("error", {}).get("type") == "not_json":
        _die(f"HTTP {status} from {url} is not a stopline answer (not JSON); check the URL and port",
             EXIT_FAILED)
    else:
        click.echo(describe_reply(status, reply))
        if status == 401:
            click.echo("hint: the target refused the signature; send the secret it was started with "
                       "(stopline dev prints a new one each time it starts)", err=True)
    sys.exit(EXIT_OK if 200 <= status < 300 and reply.get("ok") else EXIT_FAILED)


def _command_from_words(action: str, words: list[str]) -> dict[str, Any]:
    """The command from ``--field value`` words, checked here so a typo is named before anything is sent."""
    from stopline.models import COMMAND_TYPES, parse_command
    from stopline.sender import build_command

    if action not in COMMAND_TYPES:
        _die(f"unknown action {action!r}; use one of {', '.join(COMMAND_TYPES)}")
    try:
        body = build_command(action, words)
    except ValueError as exc:
        _die(f"{exc}; fields are {_SEND_FIELDS[action]}")
    known = set(COMMAND_TYPES[action].model_fields)
    unknown = [k for k in body if k not in known]
    if unknown:
        _die(f"unknown option --{unknown[0].replace('_', '-')} for {action}; its fields are {_SEND_FIELDS[action]}")
    try:
        parse_command(body)
    except InvalidCommand as exc:
        _die(f"invalid {action} command: {_fields(exc)}")
    return body


@main.group()
def rules() -> None:
    """Check a rules file, or see what it does with an event (interface.md section 11.2)."""


@rules.command("check")
@click.argument("file", required=False)
def rules_check(file: str | None) -> None:
    """Validate FILE (default: STOPLINE_RULES) and print each rule."""
    from stopline.rules import load

    path = file or os.environ.get("STOPLINE_RULES")
    if not path:
        _die("give a rules FILE or set STOPLINE_RULES")
    try:
        loaded = load(path, variable="" if file else "STOPLINE_RULES")
    except ConfigurationError as exc:
        _die(exc.message)
    click.echo(f"{path}: {len(loaded.rules)} rule{'s' if len(loaded.rules) != 1 else ''}, valid")
    for i, rule in enumerate(loaded.rules):
        when = rule.when.model_dump(exclude_none=True, exclude_defaults=False)
        if not when.get("branch_not"):
            when.pop("branch_not", None)
        click.echo(f"  [{i}] {rule.name}: when {json.dumps(when)} -> {len(rule.then)} command"
                   f"{'s' if len(rule.then) != 1 else ''}")
        for command in rule.then:
            click.echo(f"        {json.dumps(command)}")
    sys.exit(EXIT_OK)


@rules.command("explain")
@click.option("--source", type=click.Choice(["github", "gitlab"]), required=True)
@click.option("--event", "event_file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The webhook payload.")
@click.option("--event-type", help="X-GitHub-Event / X-Gitlab-Event (default: guessed from the payload).")
@click.option("--rules", "rules_file", help="Rules file (default: STOPLINE_RULES).")
def rules_explain(source: str, event_file: Path, event_type: str | None, rules_file: str | None) -> None:
    """Print the normalised event, the rules that match and the commands they produce; calls nothing."""
    from stopline.rules import load
    from stopline.sources import Ignored, normalise

    path = rules_file or os.environ.get("STOPLINE_RULES")
    if not path:
        _die("give --rules FILE or set STOPLINE_RULES")
    try:
        loaded = load(path, variable="" if rules_file else "STOPLINE_RULES")
    except ConfigurationError as exc:
        _die(exc.message)
    data = _read_json_file(event_file, "event file")
    if not isinstance(data, dict):
        _die(f"event file {event_file} must hold a JSON object")
    kind = event_type or _guess_event_type(source, data)
    try:
        event = normalise("github" if source == "github" else "gitlab", kind, data)
        if isinstance(event, Ignored):
            click.echo(json.dumps({"event_type": kind, "ignored": event.reason, "matched": [], "commands": []},
                                  indent=2))
            sys.exit(EXIT_OK)
        matched = loaded.matching(event)
        fired = loaded.fire(event, matched)
    except InvalidCommand as exc:
        _die(f"the event cannot be used: {exc.message}", EXIT_FAILED)
    click.echo(json.dumps({"event_type": kind, "event": event.fields(), "matched": [r.name for r in matched],
                           "commands": [{"rule": f.rule, "index": f.index, "command": f.command} for f in fired]},
                          indent=2))
    sys.exit(EXIT_OK)


def _guess_event_type(source: str, data: dict[str, Any]) -> str:
    if source == "gitlab":
        return {"pipeline": "Pipeline Hook", "build": "Job Hook"}.get(str(data.get("object_kind")), "")
    for name in ("workflow_run", "workflow_job"):
        if name in data:
            return name
    return "ping" if "zen" in data else ""


@main.group()
def secret() -> None:
    """Webhook secrets."""


@secret.command("new")
def secret_new() -> None:
    """Print a new Standard Webhooks secret (whsec_ + 32 random bytes, base64): put the same value in the
    sender and in STOPLINE_WEBHOOK_SECRETS (or STOPLINE_GITLAB_SIGNING_SECRETS)."""
    import base64
    import secrets

    click.echo("whsec_" + base64.b64encode(secrets.token_bytes(32)).decode())


@main.command()
@click.argument("target", type=click.Choice(
    ["stop_build", "delete_build_task", "stop_dataarts_job", "webhook", "on_event", "functiongraph"]))
@click.option("--event", "event_file", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The event file: an HTTP body, a CloudEvent, a Pub/Sub envelope or a FunctionGraph event.")
@click.option("--emulate", is_flag=True,
              help="Run against a private in-process emulator with the demo state (not a running `stopline "
                   "dev`: to use that one, drop --emulate and set the endpoints its banner prints).")
def invoke(target: str, event_file: Path, emulate: bool) -> None:
    """Run one function target in-process on an event file and print its answer."""
    from stopline.invoker import invoke_file

    if emulate:
        click.echo("--emulate: using a private in-process emulator with the demo state; a running `stopline "
                   "dev` (and its call log) is not involved", err=True)

    try:
        code, output = invoke_file(target, event_file, emulate=emulate)
    except (ValueError, OSError) as exc:
        _die(str(exc))
    except StoplineError as exc:
        _die(exc.message, EXIT_USAGE if isinstance(exc, ConfigurationError) else EXIT_FAILED)
    click.echo(json.dumps(output, indent=2))
    sys.exit(code)


@main.command()
@click.option("--emulator-port", default=8790, show_default=True, type=int)
@click.option("--port", "base_port", default=8080, show_default=True, type=int,
              help="First port of the function targets (webhook); the others follow.")
@click.option("--asgi/--flask", default=True, show_default=True,
              help="functions-framework's ASGI mode (default: it holds up under slow senders, Flask mode "
                   "does not; tests/functions/test_slow_senders.py) or its Flask mode.")
def dev(emulator_port: int, base_port: int, asgi: bool) -> None:
    """Run the local stack: emulator + every function target on 127.0.0.1, demo state seeded."""
    from stopline.devstack import run_dev

    sys.exit(run_dev(emulator_port=emulator_port, base_port=base_port, asgi=asgi))


if __name__ == "__main__":
    main()
