"""The cold-start peer: a functions-framework target that stops a build with the official SDK, the way a
handler written without stopline would (client built on first use, no validation or bookkeeping)."""

from __future__ import annotations

import json
import os
from typing import Any

import functions_framework

_client: Any = None


@functions_framework.http
def sdk_stop(request: Any) -> Any:
    """Stop the build the JSON body names with CodeArtsBuildClient.stop_job."""
    from huaweicloudsdkcodeartsbuild.v3 import CodeArtsBuildClient, StopJobRequest, StopJobRequestBody
    from huaweicloudsdkcore.auth.credentials import BasicCredentials

    global _client
    if _client is None:
        env = os.environ
        credentials = BasicCredentials(env["HUAWEICLOUD_SDK_AK"], env["HUAWEICLOUD_SDK_SK"],
                                       env["HUAWEICLOUD_SDK_PROJECT_ID"])
        _client = CodeArtsBuildClient.new_builder().with_credentials(credentials).with_endpoints(
            [env["STOPLINE_CODEARTS_BUILD_ENDPOINT"]]).build()
    command = json.loads(request.get_data())
    _client.stop_job(StopJobRequest(body=StopJobRequestBody(job_id=command["job_id"],
                                                            build_no=str(command["build_no"]))))
    return json.dumps({"ok": True}), 200, {"Content-Type": "application/json"}
