"""A free trial through the app's own pages and webhooks, on the sandbox's clock: the
plan is live while trialing, the customer is told three days before the end, and the end
charges the first real invoice (or, with a card that fails, starts the dunning)."""

from __future__ import annotations

import re
from io import StringIO

import pytest
import stripe
from django.core.management import call_command
from djstripe.models import Subscription

from devtools.stripe_sandbox.delivery import deliver_pending
from onboarding.models import OnboardingMessage
from onboarding.notices import notice_email_render
from tests.sandbox_app import app_transport

CARD_OK = "4242 4242 4242 4242"
CARD_FAILS_LATER = "4000 0000 0000 0341"


@pytest.fixture(autouse=True)
def trials(settings, db):
    settings.BILLING_TRIAL_DAYS = 14
    call_command("stripe_catalog", stdout=StringIO())


def _path(url: str) -> str:
    return url.removeprefix("http://testserver")


def _deliver(client) -> None:
    assert deliver_pending(transport=app_transport(client)).failed == 0


def _advance(client, days: int) -> None:
    call_command("stripe_sandbox", "advance", "--days", str(days), stdout=StringIO())
    _deliver(client)


def _buy(client, plan: str = "flowkit", card: str = CARD_OK) -> dict:
    checkout = client.post("/billing/checkout/", {"plan": plan, "interval": "monthly"})
    session_id = re.search(r"(cs_test_\w+)", checkout["Location"]).group(1)
    paid = client.post(_path(checkout["Location"]), {"card_number": card})
    _deliver(client)
    client.get(_path(paid["Location"]))  # the success page
    return stripe.checkout.Session.retrieve(session_id, expand=["subscription"])


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html))


def _trial_emails(customer) -> list[str]:
    return [
        notice_email_render(m).subject
        for m in OnboardingMessage.objects.filter(
            user=customer, template="trial_ending", channel="email"
        )
    ]


def test_a_trial_is_live_warns_three_days_before_and_then_charges_the_plan(client, customer):
    client.force_login(customer)

    session = _buy(client)
    sub = session.subscription
    customer.refresh_from_db()
    plan_while_trialing = customer.plan
    dashboard = _text(client.get("/").content.decode())
    billing = _text(client.get("/billing/").content.decode())
    first_invoice = stripe.Invoice.retrieve(sub.latest_invoice)

    _advance(client, 10)
    emails_after_10_days = _trial_emails(customer)
    _advance(client, 1)
    emails_after_11_days = _trial_emails(customer)
    _advance(client, 4)  # past the trial's end (day 14)
    customer.refresh_from_db()
    after = stripe.Subscription.retrieve(sub.id, expand=["latest_invoice"])

    assert session.payment_status == "no_payment_required"
    assert sub.status == "trialing"
    assert sub.trial_end - sub.trial_start == 14 * 86400
    assert (first_invoice.amount_due, first_invoice.status) == (0, "paid")
    assert plan_while_trialing == "flowkit"
    trial_end_words = _long(sub.trial_end)
    assert f"Trial ends on {trial_end_words}, then £49.00/month" in dashboard
    assert f"Trial ends on {trial_end_words}, then £49.00/month" in billing
    assert emails_after_10_days == []
    assert emails_after_11_days == [f"Your SmartFlow trial ends on {trial_end_words}"]
    assert after.status == "active"
    assert (after.latest_invoice.status, after.latest_invoice.amount_paid) == ("paid", 4900)
    assert after.latest_invoice.billing_reason == "subscription_cycle"
    assert customer.plan == "flowkit"
    assert _trial_emails(customer) == emails_after_11_days  # told once


def test_the_checkout_page_shows_the_trial_the_app_asked_for(client, customer):
    # BILLING_TRIAL_DAYS reaches the session as subscription_data[trial_period_days].
    client.force_login(customer)
    checkout = client.post("/billing/checkout/", {"plan": "flowkit", "interval": "monthly"})

    page = _text(client.get(_path(checkout["Location"])).content.decode())

    assert "14 days free" in page
    assert re.search(r"Total due today\s*£0\.00", page)
    assert "Then £49.00 per month after 14 days" in page


def test_a_card_that_fails_at_the_trial_end_goes_into_dunning(client, customer):
    client.force_login(customer)
    sub = _buy(client, card=CARD_FAILS_LATER).subscription

    _advance(client, 15)
    after = stripe.Subscription.retrieve(sub.id, expand=["latest_invoice"])
    customer.refresh_from_db()

    assert after.status == "past_due"
    assert after.latest_invoice.status == "open"
    assert after.latest_invoice.next_payment_attempt is not None  # Stripe retries it
    assert customer.plan == "flowkit"  # the grace of billing/dunning.py
    assert OnboardingMessage.objects.filter(user=customer, template="payment_failed").exists()


def test_a_second_subscription_gets_no_trial(client, customer):
    client.force_login(customer)
    first = _buy(client).subscription
    client.post("/billing/cancel/")
    _advance(client, 15)  # the trial ends, the subscription with it
    ended = Subscription.objects.get(id=first.id).stripe_data["status"]
    told = _trial_emails(customer)

    second = _buy(client).subscription

    assert ended == "canceled"
    assert told == []  # cancelled during the trial: nothing will be charged, nothing said
    assert second.status == "active"
    assert second.trial_end is None
    assert stripe.Invoice.retrieve(second.latest_invoice).amount_paid == 4900


def test_no_trial_when_trials_are_off(client, customer, settings):
    settings.BILLING_TRIAL_DAYS = 0
    client.force_login(customer)

    sub = _buy(client).subscription

    assert (sub.status, sub.trial_end) == ("active", None)


def _long(ts: int) -> str:
    from datetime import UTC, datetime

    moment = datetime.fromtimestamp(ts, tz=UTC)
    return f"{moment.day} {moment:%B %Y}"
