"""The rules file: which pipeline events (GitHub, GitLab, CTS records) stop what.

Loaded and validated once per instance (``STOPLINE_RULES``), so a mistake is a configuration error at
start, naming the file, the rule and the field -- not a surprise on the first cancelled pipeline. Each
rule's ``then`` commands are section-1 commands whose string values may hold placeholders; the parts
without placeholders are validated at load time against the real command models, the rest when an event
fills them in (a bad value is then a 422 inside that command's result, like a batch member).
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from stopline import cts
from stopline.errors import ConfigurationError, InvalidCommand
from stopline.sources import SourceEvent

PLACEHOLDERS = ("source", "repository", "workflow", "branch", "sha", "run_id", "created_at")
"""Placeholders of the pipeline sources (github, gitlab, any)."""
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_SAMPLE = {"source": "github", "repository": "acme/shop", "workflow": "CI", "branch": "main",
           "sha": "0123456789abcdef0123456789abcdef01234567", "run_id": "1", "created_at": "2026-12-07T10:00:00Z",
           "resource_id": "0123456789abcdef0123456789abcdef", "resource_name": "shop", "trace_name": "stop",
           "user": "devuser", "time": "2026-12-07T10:00:00Z"}
"""Values that satisfy every command field, used to validate templates at load time."""
Event = SourceEvent | cts.CtsEvent
PIPELINE_WHEN = ("repository", "workflow", "branch", "branch_not")


class When(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Literal["github", "gitlab", "any", "cts"]
    kind: Literal["cancelled", "started"] | None = None
    repository: str | None = Field(None, min_length=1)
    workflow: str | None = Field(None, min_length=1)
    branch: str | None = Field(None, min_length=1)
    branch_not: tuple[str, ...] = ()
    service_type: str | None = Field(None, min_length=1)
    resource_type: str | None = Field(None, min_length=1)
    trace_name: str | None = Field(None, min_length=1)
    resource_name: str | None = Field(None, min_length=1)
    resource_id: str | None = Field(None, min_length=1)
    user: str | None = Field(None, min_length=1)
    trace_status: str | None = Field(None, min_length=1)

    @field_validator("branch_not", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _fields_of_its_source(self) -> When:
        if self.source == "cts":
            wrong = [n for n in ("kind", *PIPELINE_WHEN) if getattr(self, n)]
            if wrong:
                raise ValueError(f"{', '.join(wrong)}: not for source cts (it matches {', '.join(cts.MATCH_FIELDS)})")
        else:
            if self.kind is None:
                raise ValueError("kind: required for a github, gitlab or any rule (cancelled or started)")
            wrong = [n for n in cts.MATCH_FIELDS if getattr(self, n) is not None]
            if wrong:
                raise ValueError(f"{', '.join(wrong)}: only for source cts")
        return self

    @property
    def placeholders(self) -> tuple[str, ...]:
        return cts.PLACEHOLDERS if self.source == "cts" else PLACEHOLDERS


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    when: When
    then: Annotated[tuple[dict[str, Any], ...], Field(min_length=1, max_length=20)]

    @model_validator(mode="after")
    def _templates(self) -> Rule:
        for i, command in enumerate(self.then):
            _check_template(command, f"then.{i}", self.when.placeholders)
        return self


class RulesFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: tuple[Rule, ...] = ()

    @model_validator(mode="after")
    def _unique_names(self) -> RulesFile:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.name in seen:
                raise ValueError(f"rule name {rule.name!r} is used twice; names must be unique")
            seen.add(rule.name)
        return self


def _check_template(command: dict[str, Any], where: str, placeholders: tuple[str, ...] = PLACEHOLDERS) -> None:
    """Unknown placeholders, and every field without one, are checked now."""
    from stopline.models import parse_command

    templated = set()
    for key, value in command.items():
        if isinstance(value, str):
            names = _PLACEHOLDER.findall(value)
            unknown = [n for n in names if n not in placeholders]
            if unknown:
                raise ValueError(f"{where}.{key}: unknown placeholder {{{unknown[0]}}}; "
                                 f"use {', '.join('{' + p + '}' for p in placeholders)}")
            if names:
                templated.add(key)
    if "action" not in command:
        raise ValueError(f"{where}.action: required (stop_build, delete_build_task, stop_dataarts_job or "
                         "stop_pipeline_run)")
    try:
        parse_command(render(command, _SAMPLE))
    except InvalidCommand as exc:
        # A templated field's value is only known once an event fills it in; other problems (a clash
        # between fields, a bad literal) are reported now.
        bad = [d for d in exc.details if d["field"].split(".")[0] not in templated or "type" not in d]
        if bad:
            raise ValueError("; ".join(f"{where}.{d['field']}: {d['message']}" for d in bad)) from None


def render(command: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """The command with its placeholders filled in (string values only)."""
    def fill(text: str) -> str:
        return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), text)

    return {k: fill(v) if isinstance(v, str) else v for k, v in command.items()}


@dataclass(frozen=True, slots=True)
class Fired:
    """One command a matching rule generated for an event."""

    rule: str
    index: int
    command: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What the rules make of one event: the rules that fired, their commands, and the rules that would
    have matched but need a field the event lacks (they do not fire; the sender is not refused)."""

    matched: list[Rule]
    fired: list[Fired]
    warnings: list[str]


