"""Many workers, many customers: one customer's events are processed one at a time (the
customer's advisory lock, billing/webhook_queue.py), different customers' side by side,
and nobody deadlocks.

Three buyers pay at the Stripe sandbox; their events (about ten each) are acknowledged,
then four django-tasks-db workers (threads, each with its own connection) process them
with the sandbox answering like Stripe, after a round trip (STRIPE_SANDBOX_LATENCY_MS),
so that processing takes long enough to overlap. Each processing records when it
started and ended (a wrapper around `_event_process`, which runs under the lock).

PostgreSQL only: SQLite runs one write transaction at a time, so nothing could overlap.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from itertools import combinations
from typing import Any

import pytest

from billing import webhook_queue
from billing.models import PlanChange, WebhookDelivery
from onboarding.models import OnboardingMessage
from tests.reliability.helpers import until, workers
from tests.reliability.sandbox_checkout import buyer_checkout, sandbox  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)

BUYERS = {
    "ada@example.com": "flowkit",
    "ben@example.com": "launchpack",
    "cy@example.com": "flowkit",
}


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


@pytest.mark.usefixtures("postgresql", "sandbox")
def test_one_customers_events_one_at_a_time_different_customers_in_parallel(
    client,
    settings,
    monkeypatch,
):
    users = {email: buyer_checkout(client, email, plan) for email, plan in BUYERS.items()}
    keys = dict(WebhookDelivery.objects.values_list("pk", "customer_key"))
    # The catalogue's events (products, prices: each its own key) come along.
    per_customer = Counter(key for key in keys.values() if key.startswith("cus_"))
    assert len(per_customer) == len(BUYERS), "one Stripe customer per buyer"
    assert min(per_customer.values()) >= 5  # several events per customer

    intervals: dict[str, list[tuple[float, float]]] = defaultdict(list)
    record = threading.Lock()
    process = webhook_queue._event_process

    def timed(delivery: WebhookDelivery, **kwargs: Any) -> None:
        start = time.monotonic()
        process(delivery, **kwargs)
        with record:
            intervals[delivery.customer_key].append((start, time.monotonic()))

    monkeypatch.setattr(webhook_queue, "_event_process", timed)
    settings.STRIPE_SANDBOX_LATENCY_MS = 40  # Stripe's round trip, for each call

    with workers(2):  # 2 x WORKER_CONCURRENCY threads, as deployed
        until(
            lambda: not WebhookDelivery.objects.exclude(state="processed").exists(),
            "every delivery is processed",
            seconds=300,
        )

    # No deadlock, no lock given up on for too long: each processed at its first try.
    rows = WebhookDelivery.objects.all()
    assert {(d.state, d.attempts, d.last_error) for d in rows} == {("processed", 0, "")}
    assert sum(len(spans) for spans in intervals.values()) == len(keys)  # each once
    # One customer's: never two at once.
    for key, spans in intervals.items():
        for a, b in combinations(spans, 2):
            assert not _overlap(a, b), f"two events of {key} were processed at once"
    # Different customers': side by side, at least once.
    assert any(
        _overlap(a, b)
        for key_a, key_b in combinations(per_customer, 2)
        for a in intervals[key_a]
        for b in intervals[key_b]
    ), "no two customers' events were processed at the same time"
    for email, plan in BUYERS.items():
        user = users[email]
        user.refresh_from_db()
        assert user.plan == plan
        assert PlanChange.objects.filter(user=user).count() == 1
        assert OnboardingMessage.objects.filter(user=user, channel="email").count() == 1
