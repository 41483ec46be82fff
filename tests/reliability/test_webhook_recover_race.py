"""The recovery of missed events (billing/webhook_recover.py) racing Stripe's own
deliveries of the same events, over real HTTP to a live server: one delivery row,
trigger and task per event id, whoever comes first.

PostgreSQL only: SQLite runs one write transaction at a time, so nothing can race there.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django_tasks_db.models import DBTaskResult
from djstripe.models import WebhookEndpoint, WebhookEventTrigger

from billing import webhook_queue
from billing.models import WebhookDelivery
from tests.billing import stripe_fakes as sf
from tests.reliability.helpers import post_signed, together

pytestmark = pytest.mark.django_db(transaction=True)

EVENTS = 10


def test_recovery_and_deliveries_of_the_same_events_at_once_store_each_once(
    postgresql, webhook_url, fake_stripe, catalog, payer
):
    events: list[dict[str, Any]] = []
    for _ in range(EVENTS):
        sub = sf.subscription(cus=payer, prc=catalog["flowkit_monthly"])
        fake_stripe.add(sub)
        events.append(sf.event("customer.subscription.created", sub))
    endpoint = WebhookEndpoint.objects.get()

    def act(index: int) -> Any:
        # Per event: two deliveries by Stripe and two recoveries (a second run, or two
        # workers' runs), all released at once.
        event = events[index // 4]
        if index % 4 < 2:
            return post_signed(webhook_url, event)
        try:
            return webhook_queue.recovered_store(event, endpoint=endpoint, source="test")
        finally:
            connection.close()

    results = together(EVENTS * 4, act)

    assert [r for i, r in enumerate(results) if i % 4 < 2] == [200] * (EVENTS * 2)
    recovered = [r for i, r in enumerate(results) if i % 4 >= 2 and r is not None]
    deliveries = WebhookDelivery.objects.all()
    assert deliveries.count() == EVENTS
    assert WebhookEventTrigger.objects.count() == EVENTS
    assert DBTaskResult.objects.filter(task_path="billing.tasks.webhook_process").count() == EVENTS
    # Both deliveries counted, whether one of them or a recovery stored the event.
    assert set(deliveries.values_list("deliveries", flat=True)) == {2}
    assert sorted(recovered) == sorted(
        deliveries.filter(recovered_at__isnull=False).values_list("pk", flat=True)
    )
