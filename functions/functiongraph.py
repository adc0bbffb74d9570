"""Huawei FunctionGraph entry point: ``handler(event, context)`` behind APIG, DMS Kafka/RabbitMQ, SMN
and timer triggers. Does not import functions_framework, which FunctionGraph does not load."""

from typing import Any

from stopline.entry import get_runtime, hold_gc, release_gc
from stopline.logs import ensure_configured
from stopline.triggers.functiongraph import handle, initialize

hold_gc()  # until the initializer or the first event is done: a cold start leaves little garbage
ensure_configured()  # every line on stderr is JSON from the first, even one logged before the runtime exists


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Run the trigger's commands; raises (so FunctionGraph retries) only on transient failures."""
    try:
        return handle(event, context, runtime=get_runtime)
    finally:
        release_gc()


def initializer(context: Any) -> None:
    """FunctionGraph initializer (``initializer_handler: functiongraph.initializer``): moves the cold
    start's setup -- settings, validators, the HTTP client -- ahead of the first event."""
    try:
        initialize(context)
    finally:
        release_gc()