@dataclass(frozen=True, slots=True)
class Rules:
    """A loaded rules file."""

    path: str
    rules: tuple[Rule, ...]

    def warnings(self) -> list[str]:
        """What is valid but probably not meant: a ``started`` rule that supersedes by ``except_commit_id``
        without ``started_before`` stops a *newer* run's builds when events arrive out of order."""
        found = []
        for rule in self.rules:
            if rule.when.kind != "started":
                continue
            for i, command in enumerate(rule.then):
                if "except_commit_id" in command and "started_before" not in command:
                    found.append(f"rule {rule.name!r}, then.{i}: supersedes with except_commit_id but no "
                                 'started_before; add started_before: "{created_at}" so a late event of an older '
                                 "run never stops a newer run's work (docs/rules.md)")
        return found

    def evaluate(self, event: Event) -> Evaluation:
        """Every rule in file order: those that match fire; one that needs a field the event lacks is a
        warning instead (GitLab counts every 4xx answer against its hook, so an event is never refused
        for what a rule wants of it)."""
        matched: list[Rule] = []
        fired: list[Fired] = []
        warnings: list[str] = []
        for rule in self.rules:
            try:
                if not _matches(rule, event):
                    continue
                made = self.fire(event, [rule])
            except InvalidCommand as exc:
                warnings.append(f"rule {rule.name!r} did not fire: {exc.message}")
                continue
            matched.append(rule)
            fired.extend(made)
        return Evaluation(matched, fired, warnings)

    def matching(self, event: Event) -> list[Rule]:
        """Every rule whose ``when`` matches, in file order. Raises InvalidCommand (422) naming the payload
        field when a rule would need one the event lacks."""
        return [rule for rule in self.rules if _matches(rule, event)]

    def fire(self, event: Event, rules: list[Rule]) -> list[Fired]:
        """The commands the matched rules generate, placeholders filled in."""
        values = event.fields()
        out: list[Fired] = []
        for rule in rules:
            for i, template in enumerate(rule.then):
                for value in template.values():
                    if isinstance(value, str):
                        for name in _PLACEHOLDER.findall(value):
                            _need(event, name, rule)
                command = render(template, values)
                command.setdefault("reason", default_reason(values, superseding=_supersedes(command)))
                out.append(Fired(rule.name, i, command))
        return out


def _supersedes(command: dict[str, Any]) -> bool:
    """A command that stops everything of a branch but the event's own commit, or what started before it."""
    return "except_commit_id" in command or "started_before" in command


def default_reason(values: dict[str, Any], *, superseding: bool) -> str:
    """The ``reason`` a rule's command gets when it sets none: what happened upstream, in one line --
    ``github cancelled: acme/shop CI run 42 (0123456)``, or ``superseded by 0123456 (run 43)``."""
    def part(name: str) -> str:
        value = values.get(name)
        return "" if value is None else "".join(ch if ch.isprintable() else " " for ch in str(value)).strip()

    sha7, run = part("sha")[:7], part("run_id")
    if values.get("source") == "cts":  # `cts: stopPipelineRun shop by devuser`
        text = " ".join(filter(None, ["cts:", part("trace_name"), part("resource_name") or part("resource_id"),
                                      f"by {part('user')}" if part("user") else ""]))
    elif superseding:
        text = " ".join(filter(None, ["superseded by", sha7 or "a newer commit", f"(run {run})" if run else ""]))
    else:
        head = f"{part('source')} {part('kind')}:".strip()
        text = " ".join(filter(None, [head, part("repository"), part("workflow"), f"run {run}" if run else "",
                                      f"({sha7})" if sha7 else ""]))
    return text[:256]


