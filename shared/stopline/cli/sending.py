"""``stopline send``: sign and send a command, a batch or a GitHub/GitLab payload to a running target."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from stopline.cli import (
    EXIT_FAILED,
    EXIT_OK,
    _die,
    _fields,
    _first,
    _json_option,
    _read_json_file,
    main,
)
from stopline.errors import InvalidCommand

GITHUB_EVENTS = ("workflow_run", "workflow_job", "ping")
GITLAB_EVENTS = ("Pipeline Hook", "Job Hook")
_SEND_FIELDS = {
    "stop_build": "--job-id ID [--build-no N | --commit-id SHA --branch NAME --except-commit-id SHA "
                  "--started-before TIME]",
    "delete_build_task": "--job-id ID",
    "stop_dataarts_job": "--job-name NAME [--project-id P] [--workspace W] [--scope job|instances|both]",
    "stop_pipeline_run": "--pipeline-id ID [--pipeline-run-id ID | --commit-id SHA --branch NAME "
                         "--except-commit-id SHA --started-before TIME] [--codearts-project-id ID]",
}
_SEND_EPILOG = "\b\nFields, as --field value (or --field=value), per ACTION:\n" + "\n".join(
    f"  {action:<18} {fields}" for action, fields in _SEND_FIELDS.items()) + \
    "\n  any command        [--idempotency-key KEY] [--reason TEXT] [--verify true|false]\n\n" \
    "\b\nPipeline sources: --github EVENT / --gitlab EVENT with --file PAYLOAD send a payload as GitHub\n" \
    "(signed with STOPLINE_GITHUB_SECRET) or GitLab (token STOPLINE_GITLAB_TOKEN) would.\n\n" \
    "\b\nA cron taking the pending retries: stopline send --retries --url https://.../retries"


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True}, epilog=_SEND_EPILOG,
              short_help="Sign and send a command, a batch or a GitHub/GitLab payload to a running target.")
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
@click.option("--retries", "sweep", flag_value="due", help="Ask a retries target to run the pending retries that "
              "are due (a cron's call; signed like a command).")
@click.option("--retries-all", "sweep", flag_value="all", help="The same for every pending retry, due or not.")
@_json_option
@click.pass_context
def send(ctx: click.Context, action: str | None, url: str, secret: str | None, msg_id: str | None,
         batch_file: Path | None, github_event: str | None, gitlab_event: str | None, payload_file: Path | None,
         sweep: str | None, as_json: bool) -> None:
    """Sign (Standard Webhooks) and send one command: stopline send stop_build --job-id ID --build-no 20."""
    from stopline.cli.sender import describe_reply, post, send_signed, source_headers

    if github_event or gitlab_event:
        if action is not None or batch_file is not None or sweep is not None or (github_event and gitlab_event):
            _die("--github / --gitlab send one payload file as that sender would: give no ACTION, --batch or "
                 "--retries, and only one of them")
        source, event = ("github", github_event) if github_event else ("gitlab", gitlab_event)
        known = GITHUB_EVENTS if source == "github" else GITLAB_EVENTS
        if event not in known:
            import difflib

            near = difflib.get_close_matches(str(event), known, n=1)
            _die(f"unknown {source} event {event!r}" + (f"; did you mean {near[0]!r}?" if near else "")
                 + f" (stopline acts on {', '.join(known)})")
        if payload_file is None:
            _die(f"--{source} needs --file PAYLOAD (for example events/{source}-...json)")
        _read_json_file(payload_file, "payload file")
        content = payload_file.read_bytes()
        secret = secret or (_first("STOPLINE_GITHUB_SECRET", "STOPLINE_GITHUB_SECRETS") if source == "github"
                            else _first("STOPLINE_GITLAB_TOKEN", "STOPLINE_GITLAB_TOKENS"))
        if not secret:
            names = ("STOPLINE_GITHUB_SECRET" if source == "github" else "STOPLINE_GITLAB_TOKEN")
            _die(f"no {source} secret to send with: pass --secret or set {names} (the `{source} secret` line "
                 "of `stopline dev`'s banner)")
        status, reply = post(url, content, source_headers(source, str(event), content, secret=secret,
                                                          msg_id=msg_id))
    else:
        secret = secret or _first("STOPLINE_WEBHOOK_SECRET", "STOPLINE_WEBHOOK_SECRETS")
        if not secret:
            _die("no signing secret to send with: pass --secret or set STOPLINE_WEBHOOK_SECRET (the `webhook "
                 "secret` line of `stopline dev`'s banner; for a GitHub or GitLab target use --github / --gitlab)")
        body = _signed_body(action, ctx.args, batch_file, sweep)
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


def _signed_body(action: str | None, words: list[str], batch_file: Path | None, sweep: str | None) -> dict[str, Any]:
    """What a Standard Webhooks send carries: a retries call, a batch from a file, or one command."""
    if sweep is not None:
        if action is not None or batch_file is not None:
            _die("--retries asks a retries target to run what is pending: give no ACTION and no --batch")
        return {"all": True} if sweep == "all" else {}
    if batch_file is not None:
        loaded = _read_json_file(batch_file, "batch file")
        if not isinstance(loaded, list | dict):
            _die(f"batch file {batch_file} must hold a list of commands or {{\"commands\": [...]}}")
        return loaded if isinstance(loaded, dict) else {"commands": loaded}
    if action is None:
        _die("give an ACTION (stop_build, delete_build_task, stop_dataarts_job, stop_pipeline_run), --batch FILE "
             "or --retries; see stopline send --help")
    return _command_from_words(action, words)


def _command_from_words(action: str, words: list[str]) -> dict[str, Any]:
    """The command from ``--field value`` words, checked here so a typo is named before anything is sent."""
    from stopline.cli.sender import build_command
    from stopline.models import COMMAND_TYPES, parse_command

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
