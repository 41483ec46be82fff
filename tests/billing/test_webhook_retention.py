"""Retention of Stripe webhook bodies (smartflow/retention.py, billing/webhook_queue.py):
a processed delivery's body goes after its period, the delivery row stays, and "process
again" still works from dj-stripe's stored event, or says clearly why it cannot."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from djstripe.models import Event

from billing.models import BillingAlert, WebhookDelivery
from billing.webhook_queue import process_again, process_due
from smartflow.retention import retention_purge
from tests.billing import stripe_fakes as sf

pytestmark = pytest.mark.django_db


@pytest.fixture
def created(fake_stripe, catalog, payer) -> dict:
    """customer.subscription.created for a FlowKit subscription Stripe knows."""
    sub = sf.subscription(cus=payer, prc=catalog["flowkit_monthly"])
    fake_stripe.add(sub)
    return sf.event("customer.subscription.created", sub)


def _received_ago(days: int) -> None:
    WebhookDelivery.objects.update(received_at=timezone.now() - timedelta(days=days))


def test_a_processed_body_past_its_period_is_blanked_and_the_delivery_kept(
    settings, deliver, created
):
    settings.RETENTION_WEBHOOK_BODY_DAYS = 30
    deliver(created)
    _received_ago(31)

    assert retention_purge()["webhook_bodies"] == 1
    assert retention_purge()["webhook_bodies"] == 0  # once

    delivery = WebhookDelivery.objects.select_related("trigger").get()
    assert delivery.trigger.body == ""
    assert delivery.trigger.headers == {}
    assert delivery.body_purged_at is not None
    assert (delivery.event_id, delivery.state) == (created["id"], "processed")


def test_a_recent_or_failed_delivery_keeps_its_body(settings, deliver, created, catalog, customer):
    settings.RETENTION_WEBHOOK_BODY_DAYS = 30
    deliver(created)  # processed, 29 days ago
    _received_ago(29)
    # A subscription Stripe no longer knows: its re-read is a 404, the delivery fails.
    gone = sf.subscription(cus=sf.customer(email=customer.email), prc=catalog["flowkit_monthly"])
    deliver(sf.event("customer.subscription.updated", gone))
    WebhookDelivery.objects.filter(state="failed").update(
        received_at=timezone.now() - timedelta(days=90)
    )

    assert retention_purge()["webhook_bodies"] == 0
    assert not WebhookDelivery.objects.filter(trigger__body="").exists()


def test_process_again_after_the_purge_runs_from_the_stored_event(
    settings, deliver, created, fake_stripe, customer
):
    deliver(created)
    _received_ago(31)
    retention_purge()
    fake_stripe.objects[created["data"]["object"]["id"]]["status"] = "canceled"

    process_again(WebhookDelivery.objects.all())
    assert process_due() == 1

    customer.refresh_from_db()
    assert customer.plan == "starter"


def test_process_again_with_neither_body_nor_stored_event_fails_clearly(deliver, created):
    deliver(created)
    _received_ago(31)
    retention_purge()
    Event.objects.all().delete()

    process_again(WebhookDelivery.objects.all())
    process_due()

    delivery = WebhookDelivery.objects.get()
    assert delivery.state == "failed"  # not retried for three days
    assert "body was removed on" in delivery.last_error
    assert "RETENTION_WEBHOOK_BODY_DAYS" in delivery.last_error
    assert BillingAlert.objects.filter(stripe_id=created["id"]).exists()


def test_the_admin_says_when_the_body_was_removed(admin_client, deliver, created):
    deliver(created)
    _received_ago(31)
    retention_purge()
    delivery = WebhookDelivery.objects.get()

    page = admin_client.get(f"/admin/billing/webhookdelivery/{delivery.pk}/change/")

    assert "removed on" in page.content.decode()
    assert "by retention" in page.content.decode()
