"""Stripe events never received, recovered from Stripe's Events API
(billing/webhook_recover.py, `billing_webhooks --recover`), with the sandbox as Stripe:
its events are made by a real checkout and cancellation, its deliveries lost on purpose."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
import stripe
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from django_tasks_db.models import DBTaskResult
from djstripe.models import Event, Subscription, WebhookEndpoint, WebhookEventTrigger

from billing import webhook_queue, webhook_recover
from billing.handlers import HANDLERS
from billing.models import WebhookDelivery, WebhookRecoverRun
from billing.stripe_api import api_kwargs
from billing.webhook_queue import process_due
from devtools.stripe_sandbox import store
from devtools.stripe_sandbox.delivery import deliver_pending
from devtools.stripe_sandbox.models import Delivery
from smartflow import workers
from tests.sandbox_app import app_transport

pytestmark = pytest.mark.django_db

PROCESS_TASK = "billing.tasks.webhook_process"


def _run(*args: str) -> str:
    out = StringIO()
    call_command("billing_webhooks", "--recover", *args, stdout=out)
    return out.getvalue()


def _deliver(client: Any) -> None:
    assert deliver_pending(transport=app_transport(client)).failed == 0


def _handled_events() -> list[str]:
    """Ids of the sandbox's events of the types we handle: what we should have received."""
    return [e["id"] for e in store.all_of("event") if e["type"] in HANDLERS]


def _lose_pending_deliveries() -> list[str]:
    """The webhooks the sandbox has not sent yet never arrive (the app was down for
    longer than Stripe retries): their event ids."""
    pending = Delivery.objects.filter(state=Delivery.State.PENDING)
    lost = list(dict.fromkeys(pending.values_list("event_id", flat=True)))
    pending.delete()
    return lost


def _forget(event_ids: list[str]) -> None:
    """As if these events had never been delivered: no delivery, trigger or Event."""
    deliveries = WebhookDelivery.objects.filter(event_id__in=event_ids)
    WebhookEventTrigger.objects.filter(
        pk__in=deliveries.values_list("trigger_id", flat=True)
    ).delete()
    deliveries.delete()
    Event.objects.filter(id__in=event_ids).delete()


@pytest.fixture(autouse=True)
def no_grace(monkeypatch):
    """Events made a moment ago are recoverable (the grace has its own test)."""
    monkeypatch.setattr(webhook_recover, "GRACE", timedelta(0))


@pytest.fixture
def subscribed(client, customer, fake_stripe, settings):
    """A FlowKit subscriber who paid in the sandbox's Checkout; every webhook delivered
    and processed."""
    settings.SITE_URL = "http://testserver"
    call_command("stripe_catalog", stdout=StringIO())
    client.force_login(customer)
    checkout = client.post("/billing/checkout/", {"plan": "flowkit", "interval": "monthly"})
    client.post(
        checkout["Location"].removeprefix("http://testserver"),
        {"card_number": "4242 4242 4242 4242"},
    )
    _deliver(client)
    customer.refresh_from_db()
    assert customer.plan == "flowkit"
    return client


