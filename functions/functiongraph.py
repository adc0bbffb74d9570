"""Huawei FunctionGraph entry point: ``handler(event, context)`` behind APIG, DMS Kafka/RabbitMQ, SMN
and timer triggers. Does not import functions_framework, which FunctionGraph does not load."""

from typing import Any

from stopline.entry import get_runtime
from stopline.triggers.functiongraph import handle, initialize


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Run the trigger's commands; raises (so FunctionGraph retries) only on transient failures."""
    return handle(event, context, runtime=get_runtime)


def initializer(context: Any) -> None:
    """FunctionGraph initializer (``initializer_handler: functiongraph.initializer``): moves the cold
    start's setup -- settings, validators, the HTTP client -- ahead of the first event."""
    initialize(context)
