"""The emulator's CodeArts Pipeline calls: list a pipeline's runs, stop one, read one's detail.

Written from the documented shapes (docs/cloud-answers.md). Where the cloud's answer is not documented
the emulator uses a **stand-in** that says so in its code: ``DEVPIPE.EMULATOR.RUN_NOT_FOUND`` (an unknown run id) and
``DEVPIPE.EMULATOR.RUN_NOT_RUNNING`` (a stop of a run that is no longer running), both HTTP 400. The
client never depends on them: a refused stop is settled by the run's detail.
"""

from __future__ import annotations

import json
import re

from stopline.emulator.replies import EmuReply, EmuRequest, cloud_error, json_reply
from stopline.emulator.state import CloudState, PipelineRun

CODE_PIPELINE_MISSING = "DEVPIPE.00011401"      # documented by terraform's provider: no such pipeline
CODE_PROJECT_MISSING = "DEVPIPE.00011412"       # documented by terraform's provider: no such project
CODE_RUN_MISSING = "DEVPIPE.EMULATOR.RUN_NOT_FOUND"          # stand-in: the cloud's code is not documented
CODE_RUN_NOT_RUNNING = "DEVPIPE.EMULATOR.RUN_NOT_RUNNING"    # stand-in: the cloud's answer is not documented
_ID = re.compile(r"^[A-Za-z0-9]{32}$")
BASE = r"^/v5/(?P<codearts_project>[^/]+)/api/pipelines/(?P<pipeline_id>[^/]+)/pipeline-runs"
ROUTES = (
    ("POST", re.compile(BASE + r"/list$"), "list_runs"),
    ("GET", re.compile(BASE + r"/detail$"), "run_detail"),
    ("POST", re.compile(BASE + r"/(?P<run_id>[^/]+)/stop$"), "stop_run"),
)


def _missing(state: CloudState, project: str, pipeline_id: str) -> EmuReply | None:
    if not _ID.match(project) or not state.project_exists(project):
        return cloud_error(404, CODE_PROJECT_MISSING, "The project does not exist.")
    if not state.pipeline_exists(project, pipeline_id):
        return cloud_error(404, CODE_PIPELINE_MISSING, "The pipeline does not exist.")
    return None


def _run_json(pipeline_id: str, run: PipelineRun) -> dict[str, object]:
    return {"pipeline_id": pipeline_id, "pipeline_run_id": run.run_id, "executor_id": "0" * 32,
            "executor_name": "devuser", "status": run.status, "run_number": run.run_number,
            "trigger_type": "Push", "start_time": run.start_ms, "end_time": 0,
            "build_params": {"build_type": "branch", "commit_id": run.commit_id, "event_type": "Push",
                             "source_branch": run.branch, "target_branch": run.branch},
            "stage_status_list": [], "detail_url": ""}


def list_runs(state: CloudState, request: EmuRequest, codearts_project: str, pipeline_id: str) -> EmuReply:
    """``POST .../pipeline-runs/list``: the runs whose status is in ``status`` (all when absent)."""
    refused = _missing(state, codearts_project, pipeline_id)
    if refused is not None:
        return refused
    try:
        query = json.loads(request.body) if request.body else {}
        wanted = query.get("status") or []
        offset, limit = int(query.get("offset", 0)), int(query.get("limit", 10))
        if not isinstance(wanted, list) or offset < 0 or limit < 0:
            raise ValueError
    except (ValueError, TypeError, AttributeError):
        return cloud_error(400, "DEVPIPE.00011001", "Invalid request body.")
    found = [r for r in state.pipeline_runs(codearts_project, pipeline_id) or []
             if not wanted or r.status in wanted]
    return json_reply(200, {"offset": offset, "limit": limit, "total": len(found),
                            "pipeline_runs": [_run_json(pipeline_id, r) for r in found[offset:offset + limit]]})


def stop_run(state: CloudState, request: EmuRequest, codearts_project: str, pipeline_id: str,
             run_id: str) -> EmuReply:
    refused = _missing(state, codearts_project, pipeline_id)
    if refused is not None:
        return refused
    result = state.stop_run(codearts_project, pipeline_id, run_id)
    if result == "missing":
        return cloud_error(400, CODE_RUN_MISSING, "stand-in: the pipeline run does not exist.")
    if result == "not_running":
        return cloud_error(400, CODE_RUN_NOT_RUNNING, "stand-in: the pipeline run is not running.")
    return json_reply(200, {"success": True})


def run_detail(state: CloudState, request: EmuRequest, codearts_project: str, pipeline_id: str) -> EmuReply:
    refused = _missing(state, codearts_project, pipeline_id)
    if refused is not None:
        return refused
    run_id = dict(request.query).get("pipeline_run_id")
    run = next((r for r in state.pipeline_runs(codearts_project, pipeline_id) or [] if r.run_id == run_id), None)
    if run is None:
        return cloud_error(404, CODE_RUN_MISSING, "stand-in: the pipeline run does not exist.")
    body = _run_json(pipeline_id, run)
    return json_reply(200, {"id": run.run_id, "pipeline_id": pipeline_id, "name": "demo-pipeline",
                            "status": run.status, "run_number": run.run_number, "start_time": run.start_ms,
                            "end_time": 0, "project_id": codearts_project,
                            "sources": [{"type": "code", "params": {"build_params": body["build_params"]}}]})
