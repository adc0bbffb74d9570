"""The ``stopline`` command. Exit codes: 0 success, 1 failure outcome, 2 usage or configuration error.

The group lives here with the helpers every subcommand shares; the subcommands live beside it, by what
they are for: ``direct`` (calling the cloud: stop-build, stop-job, stop-pipeline, running, ...),
``sending`` (signing and sending to a target), ``rulescmd`` (rules check / explain) and ``local`` (the
emulator, ``dev``, ``invoke``, secrets), with the dev tools they drive (``devstack``, ``sender``,
``invoker``). Every subcommand imports what it needs when it runs, and the function targets never import
this package.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from stopline.errors import ConfigurationError, InvalidCommand

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _die(message: str, code: int = EXIT_USAGE) -> NoReturn:
    click.echo(f"stopline: {message}", err=True)
    sys.exit(code)


def _fields(exc: InvalidCommand) -> str:
    return "; ".join(f"{d['field'].replace('_', '-')}: {d['message']}" for d in exc.details) or exc.message


def _configured_runtime(verbose: bool, *, cloud: bool = True) -> Any:
    """The runtime, quiet unless -v, with its credentials checked when the command calls the cloud
    (``cloud``); exits 2 on a configuration problem."""
    from stopline import logs
    from stopline.entry import get_runtime

    quiet = not verbose and "STOPLINE_LOG_LEVEL" not in os.environ
    if quiet:
        logs.configure("CRITICAL")
    try:
        runtime = get_runtime()
        if quiet:
            logs.configure("CRITICAL")
        if cloud:
            runtime.client()
    except ConfigurationError as exc:
        _die(exc.message)
    return runtime


_json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
_verbose_option = click.option("-v", "--verbose", is_flag=True, help="Also write the JSON log lines to stderr.")


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


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120, "terminal_width": 120})
@click.version_option(package_name="stopline")
def main() -> None:
    """stopline: stop CodeArts Build builds and Pipeline runs, delete build tasks, stop DataArts Studio jobs."""


from stopline.cli import deploycmd, direct, local, retriescmd, rulescmd, sending  # noqa: E402 - each registers its commands on main

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "deploycmd", "direct", "local", "main", "retriescmd", "rulescmd",
           "sending"]
