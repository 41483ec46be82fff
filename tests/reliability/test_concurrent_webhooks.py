"""Stripe's webhooks arriving at the same moment, over real HTTP to a live server.

PostgreSQL only: SQLite runs one write transaction at a time, so nothing can race there.
"""

from __future__ import annotations

import copy
import random
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.utils import timezone
from djstripe.models import Subscription

from accounts.models import User
from billing import webhook_queue
from billing.models import WebhookDelivery
from tests.billing import stripe_fakes as sf
from tests.reliability.helpers import post_signed, together, until, workers

pytestmark = pytest.mark.django_db(transaction=True)


def _with_latency(
    fake: sf.FakeStripe,
    *,
    seed: int,
    hold: Callable[[str, str], threading.Event | None] = lambda method, path: None,
) -> None:
    """Give the fake Stripe network latency: an answer shows the object as it was when
    Stripe read it and arrives tens of milliseconds later. An answer for which `hold`
    returns an event arrives only when that event is set (or after 3 s)."""
    pauses = random.Random(seed)
    answer = fake.request

    def slow_request(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        snapshot = answer(method, url, *args, **kwargs)
        held = hold(method.upper(), urlsplit(url).path)
        if held is not None:
            held.wait(3)
        else:
            threading.Event().wait(pauses.uniform(0, 0.03))
        return snapshot

    fake.request = slow_request  # type: ignore[method-assign]


def _version(sub: dict[str, Any], *, status: str, price: dict[str, Any]) -> dict[str, Any]:
    """The same subscription (same ids) in another state, as Stripe would return it."""
    changed = copy.deepcopy(sub)
    changed["status"] = status
    changed["items"]["data"][0]["price"] = price
    return changed


def test_twenty_simultaneous_events_of_one_subscription_leave_stripes_final_state(
    postgresql, webhook_url, fake_stripe, catalog, payer, customer, monkeypatch
):
    """The subscription changes at Stripe while its events are being delivered; every
    event is sent after the change it reports, as Stripe does, the deliveries overlap
    and two workers (each at the default concurrency) process them as they come. Even
    when a processing's read of the subscription from just before the last change is
    slow to arrive (scripted below), the local copy and the plan end as Stripe's."""
    flowkit, launchpack = catalog["flowkit_monthly"], catalog["launchpack_monthly"]
    first = sf.subscription(cus=payer, prc=flowkit, status="incomplete")
    renewal_failed_at = int((timezone.now() - timedelta(days=1)).timestamp())
    past_due = _version(first, status="past_due", price=launchpack)
    past_due["items"]["data"][0]["current_period_start"] = renewal_failed_at
    # Stripe's history of the subscription: paid, upgraded, a renewal failed then paid,
    # downgraded. The last state is the one every copy must end in.
    history = [
        first,
        _version(first, status="active", price=flowkit),
        _version(first, status="active", price=launchpack),
        past_due,
        _version(first, status="active", price=launchpack),
        _version(first, status="active", price=flowkit),
    ]
    invoices = [sf.invoice(cus=payer, sub=first, status="paid") for _ in history]
    invoices[3] = sf.invoice(cus=payer, sub=first, status="open")
    session = sf.session(cus=payer, mode="subscription", user_id=customer.pk, sub=first)
    fake_stripe.add(first, session, *invoices)

    def sub_event(kind: str, version: int) -> tuple[int, dict[str, Any]]:
        return version, sf.event(kind, history[version])

    def invoice_event(kind: str, version: int) -> tuple[int, dict[str, Any]]:
        return version, sf.event(kind, invoices[version])

    deliveries = [
        sub_event("customer.subscription.created", 0),
        invoice_event("invoice.created", 0),
        invoice_event("invoice.paid", 1),
        sub_event("customer.subscription.updated", 1),
        (1, sf.event("checkout.session.completed", session)),
        sub_event("customer.subscription.updated", 2),
        invoice_event("invoice.created", 2),
        invoice_event("invoice.paid", 2),
        invoice_event("invoice.payment_succeeded", 2),
        sub_event("customer.subscription.updated", 3),
        invoice_event("invoice.created", 3),
        invoice_event("invoice.payment_failed", 3),
        invoice_event("invoice.paid", 4),
        sub_event("customer.subscription.updated", 4),
        invoice_event("invoice.payment_succeeded", 4),
        sub_event("customer.subscription.updated", 5),
        invoice_event("invoice.created", 5),
        invoice_event("invoice.finalized", 5),
        invoice_event("invoice.paid", 5),
        invoice_event("invoice.payment_succeeded", 5),
    ]
    assert len(deliveries) == 20
    at_stripe = {"version": 0}
    changed = threading.Condition()
    last_change = len(history) - 1
    # The worst interleaving, scripted: the delivery of the update before the last one
    # reads the subscription just before its last change, and Stripe's answer is slow to
    # arrive: until every other delivery is done (or 3 s, if they are waiting for it).
    slow_event = deliveries[13][1]
    assert slow_event["type"] == "customer.subscription.updated"
    in_flight, others_done = threading.Event(), threading.Event()
    finished: list[int] = []
    processing = threading.local()

    event_process = webhook_queue._event_process

    def note_event(delivery: WebhookDelivery, **kwargs: Any) -> None:
        processing.event_id = delivery.event_id
        try:
            event_process(delivery, **kwargs)
        finally:
            processing.event_id = None

    monkeypatch.setattr(webhook_queue, "_event_process", note_event)

    def hold(method: str, path: str) -> threading.Event | None:
        if (
            getattr(processing, "event_id", None) == slow_event["id"]
            and (method, path) == ("GET", f"/v1/subscriptions/{first['id']}")
            and not in_flight.is_set()
        ):
            in_flight.set()
            return others_done
        return None

    _with_latency(fake_stripe, seed=20, hold=hold)
    pauses = random.Random(20).choices([0.0, 0.01, 0.03, 0.06], k=len(history))

    def stripe_changes() -> None:
        for version in range(1, len(history)):
            if version == last_change:
                in_flight.wait(10)
            threading.Event().wait(pauses[version])
            # Replaced, never edited in place: request threads may be serialising it.
            fake_stripe.objects[first["id"]] = history[version]
            with changed:
                at_stripe["version"] = version
                changed.notify_all()

    def act(index: int) -> int:
        if index == len(deliveries):
            stripe_changes()
            return 0
        version, event = deliveries[index]
        with changed:
            changed.wait_for(lambda: at_stripe["version"] >= version)
        status = post_signed(webhook_url, event)
        with changed:
            finished.append(index)
            if len(finished) == len(deliveries) - 1:
                others_done.set()
        return status

    with workers(2):  # 2 x WORKER_CONCURRENCY threads, as deployed
        statuses = together(len(deliveries) + 1, act)[:-1]
        # The slow one holds the customer's lock: the others wait, or time out and come
        # back on their backoff; all must end processed.
        until(
            lambda: WebhookDelivery.objects.filter(state="processed").count() == len(deliveries),
            "every delivery is processed",
            seconds=180,
        )

    assert statuses == [200] * len(deliveries)
    assert in_flight.is_set()  # the scripted slow read did happen
    assert not WebhookDelivery.objects.exclude(state="processed").exists()
    final = fake_stripe.objects[first["id"]]
    [local] = Subscription.objects.all()
    assert local.id == final["id"]
    assert local.stripe_data["status"] == final["status"] == "active"
    local_price = local.stripe_data["items"]["data"][0]["price"]["id"]
    assert local_price == final["items"]["data"][0]["price"]["id"] == flowkit["id"]
    assert User.objects.get(pk=customer.pk).plan == flowkit["lookup_key"].split("_")[0]
