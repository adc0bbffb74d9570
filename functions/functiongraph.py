"""Huawei FunctionGraph entry point: ``handler(event, context)`` behind APIG, DMS Kafka/RabbitMQ, SMN
and timer triggers. Does not import functions_framework, which FunctionGraph does not load."""

from typing import Any

from stopline.triggers.functiongraph import handle


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Run the trigger's commands; raises (so FunctionGraph retries) only on transient failures."""
    return handle(event, context)
