"""Local tools: the emulator, the dev stack, running a target in-process, new secrets."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from stopline.cli import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    _die,
    main,
)
from stopline.errors import ConfigurationError, StoplineError


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8790, show_default=True, type=int, help="Port (0 = any free port).")
@click.option("--seed", type=click.Choice(["demo"]), help="Start with the demo state.")
def emulator(host: str, port: int, seed: str | None) -> None:
    """Serve the Huawei Cloud emulator (every API stopline calls) on one port."""
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


@main.group()
def secret() -> None:
    """Webhook secrets."""


@secret.command("new", short_help="Print a new Standard Webhooks secret (whsec_ + 32 random bytes).")
def secret_new() -> None:
    """Print a new Standard Webhooks secret (whsec_ + 32 random bytes, base64): put the same value in the
    sender and in STOPLINE_WEBHOOK_SECRETS (or STOPLINE_GITLAB_SIGNING_SECRETS)."""
    import base64
    import secrets

    click.echo("whsec_" + base64.b64encode(secrets.token_bytes(32)).decode())


@main.command()
@click.argument("target", type=click.Choice(
    ["stop_build", "delete_build_task", "stop_dataarts_job", "stop_pipeline_run", "webhook", "github", "gitlab",
     "retries", "on_event", "functiongraph"]))
@click.option("--event", "event_file", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The event file: an HTTP body (a GitHub or GitLab payload for those targets), a CloudEvent, a "
                   "Pub/Sub envelope or a FunctionGraph event.")
@click.option("--event-type", help="github/gitlab: X-GitHub-Event / X-Gitlab-Event (default: read from the payload).")
@click.option("--emulate", is_flag=True,
              help="Run against a private in-process emulator with the demo state (not a running `stopline "
                   "dev`: to use that one, drop --emulate and set the endpoints its banner prints).")
def invoke(target: str, event_file: Path, event_type: str | None, emulate: bool) -> None:
    """Run one function target in-process on an event file and print its answer."""
    from stopline.cli.invoker import SOURCE_TARGETS, invoke_file

    if event_type and target not in SOURCE_TARGETS:
        _die(f"--event-type is for the github and gitlab targets, not {target}")

    if emulate:
        click.echo("--emulate: using a private in-process emulator with the demo state; a running `stopline "
                   "dev` (and its call log) is not involved", err=True)

    try:
        code, output = invoke_file(target, event_file, emulate=emulate, event_type=event_type)
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
@click.option("--rules", "rules_file", metavar="FILE", help="Your rules file instead of the demo's "
              "[default: STOPLINE_RULES when set]; your secrets are taken from the environment too.")
@click.option("--reset", is_flag=True, help="Reseed the demo state of the stopline dev already running (on "
              "--emulator-port), and exit.")
def dev(emulator_port: int, base_port: int, asgi: bool, rules_file: str | None, reset: bool) -> None:
    """Run the local stack: emulator + every function target on 127.0.0.1, demo state seeded."""
    from stopline.cli.devstack import run_dev

    if reset:
        import httpx

        url = f"http://127.0.0.1:{emulator_port}/_emulator/reset"
        try:
            httpx.post(url, json={"seed": "demo"}, timeout=10).raise_for_status()
        except httpx.HTTPError as exc:
            _die(f"could not reset {url} ({type(exc).__name__}): is `stopline dev` running with that "
                 "--emulator-port?", EXIT_FAILED)
        click.echo("demo state reseeded: every demo build, job and pipeline run is running again")
        sys.exit(EXIT_OK)
    sys.exit(run_dev(emulator_port=emulator_port, base_port=base_port, asgi=asgi, rules=rules_file))
