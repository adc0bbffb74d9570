"""The emulator's backend: projects' build tasks, builds, DataArts jobs, credentials and tokens.

Plain Python state behind one lock -- no HTTP here (the moto "backend" half). Every effective state
change is appended to :attr:`CloudState.effects`, which is how tests count double stops or deletes.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

BuildState = Literal["running", "queued", "finished", "stopped"]
JobState = Literal["running", "stopped"]
TOKEN_LIFETIME_S = 24 * 3600
BUILD_STATES = ("running", "queued", "finished", "stopped")
ACTIVE_BUILD_STATES = ("running", "queued")
INSTANCE_STATES = ("waiting", "running", "success", "forceSuccess", "ignoreSuccess", "freeze", "skip-by-depend",
                   "waiting-confirm", "fail", "running-exception", "pause", "manual-stop")
ACTIVE_INSTANCE_STATES = ("running", "waiting", "waiting-confirm", "pause")
RUN_STATES = ("RUNNING", "COMPLETED", "FAILED", "CANCELED", "PAUSED", "SUSPEND", "IGNORED")
ACTIVE_RUN_STATES = ("RUNNING", "PAUSED", "SUSPEND")


@dataclass
class Build:
    """One build of a task, as its build record shows it (docs/cloud-answers.md)."""

    state: str
    commit_id: str
    branch: str
    start_ms: int
    stop_takes_s: float = 0.0
    """How long the build keeps running after an accepted stop (seeded; the cloud documents no figure)."""
    stops_at: float | None = None
    """When an accepted stop takes effect (``time.time()``); until then the record still says running."""

    def settle(self) -> Build:
        """The build as a record shows it now: a stop that has taken effect is ``stopped``."""
        if self.stops_at is not None and time.time() >= self.stops_at:
            self.state, self.stops_at = "stopped", None
        return self


@dataclass
class BuildTask:
    job_id: str
    project_id: str
    builds: dict[int, Build] = field(default_factory=dict)
    deleted: bool = False


@dataclass
class Instance:
    """One run of a DataArts job (docs/cloud-answers.md)."""

    instance_id: int
    status: str
    plan_ms: int


@dataclass
class DataArtsJob:
    state: str
    instances: dict[int, Instance] = field(default_factory=dict)


@dataclass
class PipelineRun:
    """One run of a CodeArts Pipeline (docs/cloud-answers.md)."""

    run_id: str
    status: str
    commit_id: str
    branch: str
    start_ms: int
    run_number: int


def _seeded_commit(seed: dict[str, Any], owner: str, number: int) -> str:
    """The seed's commit; ``""`` seeds a record that names none (a task without a code source), and a seed
    without the field gets a made-up commit of its own."""
    given = seed.get("commit_id")
    if given is not None:
        return str(given)
    return hashlib.sha1(f"{owner}:{number}".encode()).hexdigest()  # noqa: S324 - a fake commit id


@dataclass(frozen=True)
class Credential:
    ak: str
    sk: str
    project_id: str | None = None
    security_token: str | None = None


@dataclass(frozen=True)
class IssuedToken:
    project_id: str | None
    expires_at: float


class CloudState:
    """Stateful fake of IAM, CodeArts Build and DataArts Studio."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.credentials: dict[str, Credential] = {}
            self.iam_users: dict[tuple[str, str], str] = {}
            self.tokens: dict[str, IssuedToken] = {}
            self.build_tasks: dict[str, BuildTask] = {}
            self.dataarts_jobs: dict[tuple[str, str, str], DataArtsJob] = {}
            self.pipelines: dict[tuple[str, str], dict[str, PipelineRun]] = {}
            """(CodeArts project id, pipeline id) -> run id -> run."""
            self.effects: list[dict[str, Any]] = []
            self.smn_messages: list[dict[str, Any]] = []
            """What SMN topics were sent (the audit sink), in order."""
            self.fg_region = "cn-north-4"
            """The region in the URNs of FunctionGraph functions (the emulator serves one)."""
            self.functions: dict[str, dict[str, Any]] = {}
            """FunctionGraph functions by ``project:package:name:version``."""
            self.fg_triggers: dict[str, list[dict[str, Any]]] = {}
            self.fg_async: dict[str, dict[str, Any]] = {}
            self.fg_code_uploads = 0
            self.token_requests = 0

    # -- seeding -------------------------------------------------------------------------------
    def seed(self, data: dict[str, Any]) -> None:
        """Add state in the shape of docs/cloud-answers.md (``POST /_emulator/seed``); a bad field raises
        ValueError naming it before anything changes."""
        from stopline.emulator.control_schema import checked_seed

        data = checked_seed(data)
        with self.lock:
            for c in data.get("credentials", []):
                self.credentials[c["ak"]] = Credential(c["ak"], c["sk"], c.get("project_id"),
                                                       c.get("security_token"))
            for u in data.get("iam_users", []):
                self.iam_users[(u["domain"], u["username"])] = u["password"]
            for t in data.get("tokens", []):
                token, project = (t, None) if isinstance(t, str) else (t["token"], t.get("project_id"))
                self.tokens[token] = IssuedToken(project, time.time() + TOKEN_LIFETIME_S)
            for task in data.get("build_tasks", []):
                entry = self.build_tasks.setdefault(
                    task["job_id"], BuildTask(task["job_id"], task.get("project_id", ""))
                )
                entry.deleted = bool(task.get("deleted", False))
                now_ms = int(time.time() * 1000)
                for b in task.get("builds", []):
                    number = int(b["build_no"])
                    state = b.get("state", "running")
                    if state not in BUILD_STATES:
                        raise ValueError(f"build state must be one of {', '.join(BUILD_STATES)}, not {state!r}")
                    started = b.get("start_time")
                    if started is None:
                        started = now_ms - int(float(b.get("age_s", 60)) * 1000)
                    commit = _seeded_commit(b, entry.job_id, number)
                    entry.builds[number] = Build(state, commit, str(b.get("branch") or "master"), int(started),
                                                 float(b.get("stop_takes_s", 0)))
            for job in data.get("dataarts_jobs", []):
                key = (job["project_id"], job.get("workspace") or "default", job["job_name"])
                found = self.dataarts_jobs.setdefault(key, DataArtsJob(job.get("state", "running")))
                found.state = job.get("state", found.state)
                now_ms = int(time.time() * 1000)
                for i in job.get("instances", []):
                    status = i.get("status", "running")
                    if status not in INSTANCE_STATES:
                        raise ValueError(f"instance status must be one of {', '.join(INSTANCE_STATES)}")
                    plan = i.get("plan_time")
                    found.instances[int(i["instance_id"])] = Instance(
                        int(i["instance_id"]), status,
                        int(plan) if plan is not None else now_ms - int(float(i.get("age_s", 300)) * 1000))
            for pipeline in data.get("pipelines", []):
                self._seed_pipeline(pipeline)

    def _seed_pipeline(self, pipeline: dict[str, Any]) -> None:
        key = (pipeline["codearts_project_id"], pipeline["pipeline_id"])
        found = self.pipelines.setdefault(key, {})
        now_ms = int(time.time() * 1000)
        for number, r in enumerate(pipeline.get("runs", []), start=len(found) + 1):
            status = str(r.get("status", "RUNNING")).upper()
            if status not in RUN_STATES:
                raise ValueError(f"pipeline run status must be one of {', '.join(RUN_STATES)}, not {status!r}")
            started = r.get("start_time")
            if started is None:
                started = now_ms - int(float(r.get("age_s", 60)) * 1000)
            run_id = str(r["pipeline_run_id"])
            found[run_id] = PipelineRun(run_id, status, _seeded_commit(r, run_id, number),
                                        str(r.get("branch") or "master"), int(started),
                                        int(r.get("run_number", number)))

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "build_tasks": [
                    {"job_id": t.job_id, "project_id": t.project_id, "deleted": t.deleted,
                     "builds": [{"build_no": n, "state": b.state, "commit_id": b.commit_id, "branch": b.branch}
                                for n, b in sorted(t.builds.items())]}
                    for t in self.build_tasks.values()
                ],
                "dataarts_jobs": [
                    {"project_id": p, "workspace": w, "job_name": n, "state": j.state,
                     "instances": [{"instance_id": i.instance_id, "status": i.status}
                                   for i in sorted(j.instances.values(), key=lambda i: i.instance_id)]}
                    for (p, w, n), j in self.dataarts_jobs.items()
                ],
                "pipelines": [
                    {"codearts_project_id": p, "pipeline_id": q,
                     "runs": [{"pipeline_run_id": r.run_id, "status": r.status, "commit_id": r.commit_id,
                               "branch": r.branch, "run_number": r.run_number}
                              for r in sorted(found.values(), key=lambda r: r.run_number)]}
                    for (p, q), found in self.pipelines.items()
                ],
                "effects": list(self.effects),
                "smn_messages": list(self.smn_messages),
                "functions": [
                    {"func_urn": f["func_urn"], "func_name": f["func_name"], "runtime": f["runtime"],
                     "handler": f["handler"], "memory_size": f["memory_size"], "timeout": f["timeout"],
                     "variables": sorted(json.loads(f.get("user_data") or "{}")), "code_size": f["code_size"],
                     "triggers": [{"trigger_type_code": t["trigger_type_code"], "trigger_status": t["trigger_status"]}
                                  for t in self.fg_triggers.get(key, [])],
                     "async_config": key in self.fg_async}
                    for key, f in self.functions.items()
                ],
                "token_requests": self.token_requests,
            }

    # -- IAM -------------------------------------------------------------------------------------
    def issue_token(self, domain: str, username: str, password: str, project_id: str | None) -> str | None:
        with self.lock:
            self.token_requests += 1
            expected = self.iam_users.get((domain, username))
            if expected is None or not secrets.compare_digest(expected.encode(), password.encode()):
                return None
            token = "MIIemu" + secrets.token_urlsafe(48)
            self.tokens[token] = IssuedToken(project_id, time.time() + TOKEN_LIFETIME_S)
            return token

    def token_valid(self, token: str) -> bool:
        with self.lock:
            issued = self.tokens.get(token)
            return issued is not None and issued.expires_at > time.time()

    def revoke_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    # -- CodeArts Build ----------------------------------------------------------------------------
    def task(self, job_id: str) -> BuildTask | None:
        """A build task that exists (not deleted)."""
        with self.lock:
            task = self.build_tasks.get(job_id)
            return None if task is None or task.deleted else task

    def records(self, job_id: str, start_ms: int, end_ms: int) -> list[tuple[int, Build]] | None:
        """The task's builds started inside the window, newest first; None when the task does not exist."""
        with self.lock:
            task = self.task(job_id)
            if task is None:
                return None
            return [(n, Build(b.settle().state, b.commit_id, b.branch, b.start_ms))
                    for n, b in sorted(task.builds.items(), reverse=True) if start_ms <= b.start_ms <= end_ms]

    def stop_build(self, job_id: str, build_no: int) -> Literal["stopped", "not_running", "missing", "no_build"]:
        with self.lock:
            task = self.build_tasks.get(job_id)
            if task is None or task.deleted:
                return "missing"
            if build_no not in task.builds:
                return "no_build"
            build = task.builds[build_no].settle()
            if build.state not in ACTIVE_BUILD_STATES or build.stops_at is not None:
                return "not_running"
            if build.stop_takes_s > 0:  # accepted now, takes effect later: the record says running till then
                build.stops_at = time.time() + build.stop_takes_s
            else:
                build.state = "stopped"
            self.effects.append({"effect": "build_stopped", "job_id": job_id, "build_no": build_no})
            return "stopped"

    def delete_task(self, job_id: str) -> BuildTask | None:
        with self.lock:
            task = self.build_tasks.get(job_id)
            if task is None or task.deleted:
                return None
            task.deleted = True
            self.effects.append({"effect": "task_deleted", "job_id": job_id})
            return task

    # -- DataArts Studio ---------------------------------------------------------------------------
    def stop_job(self, project_id: str, workspace: str | None, job_name: str) -> Literal[
        "stopped", "not_running", "missing"
    ]:
        key = (project_id, workspace or "default", job_name)
        with self.lock:
            job = self.dataarts_jobs.get(key)
            if job is None:
                return "missing"
            if job.state != "running":
                return "not_running"
            job.state = "stopped"
            self.effects.append({"effect": "job_stopped", "project_id": project_id,
                                 "workspace": key[1], "job_name": job_name})
            return "stopped"

    def workspace_exists(self, project_id: str, workspace: str | None) -> bool:
        """A named workspace exists once any job was seeded into it (the default one always does)."""
        if workspace is None:
            return True
        with self.lock:
            return any(p == project_id and w == workspace for p, w, _ in self.dataarts_jobs)

    def instances(self, project_id: str, workspace: str | None, job_name: str | None,
                  min_ms: int, max_ms: int) -> list[tuple[str, Instance]]:
        """Instances planned inside the window, of one job (exact name) or of every job; newest first."""
        with self.lock:
            found = [(name, Instance(i.instance_id, i.status, i.plan_ms))
                     for (p, w, name), job in self.dataarts_jobs.items()
                     if p == project_id and w == (workspace or "default") and job_name in (None, name)
                     for i in job.instances.values() if min_ms <= i.plan_ms <= max_ms]
        return sorted(found, key=lambda pair: (-pair[1].plan_ms, -pair[1].instance_id))

    def stop_instance(self, project_id: str, workspace: str | None, job_name: str,
                      instance_id: int) -> Literal["stopped", "not_running", "missing"]:
        key = (project_id, workspace or "default", job_name)
        with self.lock:
            job = self.dataarts_jobs.get(key)
            instance = job.instances.get(instance_id) if job is not None else None
            if instance is None:
                return "missing"
            if instance.status not in ACTIVE_INSTANCE_STATES:
                return "not_running"
            instance.status = "manual-stop"
            self.effects.append({"effect": "instance_stopped", "project_id": project_id, "workspace": key[1],
                                 "job_name": job_name, "instance_id": instance_id})
            return "stopped"

    # -- CodeArts Pipeline ------------------------------------------------------------------------
    def pipeline_runs(self, project: str, pipeline_id: str) -> list[PipelineRun] | None:
        """The pipeline's runs, newest first; None when the pipeline does not exist in that project."""
        with self.lock:
            found = self.pipelines.get((project, pipeline_id))
            if found is None:
                return None
            return sorted((PipelineRun(**vars(r)) for r in found.values()), key=lambda r: -r.start_ms)

    def pipeline_exists(self, project: str, pipeline_id: str) -> bool:
        with self.lock:
            return (project, pipeline_id) in self.pipelines

    def project_exists(self, project: str) -> bool:
        with self.lock:
            return any(p == project for p, _ in self.pipelines)

    def stop_run(self, project: str, pipeline_id: str, run_id: str) -> Literal["stopped", "not_running", "missing"]:
        with self.lock:
            run = self.pipelines.get((project, pipeline_id), {}).get(run_id)
            if run is None:
                return "missing"
            if run.status not in ACTIVE_RUN_STATES:
                return "not_running"
            run.status = "CANCELED"
            self.effects.append({"effect": "pipeline_run_stopped", "codearts_project_id": project,
                                 "pipeline_id": pipeline_id, "pipeline_run_id": run_id})
            return "stopped"

    # -- SMN -------------------------------------------------------------------------------------
    def publish(self, topic_urn: str, subject: str | None, message: str, message_id: str) -> None:
        with self.lock:
            self.smn_messages.append({"topic_urn": topic_urn, "subject": subject, "message": message,
                                      "message_id": message_id})
