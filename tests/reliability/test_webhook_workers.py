"""Queued Stripe webhooks (billing/webhook_queue.py) under concurrency and outages: the
endpoint only acknowledges, workers (django-tasks-db's, in threads: they share the fake
Stripe with the test) process each delivery once, under the customer's lock.

PostgreSQL only where transactions must overlap (the `postgresql` fixture); the outage
test runs on SQLite too.
"""

from __future__ import annotations

import threading
from contextlib import ExitStack
from datetime import timedelta

import pytest
import stripe
from django.core import mail
from django.db import connection, transaction
from django.utils import timezone
from djstripe.models import Event, WebhookEventTrigger

from accounts.models import User
from billing import webhook_queue
from billing.models import PlanChange, WebhookDelivery
from onboarding.models import OnboardingMessage
from tests.billing import stripe_fakes as sf
from tests.reliability.helpers import checkout_event, post_signed, together, until, workers

pytestmark = pytest.mark.django_db(transaction=True)

Pending = WebhookDelivery.State.PENDING


def test_fifty_simultaneous_duplicates_are_acknowledged_and_processed_once_by_two_workers(
    postgresql, webhook_url, fake_stripe, catalog, payer, customer
):
    sub = sf.subscription(cus=payer, prc=catalog["flowkit_monthly"])
    session = sf.session(cus=payer, mode="subscription", user_id=customer.pk, sub=sub)
    fake_stripe.add(sub, session)
    event = sf.event("checkout.session.completed", session)

    with workers(2):  # 2 x WORKER_CONCURRENCY threads, as deployed
        statuses = together(50, lambda _: post_signed(webhook_url, event))
        until(
            lambda: OnboardingMessage.objects.filter(user=customer, status="sent").exists(),
            "the delivery is processed and the welcome sent",
        )

    assert statuses == [200] * 50
    [delivery] = WebhookDelivery.objects.all()
    assert (delivery.event_id, delivery.deliveries) == (event["id"], 50)
    assert (delivery.state, delivery.attempts) == (WebhookDelivery.State.PROCESSED, 0)
    # One body stored, one event, one plan change, one message, one email.
    assert WebhookEventTrigger.objects.count() == 1
    assert Event.objects.filter(id=event["id"]).count() == 1
    customer.refresh_from_db()
    assert customer.plan == "flowkit"
    assert PlanChange.objects.filter(user=customer).count() == 1
    assert OnboardingMessage.objects.filter(user=customer, channel="email").count() == 1
    assert [m.to for m in mail.outbox] == [[customer.email]]


def _process_in_thread(delivery: WebhookDelivery, outcome: list[str]) -> threading.Thread:
    """`delivery_process` in a thread of its own (its own connection), as a worker's."""
    worker = threading.Thread(
        target=lambda: (
            outcome.append(webhook_queue.delivery_process(delivery.pk)),
            connection.close(),
        ),
        daemon=True,
    )
    worker.start()
    return worker


def _outcome_while_locked(delivery: WebhookDelivery, *, within: float) -> list[str]:
    """`delivery_process`'s outcome in another thread while this one holds the customer's
    lock (the test's connection stands for the other worker); it must come `within` s."""
    outcome: list[str] = []
    with transaction.atomic():
        webhook_queue.customer_lock(delivery.customer_key)
        worker = _process_in_thread(delivery, outcome)
        worker.join(timeout=within)
        assert not worker.is_alive(), f"no outcome within {within} s: it waited for the lock"
    return outcome


def test_a_delivery_whose_customer_is_busy_waits_for_the_lock_and_is_processed_once_freed(
    postgresql, deliver, fake_stripe, catalog
):
    """Another worker holds the customer's lock: the delivery waits for it (up to
    LOCK_WAIT), then is processed, once, reading Stripe after the other's commit."""
    user, plan, event = checkout_event(fake_stripe, catalog, 1)
    assert deliver(event, process=False).status_code == 200
    delivery = WebhookDelivery.objects.get(event_id=event["id"])
    outcome: list[str] = []

    with transaction.atomic():  # the test's connection stands for the other worker
        webhook_queue.customer_lock(delivery.customer_key)
        worker = _process_in_thread(delivery, outcome)
        worker.join(timeout=0.5)
        assert worker.is_alive(), "the delivery did not wait for the customer's lock"
        delivery.refresh_from_db()
        assert delivery.state == Pending

    worker.join(timeout=30)
    assert outcome == ["processed"]
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_error) == ("processed", 0, "")
    user.refresh_from_db()
    assert user.plan == plan
    assert PlanChange.objects.filter(user=user).count() == 1


