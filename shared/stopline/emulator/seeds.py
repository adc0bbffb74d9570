"""The ``demo`` seed: fixed credentials, build tasks with running builds, and DataArts jobs."""

from __future__ import annotations

from typing import Any

DEMO_PROJECT_ID = "b384b9e9ab9b4ee8994c8633aabc9505"
DEMO_AK = "STOPLINEDEMOAK000001"
DEMO_SK = "stopline-demo-secret-key-not-for-production"
DEMO_TOKEN = "MIIdemo-stopline-emulator-token"  # noqa: S105 - a published demo value
DEMO_IAM = {"domain": "demo-domain", "username": "demo-user", "password": "demo-password"}
DEMO_JOB_ID = "f9d6c8466d614a9788e9a0acf6c15f46"
DEMO_TASK_ID = "cb5fa20de5fd4cf8be681d4bd6fdd2f6"


def demo() -> dict[str, Any]:
    """A fresh copy of the demo state (interface.md section 8 seed shape)."""
    return {
        "credentials": [{"ak": DEMO_AK, "sk": DEMO_SK, "project_id": DEMO_PROJECT_ID}],
        "iam_users": [dict(DEMO_IAM)],
        "tokens": [{"token": DEMO_TOKEN, "project_id": DEMO_PROJECT_ID}],
        "build_tasks": [
            {"job_id": DEMO_JOB_ID, "project_id": DEMO_PROJECT_ID,
             "builds": [{"build_no": 18, "state": "finished"}, {"build_no": 19, "state": "stopped"},
                        {"build_no": 20, "state": "running"}, {"build_no": 21, "state": "running"},
                        {"build_no": 22, "state": "running"}]},
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
        ],
    }


def demo_environment(url: str) -> dict[str, str]:
    """Environment variables that point stopline at an emulator seeded with :func:`demo`."""
    return {
        "STOPLINE_CODEARTS_BUILD_ENDPOINT": url,
        "STOPLINE_DATAARTS_ENDPOINT": url,
        "STOPLINE_IAM_ENDPOINT": url,
        "HUAWEICLOUD_SDK_AK": DEMO_AK,
        "HUAWEICLOUD_SDK_SK": DEMO_SK,
        "HUAWEICLOUD_SDK_PROJECT_ID": DEMO_PROJECT_ID,
    }
