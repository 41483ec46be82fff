"""A new billing alert is emailed to ADMINS once (billing/alerts.py, LOGGING's
mail_admins): not again when Stripe redelivers or a worker retries, and not for an
attempt whose transaction rolled back."""

from __future__ import annotations

import pytest
from django.db import transaction

from billing.entitlements import unknown_prices_record
from billing.models import BillingAlert
from tests.billing import stripe_fakes as sf

pytestmark = pytest.mark.django_db

ADMINS = [("Ops", "ops@example.com"), ("Jo", "jo@example.com")]


@pytest.fixture(autouse=True)
def _admins(settings):
    settings.ADMINS = ADMINS


def test_a_new_alert_is_emailed_to_admins_once(mailoutbox, django_capture_on_commit_callbacks):
    for _ in range(3):  # the event redelivered, the task retried
        with django_capture_on_commit_callbacks(execute=True):
            unknown_prices_record(["price_orphan"], stripe_event_id="evt_1")

    assert BillingAlert.objects.get().seen_count == 3
    (mail,) = mailoutbox
    assert mail.to == ["ops@example.com", "jo@example.com"]
    assert mail.subject.startswith("[SmartFlow] ERROR: Billing alert: Price maps to no plan")
    assert "price_orphan" in mail.subject
    assert f"/admin/billing/billingalert/{BillingAlert.objects.get().pk}/change/" in mail.body


def test_an_alert_rolled_back_is_not_announced_until_it_sticks(
    mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError), transaction.atomic():  # noqa: PT012 (the raise is the failure that rolls the block back)
            unknown_prices_record(["price_orphan"], stripe_event_id="evt_1")
            raise RuntimeError("the worker's attempt failed after the alert")
        assert not BillingAlert.objects.exists()
        unknown_prices_record(["price_orphan"], stripe_event_id="evt_1")  # the retry

    assert len(mailoutbox) == 1


def test_each_alert_is_its_own_email(mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        unknown_prices_record(["price_a", "price_b"], stripe_event_id="evt_1")

    assert sorted("price_a" in m.subject for m in mailoutbox) == [False, True]


def test_with_no_admins_an_alert_is_only_recorded(
    settings, mailoutbox, django_capture_on_commit_callbacks
):
    settings.ADMINS = []

    with django_capture_on_commit_callbacks(execute=True):
        unknown_prices_record(["price_orphan"], stripe_event_id="evt_1")

    assert BillingAlert.objects.exists()
    assert mailoutbox == []


def test_an_alert_raised_by_the_webhook_endpoint_is_emailed_once(
    deliver, payer, mailoutbox, django_capture_on_commit_callbacks
):
    # A live event signed for the test endpoint, and Stripe's retries of it.
    event = sf.event("customer.updated", payer)
    event["livemode"] = True

    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(2):
            assert deliver(event).status_code == 400

    (mail,) = mailoutbox
    assert "Webhook event in the wrong mode" in mail.subject
