"""One cold start, run in a fresh process by bench/run.py: import a target and handle its first request.

    python bench/cold_probe.py stopline|echo|sdk   ->  prints {"handler_ms": ..., "rss_mb": ...}
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
JOB = "f9d6c8466d614a9788e9a0acf6c15f46"


def main(kind: str) -> None:
    from stopline.emulator import mock_huaweicloud

    with mock_huaweicloud("demo"):
        start = time.perf_counter()
        if kind == "sdk":
            from huaweicloudsdkcodeartsbuild.v3 import CodeArtsBuildClient
            from huaweicloudsdkcore.auth.credentials import BasicCredentials

            CodeArtsBuildClient.new_builder().with_credentials(BasicCredentials("a", "b", "c")).with_endpoints(
                ["https://example.invalid"]).build()
        else:
            from functions_framework import create_app

            if kind == "stopline":
                from stopline import webhooks

                app = create_app("webhook", str(ROOT / "functions" / "main.py")).test_client()  # type: ignore[no-untyped-call]
                body = json.dumps({"action": "stop_build", "job_id": JOB, "build_no": 20}).encode()
                headers = {**webhooks.sign("cold-secret", "m1", body), "Content-Type": "application/json"}
                answer = app.post("/", data=body, headers=headers)
                assert answer.get_json()["outcome"] == "stopped", answer.get_data()
            else:
                app = create_app("echo", str(ROOT / "bench" / "peers.py")).test_client()  # type: ignore[no-untyped-call]
                app.post("/", data=b"{}", headers={"Content-Type": "application/json"})
        handled = time.perf_counter()
    # VmHWM is this program's own peak; ru_maxrss would carry the forking parent's over exec.
    status = Path("/proc/self/status").read_text()
    rss = next((int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmHWM:")),
               resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps({"handler_ms": (handled - start) * 1000, "rss_mb": rss}))


if __name__ == "__main__":
    main(sys.argv[1])
