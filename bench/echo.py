"""The bare functions-framework floor for the cold-start scenario: imports nothing but functions_framework."""

from typing import Any

import functions_framework


@functions_framework.http
def echo(request: Any) -> Any:
    """Read the body, answer it."""
    return request.get_data(), 200, {"Content-Type": "application/json"}
