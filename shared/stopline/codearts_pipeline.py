"""CodeArts Pipeline runs: the requests that stop, list and read them, and what their answers mean.

Pure functions over plain values (no I/O), used by :class:`stopline.client.ClientCore`. The path's
``{project_id}`` is the **CodeArts project id** (the command's ``codearts_project_id``, else
``STOPLINE_CODEARTS_PROJECT_ID``), not the IAM project of every other call.

What the cloud documents, and what it does not (docs/cloud-answers.md):
- stop: ``POST .../pipeline-runs/{run}/stop``, no body, ``200 {"success": true}``; list: ``POST
  .../pipeline-runs/list`` with ``{"status": ["RUNNING"], "offset", "limit"}`` answering ``{"total",
  "pipeline_runs": [...]}``; detail: ``GET .../pipeline-runs/detail?pipeline_run_id=`` with ``status``.
- Known codes: ``DEVPIPE.00011401`` (no such pipeline), ``DEVPIPE.00011412`` / ``DEV_21_100169`` (no such
  project), ``DEVPIPE.00011136`` (the project does not own the pipeline).
- Not documented: the answer for an unknown run id, and for stopping a run that is no longer running.
  So a refused stop is never read by its code alone: stopline reads the run's detail, and a run that is
  no longer running is ``already_stopped`` whatever the refusal said; a run the detail cannot find is
  ``not_found``.
"""

from __future__ import annotations

import json
from typing import Any

from stopline.models import StopPipelineRun
from stopline.wire import Call, epoch_ms

RUNNING = "RUNNING"
ACTIVE_STATES = frozenset({"RUNNING", "PAUSED", "SUSPEND", "QUEUED", "INIT"})
"""Run states in which a run is still in progress (a paused run can still be stopped)."""
PIPELINE_MISSING = frozenset({"DEVPIPE.00011401"})
PROJECT_MISSING = frozenset({"DEVPIPE.00011412", "DEV_21_100169"})
PROJECT_MISMATCH = "DEVPIPE.00011136"
PAGE_SIZE = 100
HEADERS = {"Content-Type": "application/json;charset=UTF-8"}


def base(command: StopPipelineRun, project: str) -> str:
    return f"/v5/{project}/api/pipelines/{command.pipeline_id}/pipeline-runs"


def plan_stop(command: StopPipelineRun, endpoint: str, project: str, headers: dict[str, str]) -> Call:
    """``POST .../pipeline-runs/{run}/stop`` (no body)."""
    return Call.build("POST", endpoint, f"{base(command, project)}/{command.pipeline_run_id}/stop",
                      api="pipeline", headers={**headers, **HEADERS})


def plan_list(command: StopPipelineRun, endpoint: str, project: str, headers: dict[str, str], offset: int) -> Call:
    """One page of the pipeline's running runs."""
    body = json.dumps({"status": [RUNNING], "offset": offset, "limit": PAGE_SIZE}, separators=(",", ":"))
    return Call.build("POST", endpoint, f"{base(command, project)}/list", api="pipeline-runs",
                      headers={**headers, **HEADERS}, body=body.encode())


def plan_detail(command: StopPipelineRun, endpoint: str, project: str, headers: dict[str, str]) -> Call:
    """The run's detail, read when a stop was refused: is it still running?"""
    return Call.build("GET", endpoint, f"{base(command, project)}/detail", api="pipeline-run",
                      query=(("pipeline_run_id", str(command.pipeline_run_id)),), headers=headers)


def page(data: dict[str, Any], offset: int) -> tuple[list[dict[str, Any]], bool]:
    """(runs on this page, whether another page follows)."""
    runs = data.get("pipeline_runs")
    items = [r for r in runs if isinstance(r, dict)] if isinstance(runs, list) else []
    try:
        total = int(data.get("total") or 0)
    except (TypeError, ValueError):
        total = 0
    return items, bool(items) and offset + len(items) < total


def select(command: StopPipelineRun, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The running runs matching the filters (the rules of builds: resolution.passes), one per run id,
    oldest first."""
    from stopline.resolution import passes

    chosen: dict[str, dict[str, Any]] = {}
    for run in runs:
        run_id = run.get("pipeline_run_id")
        if not isinstance(run_id, str) or str(run.get("status") or "").upper() != RUNNING:
            continue
        params: dict[str, Any] = run["build_params"] if isinstance(run.get("build_params"), dict) else {}
        if passes(command, params.get("commit_id"), params.get("source_branch"), run.get("start_time")):
            chosen.setdefault(run_id, run)
    return sorted(chosen.values(), key=lambda r: (epoch_ms(r.get("start_time")) or 0, r["pipeline_run_id"]))


def still_running(detail: Any) -> bool | None:
    """Whether the run's detail says it is in progress; None when the detail has no status."""
    status = detail.get("status") if isinstance(detail, dict) else None
    if not isinstance(status, str) or not status:
        return None
    return status.upper() in ACTIVE_STATES


def running_rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a user wants to see of running runs: id, number, state, branch, commit, start."""
    rows = []
    for r in runs:
        params: dict[str, Any] = r["build_params"] if isinstance(r.get("build_params"), dict) else {}
        rows.append({"pipeline_run_id": r.get("pipeline_run_id"), "run_number": r.get("run_number"),
                     "state": r.get("status"), "branch": params.get("source_branch"),
                     "commit_id": params.get("commit_id"), "start_time": r.get("start_time")})
    return rows
