"""Idempotency keys are namespaced (docs/exactly-once.md, issue 11 defect 7): equal ids from
different senders never collide, a batch member never collides with a delivery whose id looks like
``<id>:<index>``, and an explicit ``idempotency_key`` is one namespace across every trigger."""

from __future__ import annotations

from typing import Any

from stopline.emulator import Emulator
from stopline.emulator.seeds import DEMO_PROJECT_ID
from stopline.entry import get_runtime
from stopline.pipeline import Delivery
from stopline.triggers import cloudevent

JOB = "9999aaaa2222bbbb3333cccc4444dddd"


def seed(emulator: Emulator) -> None:
    emulator.seed(build_tasks=[{"job_id": JOB, "project_id": DEMO_PROJECT_ID,
                                "builds": [{"build_no": n} for n in range(1, 10)]}])


def stop(n: int, **more: Any) -> dict[str, Any]:
    return {"action": "stop_build", "job_id": JOB, "build_no": n, **more}


def test_a_batch_member_and_a_delivery_named_like_it_both_run(demo_env: Emulator) -> None:
    seed(demo_env)
    pipeline = get_runtime().pipeline
    single = pipeline.handle(stop(1), Delivery("X:0", "webhook"))
    member = pipeline.handle_batch([stop(2), stop(3)], Delivery("X", "webhook"))
    assert str(single.outcome) == "stopped"
    assert [str(r.outcome) for r in member] == ["stopped", "stopped"]  # was 409 for member 0


def test_equal_ids_from_different_senders_are_different_events(demo_env: Emulator) -> None:
    seed(demo_env)
    pipeline = get_runtime().pipeline
    outcomes = [
        pipeline.handle(stop(1), Delivery("abc", "webhook")),
        cloudevent.handle({"id": "abc", "source": "//ci/a", "type": "stopline.stop_build"}, stop(2),
                          runtime=get_runtime),
        cloudevent.handle({"id": "abc", "source": "//ci/b", "type": "stopline.stop_build"}, stop(3),
                          runtime=get_runtime),
        pipeline.handle(stop(4), Delivery("abc", "github", namespace="github")),
        pipeline.handle(stop(5), Delivery("abc", "functiongraph:smn", namespace="fg:smn")),
    ]
    assert [str(r.outcome) for r in outcomes] == ["stopped"] * 5
    again = cloudevent.handle({"id": "abc", "source": "//ci/a", "type": "stopline.stop_build"}, stop(2),
                              runtime=get_runtime)
    assert str(again.outcome) == "duplicate"  # the same source and id is the same event


def test_an_explicit_key_is_one_command_across_triggers(demo_env: Emulator) -> None:
    seed(demo_env)
    pipeline = get_runtime().pipeline
    first = pipeline.handle(stop(6, idempotency_key="release-42"), Delivery("w-1", "webhook"))
    second = cloudevent.handle({"id": "ce-1", "source": "//ci", "type": "stopline.stop_build"},
                               stop(6, idempotency_key="release-42"), runtime=get_runtime)
    assert str(first.outcome) == "stopped" and str(second.outcome) == "duplicate"
    assert len(demo_env.effects) == 1


def test_the_prefix_separates_deployments_sharing_one_redis(demo_env: Emulator, monkeypatch: Any) -> None:
    from stopline.entry import reset_runtime

    seed(demo_env)
    assert str(get_runtime().pipeline.handle(stop(7), Delivery("p-1", "webhook")).outcome) == "stopped"
    monkeypatch.setenv("STOPLINE_IDEMPOTENCY_PREFIX", "other-app:")
    reset_runtime()
    key = get_runtime().pipeline.key(
        get_runtime().pipeline.prepare(stop(7), Delivery("p-1", "webhook")).command,  # type: ignore[union-attr]
        Delivery("p-1", "webhook"), None)
    assert key is not None and key.startswith("other-app:")


def test_a_90_kb_delivery_id_costs_a_bounded_record(demo_env: Emulator) -> None:
    """Issue 11 defect 9: 90 KB webhook-ids grew memory by ~93 KB per key. The key is stored by its hash
    and the record keeps no copy of the id; a duplicate still reports its own delivery's id."""
    import json

    from stopline.idempotency.memory import MemoryStore

    seed(demo_env)
    runtime = get_runtime()
    huge = "w" * 90_000
    first = runtime.pipeline.handle(stop(8), Delivery(huge, "webhook"))
    again = runtime.pipeline.handle(stop(8), Delivery(huge, "webhook"))
    assert str(first.outcome) == "stopped" and str(again.outcome) == "duplicate" and again.event_id == huge
    store = runtime.idempotency.store
    assert isinstance(store, MemoryStore)
    sizes = [len(key) + len(json.dumps(record)) for key, (_, record, _) in store._data.items()]
    assert sizes and max(sizes) < 2_000