def test_lost_and_forgotten_events_come_back_once_and_the_plan_follows(subscribed, customer):
    delivered = _handled_events()
    forgotten = delivered[: len(delivered) // 2 + 1]
    _forget(forgotten)
    stripe.Subscription.cancel(Subscription.objects.get().id, **api_kwargs())
    lost = [i for i in _lose_pending_deliveries() if i in set(_handled_events())]
    assert lost  # customer.subscription.deleted, at least
    customer.refresh_from_db()
    assert customer.plan == "flowkit"  # stale: the cancellation never arrived

    everything = _handled_events()

    out = _run()
    processed = process_due()

    missing = set(forgotten) | set(lost)
    assert out.startswith(
        f"Recovered from Stripe's events of the last 2d: {len(everything)} listed, "
        f"{len(everything) - len(missing)} received already, {len(missing)} never received, "
        "queued.\n"
    )
    assert processed == len(missing)
    recovered = WebhookDelivery.objects.filter(recovered_at__isnull=False)
    assert set(recovered.values_list("event_id", flat=True)) == missing
    assert set(recovered.values_list("state", flat=True)) == {"processed"}
    assert set(recovered.values_list("deliveries", flat=True)) == {0}
    here = WebhookDelivery.objects.filter(event_id__in=everything)
    assert here.count() == len(everything)  # one per event id
    tasks = DBTaskResult.objects.filter(task_path=PROCESS_TASK)
    recovered_ids = set(recovered.values_list("pk", flat=True))
    assert sorted(
        t.args_kwargs["args"][0] for t in tasks if t.args_kwargs["args"][0] in recovered_ids
    ) == sorted(recovered_ids)
    trigger = recovered.get(event_type="customer.subscription.deleted").trigger
    assert trigger.processed
    assert trigger.headers == {"X-SmartFlow-Recovered": "billing_webhooks --recover"}
    assert Event.objects.filter(id__in=missing).count() == len(missing)
    customer.refresh_from_db()
    assert customer.plan == "starter"


def test_a_second_recovery_queues_nothing(subscribed):
    _forget(_handled_events()[:2])
    _run()
    tasks = DBTaskResult.objects.filter(task_path=PROCESS_TASK).count()

    out = _run()

    assert ", 0 never received, queued." in out
    assert DBTaskResult.objects.filter(task_path=PROCESS_TASK).count() == tasks


def test_an_event_processed_before_the_queue_existed_is_not_recovered(subscribed):
    """dj-stripe processed it in the request then: its Event is there, no delivery."""
    processed_before = _handled_events()[:2]
    WebhookDelivery.objects.filter(event_id__in=processed_before).delete()

    out = _run()

    assert ", 0 never received, queued." in out
    assert not WebhookDelivery.objects.filter(event_id__in=processed_before).exists()


def test_a_webhook_arriving_after_the_recovery_only_counts(subscribed, client):
    stripe.Subscription.modify(
        Subscription.objects.get().id, cancel_at_period_end=True, **api_kwargs()
    )
    [event_id] = [
        i
        for i in Delivery.objects.values_list("event_id", flat=True).distinct()
        if i in set(_handled_events()) and not WebhookDelivery.objects.filter(event_id=i)
    ]
    _run()

    _deliver(client)  # Stripe's retry gets through after all

    delivery = WebhookDelivery.objects.get(event_id=event_id)
    assert delivery.recovered_at is not None
    assert delivery.deliveries == 1
    assert delivery.state == "processed"
    assert (
        DBTaskResult.objects.filter(task_path=PROCESS_TASK, args_kwargs__args=[delivery.pk]).count()
        == 1
    )


def test_recovered_events_are_claimed_after_the_live_ones(subscribed, client):
    forgotten = _handled_events()[:2]
    _forget(forgotten)
    _run()
    stripe.Subscription.modify(
        Subscription.objects.get().id, cancel_at_period_end=True, **api_kwargs()
    )
    _deliver(client)  # a live webhook, stored after the recovery's

    recovered = set(
        WebhookDelivery.objects.filter(recovered_at__isnull=False).values_list("pk", flat=True)
    )
    live = WebhookDelivery.objects.latest("received_at").pk
    ready = DBTaskResult.objects.ready().filter(task_path=PROCESS_TASK)  # in claim order
    claimed = [t.args_kwargs["args"][0] for t in ready]

    assert len(recovered) == len(forgotten)
    assert all(claimed.index(live) < claimed.index(pk) for pk in recovered)
    assert {t.priority for t in ready if t.args_kwargs["args"][0] in recovered} == {
        webhook_queue.RECOVERED_PRIORITY
    }


def test_a_delivery_stored_meanwhile_wins_the_race(subscribed, monkeypatch):
    """Between the recovery's check and its insert a webhook of the same event commits:
    the unique event id refuses the recovery's rows, and nothing of it is left."""
    event_id = _handled_events()[0]
    event = stripe.Event.retrieve(event_id, **api_kwargs()).to_dict()
    triggers = WebhookEventTrigger.objects.count()
    tasks = DBTaskResult.objects.count()
    monkeypatch.setattr(webhook_queue, "known_event_ids", lambda ids: set())

    stored = webhook_queue.recovered_store(
        event, endpoint=WebhookEndpoint.objects.get(), source="test"
    )

    assert stored is None
    assert WebhookEventTrigger.objects.count() == triggers
    assert DBTaskResult.objects.count() == tasks
    assert WebhookDelivery.objects.get(event_id=event_id).recovered_at is None


def test_dry_run_lists_and_queues_nothing(subscribed):
    forgotten = _handled_events()[:2]
    _forget(forgotten)

    out = StringIO()
    call_command("billing_webhooks", "--recover", "--dry-run", "-v", "2", stdout=out)

    assert "2 never received, would be queued (dry run)." in out.getvalue()
    assert all(f"  {i}\n" in out.getvalue() for i in forgotten)
    assert not WebhookDelivery.objects.filter(event_id__in=forgotten).exists()


def test_only_our_types_and_the_period_asked_are_listed(subscribed):
    assert any(e["type"] not in HANDLERS for e in store.all_of("event"))  # customer.created...
    _forget(_handled_events())
    with store.clock_at(store.now() + 3 * 3600):
        stripe.Subscription.cancel(Subscription.objects.get().id, **api_kwargs())
    _lose_pending_deliveries()

    found = webhook_recover.recover(
        since=timedelta(hours=1), now=timezone.now() + timedelta(hours=3)
    )

    # Only the cancellation's events are in the last hour, and only its handled ones count.
    cancelled = [
        i for i in _handled_events() if store.find(i, "event")["created"] >= store.now() - 3600
    ]
    assert cancelled
    assert found.as_dict() == {"listed": len(cancelled), "already": 0, "queued": len(cancelled)}
    recovered = WebhookDelivery.objects.filter(recovered_at__isnull=False)
    assert set(recovered.values_list("event_id", flat=True)) == set(cancelled)


def test_an_event_younger_than_the_grace_is_left_to_stripe(subscribed, monkeypatch):
    monkeypatch.setattr(webhook_recover, "GRACE", timedelta(minutes=5))
    _forget(_handled_events())

    now = timezone.now()
    early = webhook_recover.recover(since=timedelta(days=1), now=now)
    later = webhook_recover.recover(since=timedelta(days=1), now=now + timedelta(minutes=6))

    assert early.listed == 0
    assert later.queued == len(_handled_events())


@pytest.mark.parametrize(
    ("since", "says"),
    [
        ("2", "give a number and a unit"),
        ("2w", "give a number and a unit"),
        ("-1d", "give a number and a unit"),
        ("", "give a number and a unit"),
        ("0h", "must be more than nothing"),
        ("31d", "keeps events for 30 days only"),
        ("721h", "keeps events for 30 days only"),
    ],
)
def test_since_refuses_what_it_cannot_do(since, says):
    with pytest.raises(CommandError, match=says):
        _run(f"--since={since}")


@pytest.mark.parametrize(
    ("since", "expected"),
    [
        ("2d", timedelta(days=2)),
        ("12h", timedelta(hours=12)),
        ("30m", timedelta(minutes=30)),
        ("30d", timedelta(days=30)),
        (" 720h ", timedelta(days=30)),
    ],
)
def test_since_reads_days_hours_and_minutes(since, expected):
    assert webhook_recover.since_parse(since) == expected


def test_without_an_endpoint_it_says_so_and_stops(fake_stripe):
    WebhookEndpoint.objects.all().delete()

    with pytest.raises(CommandError, match="No enabled test-mode Stripe webhook endpoint"):
        _run()


@pytest.mark.parametrize("option", ["--dry-run", "--since=2d"])
def test_since_and_dry_run_need_recover(db, option):
    with pytest.raises(CommandError, match="--since and --dry-run go with --recover"):
        call_command("billing_webhooks", option, stdout=StringIO())


# --- Daily, by the workers --------------------------------------------------------------


def test_the_workers_queue_one_recovery_a_day(settings, subscribed, customer):
    settings.WEBHOOK_RECOVER_EVERY_HOURS = 24
    now = timezone.now()

    workers.recover(now=now)
    workers.recover(now=now + timedelta(minutes=1))  # the next round: already queued
    [run] = WebhookRecoverRun.objects.all()
    [queued] = DBTaskResult.objects.filter(task_path="billing.tasks.webhook_recover_run")
    assert queued.status == "READY"
    assert queued.args_kwargs["args"] == [run.pk]
    workers.recover(now=now + timedelta(days=1))
    assert WebhookRecoverRun.objects.count() == 2

    stripe.Subscription.cancel(Subscription.objects.get().id, **api_kwargs())
    lost = [i for i in _lose_pending_deliveries() if i in set(_handled_events())]
    from billing.tasks import webhook_recover_run

    webhook_recover_run.call(run.pk)
    process_due()

    run.refresh_from_db()
    assert run.finished_at is not None
    assert run.result == {
        "listed": len(_handled_events()),
        "already": len(_handled_events()) - len(lost),
        "queued": len(lost),
    }
    customer.refresh_from_db()
    assert customer.plan == "starter"


def test_the_daily_recovery_can_be_off(settings, db):
    settings.WEBHOOK_RECOVER_EVERY_HOURS = 0

    workers.recover()

    assert not WebhookRecoverRun.objects.exists()


def test_the_daily_run_looks_back_to_the_last_finished_one(settings, db):
    settings.WEBHOOK_RECOVER_EVERY_HOURS = 24
    now = timezone.now()
    day = timedelta(days=1)
    WebhookRecoverRun.objects.create(
        window_start=webhook_recover.window_start(now - 5 * day), finished_at=now - 5 * day
    )
    run = WebhookRecoverRun.objects.create(window_start=webhook_recover.window_start(now))

    back = webhook_recover.lookback(run, now=now)

    assert 6 * day <= back <= 7 * day
    WebhookRecoverRun.objects.exclude(pk=run.pk).update(
        window_start=webhook_recover.window_start(now - 40 * day)
    )
    assert webhook_recover.lookback(run, now=now) == webhook_recover.EVENTS_KEPT
    WebhookRecoverRun.objects.exclude(pk=run.pk).delete()
    assert webhook_recover.lookback(run, now=now) == 2 * day


@pytest.mark.parametrize(
    ("delta", "said"),
    [
        (timedelta(days=2), "2 days"),
        (timedelta(days=1), "1 day"),
        (timedelta(hours=12), "12 hours"),
        (timedelta(minutes=90), "90 minutes"),
        (timedelta(seconds=45), "45 seconds"),
    ],
)
def test_the_log_says_the_period_in_words(delta, said):
    # Not "2 days, 0:00:00", timedelta's own text.
    assert webhook_recover._span(delta) == said
