"""The ``demo`` seed: fixed credentials, build tasks with running builds, DataArts jobs and a pipeline."""

from __future__ import annotations

from typing import Any

DEMO_PROJECT_ID = "b384b9e9ab9b4ee8994c8633aabc9505"
DEMO_AK = "STOPLINEDEMOAK000001"
DEMO_SK = "stopline-demo-secret-key-not-for-production"
DEMO_TOKEN = "MIIdemo-stopline-emulator-token"  # noqa: S105 - a published demo value
DEMO_IAM = {"domain": "demo-domain", "username": "demo-user", "password": "demo-password"}
DEMO_JOB_ID = "f9d6c8466d614a9788e9a0acf6c15f46"
DEMO_TASK_ID = "cb5fa20de5fd4cf8be681d4bd6fdd2f6"
DEMO_COMMIT = "3f2a9c1b7d4e5f60718293a4b5c6d7e8f9a0b1c2"
"""The commit of two running builds (20, 21) on ``feature/x``."""
DEMO_NEW_COMMIT = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a291807"
"""A newer commit on ``feature/x``: build 23, queued."""
DEMO_MAIN_COMMIT = "c0ffee0123456789abcdef0123456789abcdef01"
DEMO_EVENT_COMMIT = "5779607b49aab1200488439f02372c57b4f75444"
"""The head commit of events/github-workflow_run-cancelled.json and events/gitlab-pipeline-canceled.json:
build 24 (running, main) is that run's CodeArts build."""
DEMO_DATAARTS_JOB = "daily_etl"
DEMO_INSTANCE_ID = 34765
DEMO_CODEARTS_PROJECT_ID = "93d8e0553c20411fba06bb112b5b59af"
"""The demo's CodeArts project (the path of every pipeline call; not the IAM project)."""
DEMO_PIPELINE_ID = "794514e0a3184e5db0a4740112deee0f"
DEMO_RUN_ID = "de6c9098f45a4ac58a6efc9c1b81df82"
"""A running run of the demo pipeline, on main at DEMO_EVENT_COMMIT."""
DEMO_OLD_RUN_ID = "0ba3c1e7d2f94f6aa5b8c7d6e5f40312"
"""An older running run of the demo pipeline, on feature/x at DEMO_COMMIT."""


def demo() -> dict[str, Any]:
    """A fresh copy of the demo state (the control API's seed shape, docs/cloud-answers.md)."""
    return {
        "credentials": [{"ak": DEMO_AK, "sk": DEMO_SK, "project_id": DEMO_PROJECT_ID}],
        "iam_users": [dict(DEMO_IAM)],
        "tokens": [{"token": DEMO_TOKEN, "project_id": DEMO_PROJECT_ID}],
        "build_tasks": [
            {"job_id": DEMO_JOB_ID, "project_id": DEMO_PROJECT_ID,
             "builds": [
                 {"build_no": 18, "state": "finished", "branch": "main", "commit_id": DEMO_MAIN_COMMIT, "age_s": 3600},
                 {"build_no": 19, "state": "stopped", "branch": "feature/x", "commit_id": DEMO_COMMIT, "age_s": 900},
                 {"build_no": 20, "state": "running", "branch": "feature/x", "commit_id": DEMO_COMMIT, "age_s": 600},
                 {"build_no": 21, "state": "running", "branch": "feature/x", "commit_id": DEMO_COMMIT, "age_s": 300},
                 {"build_no": 22, "state": "running", "branch": "main", "commit_id": DEMO_MAIN_COMMIT, "age_s": 200},
                 {"build_no": 23, "state": "queued", "branch": "feature/x", "commit_id": DEMO_NEW_COMMIT, "age_s": 30},
                 {"build_no": 24, "state": "running", "branch": "main", "commit_id": DEMO_EVENT_COMMIT, "age_s": 20},
             ]},
            {"job_id": DEMO_TASK_ID, "project_id": DEMO_PROJECT_ID,
             "builds": [{"build_no": 1, "state": "running"}]},
            {"job_id": "0a1b2c3d4e5f60718293a4b5c6d7e8f9", "project_id": DEMO_PROJECT_ID,
             "builds": [{"build_no": n, "state": "running"} for n in range(1, 11)]},
        ],
        "dataarts_jobs": [
            {"project_id": DEMO_PROJECT_ID, "workspace": "ws1", "job_name": "myJob", "state": "running"},
            {"project_id": DEMO_PROJECT_ID, "job_name": "myJob", "state": "running"},
            {"project_id": DEMO_PROJECT_ID, "job_name": "nightly", "state": "running"},
            {"project_id": DEMO_PROJECT_ID, "job_name": "daily etl", "state": "running"},
            {"project_id": DEMO_PROJECT_ID, "job_name": DEMO_DATAARTS_JOB, "state": "running",
             "instances": [{"instance_id": DEMO_INSTANCE_ID, "status": "running", "age_s": 120},
                           {"instance_id": DEMO_INSTANCE_ID - 1, "status": "success", "age_s": 86400}]},
        ],
        "pipelines": [
            {"codearts_project_id": DEMO_CODEARTS_PROJECT_ID, "pipeline_id": DEMO_PIPELINE_ID,
             "runs": [
                 {"pipeline_run_id": "5f0c2d9e8b7a46139e2d1c0b9a8f7e6d", "status": "COMPLETED", "branch": "main",
                  "commit_id": DEMO_MAIN_COMMIT, "age_s": 7200},
                 {"pipeline_run_id": DEMO_OLD_RUN_ID, "status": "RUNNING", "branch": "feature/x",
                  "commit_id": DEMO_COMMIT, "age_s": 500},
                 {"pipeline_run_id": DEMO_RUN_ID, "status": "RUNNING", "branch": "main",
                  "commit_id": DEMO_EVENT_COMMIT, "age_s": 25},
             ]},
        ],
    }


def demo_environment(url: str) -> dict[str, str]:
    """Environment variables that point stopline at an emulator seeded with :func:`demo`."""
    return {
        "STOPLINE_CODEARTS_BUILD_ENDPOINT": url,
        "STOPLINE_DATAARTS_ENDPOINT": url,
        "STOPLINE_IAM_ENDPOINT": url,
        "STOPLINE_CODEARTS_PIPELINE_ENDPOINT": url,
        "STOPLINE_SMN_ENDPOINT": url,
        "STOPLINE_FUNCTIONGRAPH_ENDPOINT": url,
        "STOPLINE_CODEARTS_PROJECT_ID": DEMO_CODEARTS_PROJECT_ID,
        "HUAWEICLOUD_SDK_AK": DEMO_AK,
        "HUAWEICLOUD_SDK_SK": DEMO_SK,
        "HUAWEICLOUD_SDK_PROJECT_ID": DEMO_PROJECT_ID,
    }
