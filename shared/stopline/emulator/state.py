"""The emulator's backend: projects' build tasks, builds, DataArts jobs, credentials and tokens.

Plain Python state behind one lock -- no HTTP here (the moto "backend" half). Every effective state
change is appended to :attr:`CloudState.effects`, which is how tests count double stops or deletes.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

BuildState = Literal["running", "finished", "stopped"]
JobState = Literal["running", "stopped"]
TOKEN_LIFETIME_S = 24 * 3600


@dataclass
class BuildTask:
    job_id: str
    project_id: str
    builds: dict[int, str] = field(default_factory=dict)
    deleted: bool = False


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
            self.dataarts_jobs: dict[tuple[str, str, str], str] = {}
            self.effects: list[dict[str, Any]] = []
            self.token_requests = 0

    # -- seeding -------------------------------------------------------------------------------
    def seed(self, data: dict[str, Any]) -> None:
        """Add state in the shape of interface.md section 8 (``POST /_emulator/seed``)."""
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
                for b in task.get("builds", []):
                    entry.builds[int(b["build_no"])] = b.get("state", "running")
            for job in data.get("dataarts_jobs", []):
                key = (job["project_id"], job.get("workspace") or "default", job["job_name"])
                self.dataarts_jobs[key] = job.get("state", "running")

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "build_tasks": [
                    {"job_id": t.job_id, "project_id": t.project_id, "deleted": t.deleted,
                     "builds": [{"build_no": n, "state": s} for n, s in sorted(t.builds.items())]}
                    for t in self.build_tasks.values()
                ],
                "dataarts_jobs": [
                    {"project_id": p, "workspace": w, "job_name": n, "state": s}
                    for (p, w, n), s in self.dataarts_jobs.items()
                ],
                "effects": list(self.effects),
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
    def stop_build(self, job_id: str, build_no: int) -> Literal["stopped", "not_running", "missing"]:
        with self.lock:
            task = self.build_tasks.get(job_id)
            if task is None or task.deleted or build_no not in task.builds:
                return "missing"
            if task.builds[build_no] != "running":
                return "not_running"
            task.builds[build_no] = "stopped"
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
            state = self.dataarts_jobs.get(key)
            if state is None:
                return "missing"
            if state != "running":
                return "not_running"
            self.dataarts_jobs[key] = "stopped"
            self.effects.append({"effect": "job_stopped", "project_id": project_id,
                                 "workspace": key[1], "job_name": job_name})
            return "stopped"
