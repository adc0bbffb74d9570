"""``stopline retries``: what is pending, and running what is due (docs/operations.md)."""

from __future__ import annotations

import json
import sys

import click

from stopline.cli import EXIT_FAILED, EXIT_OK, _configured_runtime, _die, _json_option, _verbose_option, main
from stopline.errors import StoplineError


@main.group(short_help="List or run the pending retries of senders that never redeliver.")
def retries() -> None:
    """Pending retries: commands whose sender never redelivers, kept until they succeed or are abandoned."""


def _warn_if_private(store_url: str) -> None:
    """A ``memory://`` store is this process's own: the pending retries of the functions are not in it, so
    "nothing pending" would mislead. Said on stderr (``--json`` output stays parseable)."""
    if store_url.startswith("memory://"):
        click.echo("stopline: STOPLINE_IDEMPOTENCY_URL is memory://, which only the process holding it sees; "
                   "set it to the Redis URL your functions use to see their pending retries", err=True)


@retries.command("list")
@_json_option
@_verbose_option
def retries_list(as_json: bool, verbose: bool) -> None:
    """What is pending, when it is due, and why (the last error). Reads the store only: no credentials."""
    runtime = _configured_runtime(verbose, cloud=False)
    _warn_if_private(runtime.settings.idempotency_url)
    try:
        pending = runtime.pipeline.retries.pending()
    except StoplineError as exc:
        _die(exc.message, EXIT_FAILED)
    if as_json:
        click.echo(json.dumps({"pending": pending}, indent=2))
        sys.exit(EXIT_OK)
    if not pending:
        click.echo("nothing pending")
        sys.exit(EXIT_OK)
    for item in pending:
        command = item.get("command") or {}
        what = command.get("action") or f"audit event {(item.get('event') or {}).get('type')}"
        error = (item.get("last_error") or {}).get("message", "")
        click.echo(f"{item['retry_at']}  {what}  retries {item.get('retries', 0)}  "
                   f"event {item.get('event_id')}: {error}")
    sys.exit(EXIT_OK)


@retries.command("run")
@click.option("--all", "everything", is_flag=True, help="Run every pending retry now, due or not.")
@_json_option
@_verbose_option
def retries_run(everything: bool, as_json: bool, verbose: bool) -> None:
    """Run the pending retries that are due now (or --all); one line per command run."""
    runtime = _configured_runtime(verbose)
    _warn_if_private(runtime.settings.idempotency_url)
    pipeline = runtime.pipeline
    try:
        ran = pipeline.retries.run_due(pipeline, everything=everything, limit=1000)
        left = len(pipeline.retries.pending())
    except StoplineError as exc:
        _die(exc.message, EXIT_FAILED)
    if as_json:
        click.echo(json.dumps({"ran": [r.to_json(with_status=True) for r in ran], "pending": left}, indent=2))
    else:
        for result in ran:
            state = str(result.outcome) if result.error is None or result.pending else f"failed: {result.error.message}"
            click.echo(f"{result.action} {' '.join(f'{k}={v}' for k, v in result.target.items())}: {state}")
        click.echo(f"ran {len(ran)}; {left} pending")
    sys.exit(EXIT_OK if all(r.ok or r.pending for r in ran) else EXIT_FAILED)
