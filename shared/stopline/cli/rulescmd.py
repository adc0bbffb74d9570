"""``stopline rules``: check a rules file, or see what it does with an event."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from stopline.cli import (
    EXIT_FAILED,
    EXIT_OK,
    _die,
    _read_json_file,
    main,
)
from stopline.errors import ConfigurationError, StoplineError

if TYPE_CHECKING:
    from stopline.rules import Rules


@main.group()
def rules() -> None:
    """Check a rules file, or see what it does with an event."""


def _load(given: str | None, how: str) -> tuple[str, Rules]:
    """The rules file given on the command line, else STOPLINE_RULES, loaded; exits 2 naming the problem."""
    from stopline.rules import load

    path = given or os.environ.get("STOPLINE_RULES")
    if not path:
        _die(f"give {how} or set STOPLINE_RULES")
    try:
        return path, load(path, variable="" if given else "STOPLINE_RULES")
    except ConfigurationError as exc:
        _die(exc.message)


@rules.command("check")
@click.argument("file", required=False)
@click.option("--rules", "rules_file", help="The same as FILE, spelled as `rules explain` and `dev` take it.")
def rules_check(file: str | None, rules_file: str | None) -> None:
    """Validate FILE (default: STOPLINE_RULES) and print each rule."""
    if file and rules_file and file != rules_file:
        _die(f"two rules files given ({file} and --rules {rules_file}); give one")
    path, loaded = _load(file or rules_file, "a rules FILE")
    click.echo(f"{path}: {len(loaded.rules)} rule{'s' if len(loaded.rules) != 1 else ''}, valid")
    for i, rule in enumerate(loaded.rules):
        when = rule.when.model_dump(exclude_none=True, exclude_defaults=False)
        if not when.get("branch_not"):
            when.pop("branch_not", None)
        click.echo(f"  [{i}] {rule.name}: when {json.dumps(when)} -> {len(rule.then)} command"
                   f"{'s' if len(rule.then) != 1 else ''}")
        for command in rule.then:
            click.echo(f"        {json.dumps(command)}")
    for warning in loaded.warnings():
        click.echo(f"warning: {warning}", err=True)
    sys.exit(EXIT_OK)


@rules.command("explain")
@click.option("--source", type=click.Choice(["github", "gitlab", "cts"]), required=True)
@click.option("--event", "event_file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The webhook payload, or the FunctionGraph CTS event ({\"cts\": {...}}).")
@click.option("--event-type", help="X-GitHub-Event / X-Gitlab-Event (default: guessed from the payload).")
@click.option("--rules", "rules_file", help="Rules file (default: STOPLINE_RULES).")
def rules_explain(source: str, event_file: Path, event_type: str | None, rules_file: str | None) -> None:
    """Print the normalised event, the rules that match and the commands they produce; calls nothing."""
    from stopline import cts
    from stopline.sources import Ignored, guess_event_type, normalise

    _, loaded = _load(rules_file, "--rules FILE")
    data = _read_json_file(event_file, "event file")
    if not isinstance(data, dict):
        _die(f"event file {event_file} must hold a JSON object")
    kind = "cts" if source == "cts" else event_type or guess_event_type(
        "github" if source == "github" else "gitlab", data)
    try:
        event = cts.normalise(data) if source == "cts" else \
            normalise("github" if source == "github" else "gitlab", kind, data)
    except StoplineError as exc:
        _die(f"the event cannot be used: {exc.message}", EXIT_FAILED)
    if isinstance(event, Ignored):
        click.echo(json.dumps({"event_type": kind, "ignored": event.reason, "matched": [], "commands": []},
                              indent=2))
        sys.exit(EXIT_OK)
    evaluation = loaded.evaluate(event)
    click.echo(json.dumps({"event_type": kind, "event": event.fields(),
                           "matched": [r.name for r in evaluation.matched],
                           "commands": [{"rule": f.rule, "index": f.index, "command": f.command}
                                        for f in evaluation.fired],
                           **({"warnings": evaluation.warnings} if evaluation.warnings else {})}, indent=2))
    sys.exit(EXIT_OK)