def _need(event: Event, name: str, rule: Rule) -> str:
    value = event.fields().get(name)
    if value is None or value == "":
        origin = event.origin.get(name, name)
        raise InvalidCommand(
            f"rule {rule.name!r} needs the event's {name}, but the {event.source} payload has no {origin}",
            details=[{"field": origin, "message": f"required by rule {rule.name!r}"}])
    return str(value)


def _matches(rule: Rule, event: Event) -> bool:
    when = rule.when
    if isinstance(event, cts.CtsEvent) or when.source == "cts":
        return when.source == event.source and all(
            fnmatch.fnmatchcase(_need(event, name, rule), getattr(when, name))
            for name in cts.MATCH_FIELDS if getattr(when, name) is not None)
    if when.source not in ("any", event.source) or when.kind != event.kind:
        return False
    if when.workflow is not None and (event.source != "github"
                                      or not fnmatch.fnmatchcase(_need(event, "workflow", rule), when.workflow)):
        return False
    if when.repository is not None and not fnmatch.fnmatchcase(_need(event, "repository", rule), when.repository):
        return False
    if when.branch is not None or when.branch_not:
        branch = _need(event, "branch", rule)
        if when.branch is not None and not fnmatch.fnmatchcase(branch, when.branch):
            return False
        if any(fnmatch.fnmatchcase(branch, pattern) for pattern in when.branch_not):
            return False
    return True


def _read(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        return json.loads(text)
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml  # only when a YAML rules file is configured

        return yaml.safe_load(text)
    raise ValueError("the file name must end in .yaml, .yml or .json")


def _locate(path: str) -> Path:
    """The rules file: as given, or -- for a relative path that is not there -- beside the stopline package,
    where `scripts/package` puts it, whatever the platform's working directory is."""
    given = Path(path)
    if given.is_absolute() or given.exists():
        return given
    shipped = Path(__file__).resolve().parents[1] / given
    return shipped if shipped.exists() else given


def load(path: str, *, variable: str = "STOPLINE_RULES") -> Rules:
    """Read and validate a rules file; ConfigurationError names the file, rule (index and name) and field."""
    where = f"{variable} ({path})" if variable else path
    try:
        data = _read(_locate(path))
    except FileNotFoundError:
        raise ConfigurationError(f"{where}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{where}: cannot read it ({type(exc).__name__})") from None
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{where}: not valid JSON at line {exc.lineno}, column {exc.colno}: "
                                 f"{exc.msg}") from None
    except ValueError as exc:
        raise ConfigurationError(f"{where}: not valid: {str(exc).splitlines()[0][:200]}") from None
    except Exception as exc:  # noqa: BLE001 - yaml.YAMLError without importing yaml for JSON files
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigurationError(f"{where}: not valid YAML{at}: {str(problem)[:200]}") from None
    if data is None:
        data = {}
    try:
        parsed = RulesFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigurationError(f"{where}: " + "; ".join(_describe(err, data) for err in exc.errors(
            include_url=False, include_input=False))) from None
    return Rules(path, parsed.rules)


def _suggestion(loc: list[Any]) -> str:
    """For an unknown key, the known one it is closest to (``brnch`` -> ``branch``)."""
    import difflib

    model: type[BaseModel] = RulesFile
    if len(loc) >= 3 and loc[0] == "rules":
        model = When if len(loc) >= 4 and loc[2] == "when" else Rule
    near = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1, cutoff=0.6)
    return f"unknown key; did you mean {near[0]!r}?" if near else \
        f"unknown key; the keys are {', '.join(model.model_fields)}"


def _describe(err: Any, data: Any) -> str:
    loc = list(err["loc"])
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = _suggestion(loc)
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        index = loc[1]
        name = None
        with contextlib.suppress(KeyError, IndexError, TypeError, AttributeError):
            name = data["rules"][index].get("name")
        field = ".".join(str(p) for p in loc[2:])
        label = f"rule {index}" + (f" {name!r}" if name else "")
        return f"{label}: {field + ': ' if field else ''}{message}"
    return f"{'.'.join(str(p) for p in loc) or 'file'}: {message}"