def test_a_delivery_whose_customer_stays_busy_goes_back_to_the_queue_uncounted_then_is_processed(
    postgresql, deliver, fake_stripe, catalog, monkeypatch
):
    """The lock is still taken after LOCK_WAIT: the delivery goes back to the queue for
    about a second, not counted as a failed attempt."""
    monkeypatch.setattr(webhook_queue, "LOCK_WAIT", timedelta(seconds=0.3))
    user, plan, event = checkout_event(fake_stripe, catalog, 1)
    assert deliver(event, process=False).status_code == 200
    delivery = WebhookDelivery.objects.get(event_id=event["id"])

    assert _outcome_while_locked(delivery, within=30) == ["customer busy"]
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_error) == (Pending, 0, "")
    assert delivery.next_attempt_at is not None
    assert timezone.now() < delivery.next_attempt_at < timezone.now() + timedelta(seconds=2)
    user.refresh_from_db()
    assert user.plan == "starter"

    # Its turn comes: processed, once.
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    assert webhook_queue.delivery_process(delivery.pk) == "processed"
    user.refresh_from_db()
    assert user.plan == plan
    assert PlanChange.objects.filter(user=user).count() == 1


def test_the_wait_for_a_customer_lock_leaves_the_transactions_other_locks_their_timeout(
    postgresql,
):
    """lock_timeout bounds the wait for the customer's lock only: once it is held, the
    transaction's other lock waits (the delivery's row, the handlers') have the
    connection's own setting again."""
    seen: list[str] = []

    def other_worker() -> None:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '7s'")
            webhook_queue.customer_lock("cus_waited")
            cursor.execute("SHOW lock_timeout")
            seen.append(cursor.fetchone()[0])
        connection.close()

    with transaction.atomic():
        webhook_queue.customer_lock("cus_waited")
        worker = threading.Thread(target=other_worker, daemon=True)
        worker.start()
        worker.join(timeout=0.5)
        assert worker.is_alive(), "it did not wait for the lock"
    worker.join(timeout=30)

    assert seen == ["7s"]


@pytest.mark.parametrize("case", ["a thread already waits for the customer", "concurrency 1"])
def test_a_delivery_whose_customer_is_busy_goes_back_to_the_queue_at_once_when_it_may_not_wait(
    postgresql, deliver, fake_stripe, catalog, settings, case
):
    """One thread of a process waits per customer, and at most half of its threads: a
    second event of the customer, or any with WORKER_CONCURRENCY 1, goes back to the queue
    at once instead of taking a thread from other customers' events."""
    _user, _plan, event = checkout_event(fake_stripe, catalog, 1)
    assert deliver(event, process=False).status_code == 200
    delivery = WebhookDelivery.objects.get(event_id=event["id"])

    with ExitStack() as stack:
        if case == "concurrency 1":
            settings.WORKER_CONCURRENCY = 1
        else:  # this thread stands for the one already waiting
            assert stack.enter_context(webhook_queue._lock_waiters.waiting(delivery.customer_key))
        assert _outcome_while_locked(delivery, within=2) == ["customer busy"]

    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == (Pending, 0)


def _retries_due() -> None:
    WebhookDelivery.objects.filter(state=Pending).update(next_attempt_at=timezone.now())


def test_stripe_unreachable_then_back_every_event_processed_once(deliver, fake_stripe, catalog):
    """Stripe answers 500 for a while: every delivery is acknowledged, retried with a
    growing backoff, and processed once when Stripe is back; nothing lost, nothing
    twice, Stripe's redeliveries meanwhile included."""
    bought = [checkout_event(fake_stripe, catalog, n) for n in range(4)]
    fake_stripe.fail = stripe.APIConnectionError("Stripe is unreachable")

    for _, _, event in bought:
        assert deliver(event).status_code == 200  # acknowledged; processing fails
    first = {d.pk: d.next_attempt_at for d in WebhookDelivery.objects.all()}
    assert [(d.state, d.attempts) for d in WebhookDelivery.objects.all()] == [(Pending, 1)] * 4
    assert all(at is not None and at > timezone.now() for at in first.values())

    _retries_due()
    for _, _, event in bought:  # Stripe redelivers; the retry fails again
        assert deliver(event).status_code == 200
    second = {d.pk: d for d in WebhookDelivery.objects.all()}
    assert all((d.state, d.attempts, d.deliveries) == (Pending, 2, 2) for d in second.values())
    # Backoff: the second wait (10 s ± 20 %) is longer than the first (5 s ± 20 %).
    assert all(d.next_attempt_at - timezone.now() > timedelta(seconds=7) for d in second.values())
    assert PlanChange.objects.count() == 0

    fake_stripe.fail = None
    _retries_due()
    assert webhook_queue.process_due() == 4
    assert webhook_queue.process_due() == 0
    for _, _, event in bought:  # a late redelivery changes nothing
        assert deliver(event).status_code == 200

    assert set(WebhookDelivery.objects.values_list("state", flat=True)) == {"processed"}
    plans = {user.email: plan for user, plan, _ in bought}
    assert dict(User.objects.filter(email__in=plans).values_list("email", "plan")) == plans
    changes = PlanChange.objects.values_list("user__email", "new_plan")
    assert sorted(changes) == sorted(plans.items())
    assert OnboardingMessage.objects.filter(channel="email").count() == 4
