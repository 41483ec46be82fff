from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta

import pytest
import stripe
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone
from django_tasks_db.models import DBTaskResult
from djstripe.models import Subscription, WebhookEventTrigger

from devtools.stripe_sandbox.delivery import MAX_ATTEMPTS, deliver_pending, delivery_run
from devtools.stripe_sandbox.events import endpoint_ensure, event_emit
from devtools.stripe_sandbox.models import Delivery
from tests.stripe_sandbox.helpers import checkout_create, pay


class Recorder:
    """An HTTP receiver that answers `status` and keeps what it got."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.sent: list[tuple[str, bytes, Mapping[str, str]]] = []

    def __call__(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        self.sent.append((url, body, headers))
        return self.status


def test_endpoint_is_created_once_with_a_secret(db):
    first = endpoint_ensure()
    again = endpoint_ensure()

    assert first.pk == again.pk
    assert first.secret.startswith("whsec_")
    assert first.enabled_events == ["*"]
    assert first.url == f"http://testserver/stripe/webhook/{first.djstripe_uuid}/"


def test_events_are_signed_so_stripe_python_verifies_them(stripe_customer):
    receiver = Recorder()

    deliver_pending(transport=receiver)

    url, body, headers = receiver.sent[0]
    endpoint = endpoint_ensure()
    event = stripe.Webhook.construct_event(body, headers["Stripe-Signature"], endpoint.secret)
    assert event.type == "customer.created"
    assert event.data.object.id == stripe_customer.id
    assert url == f"http://testserver/stripe/webhook/{endpoint.djstripe_uuid}/"
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body + b" ", headers["Stripe-Signature"], endpoint.secret)


def test_emitted_event_is_retrievable(stripe_customer):
    event = stripe.Event.list(type="customer.created").data[0]

    assert stripe.Event.retrieve(event.id).data.object.email == "customer@example.com"


def test_delivery_task_is_queued_with_the_change_and_not_without_it(db):
    endpoint_ensure()
    with pytest.raises(RuntimeError), transaction.atomic():  # noqa: PT012 (the raise is the failure that rolls the block back)
        event_emit("customer.created", {"id": "cus_x", "object": "customer"})
        raise RuntimeError("rolled back")

    assert not Delivery.objects.exists()
    assert not DBTaskResult.objects.filter(task_path__endswith="delivery_run").exists()

    event_emit("customer.created", {"id": "cus_y", "object": "customer"})
    queued = DBTaskResult.objects.get(task_path="devtools.stripe_sandbox.delivery.delivery_run")
    assert queued.args_kwargs["args"] == [Delivery.objects.get().pk, 1]


def test_refused_delivery_is_retried_with_growing_backoff_then_given_up(stripe_customer):
    receiver = Recorder(status=500)
    delays = []

    for _ in range(MAX_ATTEMPTS):
        started = timezone.now()
        deliver_pending(transport=receiver)
        row = Delivery.objects.get()
        delays.append(round((row.next_attempt_at - started).total_seconds()))

    assert row.state == Delivery.State.FAILED
    assert row.attempts == MAX_ATTEMPTS
    assert row.last_status == 500
    assert delays[:4] == [10, 40, 160, 640]
    tasks = DBTaskResult.objects.filter(task_path="devtools.stripe_sandbox.delivery.delivery_run")
    assert sorted(t.args_kwargs["args"][1] for t in tasks) == list(range(1, MAX_ATTEMPTS + 1))
    second = next(t for t in tasks if t.args_kwargs["args"][1] == 2)
    assert timedelta(seconds=5) < second.run_after - second.enqueued_at < timedelta(seconds=11)


def test_unreachable_receiver_is_retried(stripe_customer):
    def unreachable(url: str, body: bytes, headers: Mapping[str, str]) -> int:
        raise OSError("connection refused")

    deliver_pending(transport=unreachable)

    row = Delivery.objects.get()
    assert row.state == Delivery.State.PENDING
    assert "connection refused" in row.last_error


def test_stale_task_does_nothing(stripe_customer):
    deliver_pending(transport=Recorder())
    row = Delivery.objects.get()

    assert delivery_run.call(row.pk, 1) == "stale"
    assert Delivery.objects.get().attempts == 1


@pytest.mark.django_db(transaction=True)
def test_worker_delivers_over_http_to_djstripe(live_server, settings, client, prices, customer):
    settings.SITE_URL = live_server.url
    endpoint_ensure()
    stripe_customer = stripe.Customer.create(
        email=customer.email, metadata={"djstripe_subscriber": str(customer.pk)}
    )
    session = checkout_create(prices["flowkit_monthly"], stripe_customer.id)
    pay(client, session.id)

    call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload")

    rows = Delivery.objects.all()
    assert rows.exists()
    assert {r.state for r in rows} == {Delivery.State.SUCCEEDED}, [
        (r.event_id, r.last_error) for r in rows if r.state != Delivery.State.SUCCEEDED
    ]
    assert all(t.processed for t in WebhookEventTrigger.objects.all())
    assert Subscription.objects.get(id=stripe.checkout.Session.retrieve(session.id).subscription)
    assert json.loads(WebhookEventTrigger.objects.last().body)["object"] == "event"
