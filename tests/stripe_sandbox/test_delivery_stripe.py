"""STRIPE_SANDBOX_DELIVERY=stripe: at least once, in no guaranteed order, retried with
backoff for up to three days on the sandbox clock; the choices follow the seed."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django_tasks_db.models import DBTaskResult

from devtools.stripe_sandbox import store
from devtools.stripe_sandbox.delivery import (
    STRIPE_RETRY_FIRST,
    WINDOW,
    clock_now,
    deliver_pending,
    delivery_plan,
    delivery_run,
)
from devtools.stripe_sandbox.events import endpoint_ensure, event_emit
from devtools.stripe_sandbox.models import Delivery


class Recorder:
    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.event_ids: list[str] = []

    def __call__(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        self.event_ids.append(json.loads(body)["id"])
        return self.status


@pytest.fixture
def stripe_mode(db, settings) -> None:
    settings.STRIPE_SANDBOX_DELIVERY = "stripe"
    settings.STRIPE_SANDBOX_SEED = 4242


def _emit(count: int) -> list[str]:
    endpoint_ensure()
    return [
        event_emit("customer.updated", {"id": f"cus_{i}", "object": "customer"})["id"]
        for i in range(count)
    ]


def _plan() -> list[tuple[int, int]]:
    """(index of the event in emission order, its deliveries) for every event."""
    ids = list(Delivery.objects.order_by("id").values_list("event_id", flat=True))
    order = list(dict.fromkeys(ids))
    return [(order.index(e), ids.count(e)) for e in order]


def _seed_without_duplicate() -> int:
    return next(seed for seed in range(100) if len(delivery_plan(0, seed=seed)) == 1)


def test_deliveries_are_delayed_reordered_and_some_duplicated(stripe_mode):
    emitted = _emit(40)
    receiver = Recorder()

    report = deliver_pending(transport=receiver)

    assert set(receiver.event_ids) == set(emitted)  # at least once
    assert receiver.event_ids[: len(emitted)] != emitted  # in no guaranteed order
    twice = [e for e, n in Counter(receiver.event_ids).items() if n == 2]
    assert 1 <= len(twice) <= 12  # about DUPLICATE_SHARE of them, each a Delivery row
    assert report.succeeded == len(receiver.event_ids) == Delivery.objects.count()
    for row in Delivery.objects.all():
        assert row.next_attempt_at > row.created_at - timedelta(seconds=1)  # not early
    waits = [
        t.run_after - t.enqueued_at
        for t in DBTaskResult.objects.filter(
            task_path="devtools.stripe_sandbox.delivery.delivery_run"
        )
    ]
    assert all(-timedelta(seconds=1) < w <= 2 * WINDOW + timedelta(seconds=1) for w in waits)
    assert any(w > timedelta(milliseconds=100) for w in waits)


def test_the_same_seed_makes_the_same_choices(stripe_mode, settings):
    _emit(30)
    first = _plan()
    planned: list[timedelta] = []
    while len(planned) < Delivery.objects.count():  # each event's ordinal: rows before it
        planned += delivery_plan(len(planned))
    made = [r.next_attempt_at - r.created_at for r in Delivery.objects.order_by("id")]
    Delivery.objects.all().delete()

    _emit(30)
    again = _plan()

    assert first == again
    assert any(count == 2 for _, count in first)
    for want, got in zip(planned, made, strict=True):
        assert abs(want - got) < timedelta(milliseconds=500)
    assert [delivery_plan(n) for n in range(60)] != [delivery_plan(n, seed=4343) for n in range(60)]


def test_ordered_mode_delivers_once_in_order(db, settings):
    settings.STRIPE_SANDBOX_DELIVERY = "ordered"
    emitted = _emit(20)
    receiver = Recorder()

    deliver_pending(transport=receiver)

    assert receiver.event_ids == emitted


def test_failures_are_retried_with_backoff_for_three_days_on_the_clock(stripe_mode, settings):
    settings.STRIPE_SANDBOX_SEED = _seed_without_duplicate()
    (event_id,) = _emit(1)
    assert Delivery.objects.count() == 1
    receiver = Recorder(status=500)
    waits = []

    deliver_pending(transport=receiver)
    row = Delivery.objects.get()
    while row.state == Delivery.State.PENDING:
        wait = (row.next_attempt_at - clock_now()).total_seconds()
        waits.append(round(wait / 60))
        store.clock_advance(int(wait) + 1)
        deliver_pending(transport=receiver)
        row = Delivery.objects.get()

    assert waits[:4] == [5, 10, 20, 40]
    assert sum(waits) <= 3 * 24 * 60 < sum(waits) + waits[-1] * 2
    assert row.state == Delivery.State.FAILED
    assert row.attempts == len(waits) + 1
    assert receiver.event_ids == [event_id] * row.attempts


def test_advance_makes_due_retries_and_a_second_task_for_one_attempt_is_stale(
    stripe_mode, settings
):
    settings.STRIPE_SANDBOX_SEED = _seed_without_duplicate()
    _emit(1)
    deliver_pending(transport=Recorder(status=503))
    row = Delivery.objects.get()
    assert row.attempts == 1
    assert row.next_attempt_at - clock_now() == pytest.approx(
        STRIPE_RETRY_FIRST, abs=timedelta(seconds=2)
    )
    before = DBTaskResult.objects.count()

    out = StringIO()
    call_command("stripe_sandbox", "advance", "--days", "1", stdout=out)

    assert "1 webhook retry due" in out.getvalue()
    queued = DBTaskResult.objects.order_by("enqueued_at")[before:]
    # (Beside it, the first delivery of the clock's test_helpers.test_clock.ready.)
    assert [t.args_kwargs["args"] for t in queued if t.args_kwargs["args"][0] == row.pk] == [
        [row.pk, 2]
    ]
    accepted = Recorder()
    assert deliver_pending(transport=accepted).succeeded == 2  # the retry and the clock's
    assert delivery_run.call(row.pk, 2) == "stale"
    assert Delivery.objects.get(pk=row.pk).state == Delivery.State.SUCCEEDED
