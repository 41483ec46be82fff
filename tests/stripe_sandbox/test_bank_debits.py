"""Bacs Direct Debit in the sandbox's Checkout: the session completes unpaid, and the
bank's answer comes three days later on the sandbox clock; the plan goes live only then,
and only if the debit succeeded."""

from __future__ import annotations

from io import StringIO

import pytest
import stripe
from django.core.management import call_command

from devtools.stripe_sandbox.delivery import deliver_pending
from tests.sandbox_app import app_transport
from tests.stripe_sandbox.helpers import checkout_create, event_types

SUCCEEDS, FAILS = "00012345", "33333335"


def _path(url: str) -> str:
    return url.removeprefix("http://testserver")


def _debit(client, session_id: str, account: str, sort_code: str = "10-88-00"):
    return client.post(
        f"/sandbox/checkout/{session_id}/bank-debit/",
        {"sort_code": sort_code, "account_number": account},
    )


def _advance(days: int) -> str:
    out = StringIO()
    call_command("stripe_sandbox", "advance", "--days", str(days), stdout=out)
    return out.getvalue().strip()


def test_checkout_page_offers_the_test_bank_accounts(client, prices, stripe_customer):
    session = checkout_create(prices["flowkit_monthly"], stripe_customer.id)

    page = client.get(f"/sandbox/checkout/{session.id}/").content.decode()

    assert "Bacs Direct Debit" in page
    assert "10-88-00" in page
    assert SUCCEEDS in page
    assert FAILS in page
    assert f'action="/sandbox/checkout/{session.id}/bank-debit/"' in page


def test_other_bank_accounts_are_refused_and_the_session_stays_open(
    client, prices, stripe_customer
):
    session = checkout_create(prices["flowkit_monthly"], stripe_customer.id)

    response = _debit(client, session.id, "12345678")

    assert response.status_code == 400
    assert "00012345 (succeeds)" in response.content.decode()
    assert stripe.checkout.Session.retrieve(session.id).status == "open"


def test_subscription_by_bank_debit_is_unpaid_then_paid_three_days_later(
    client, prices, stripe_customer
):
    session = checkout_create(prices["flowkit_monthly"], stripe_customer.id)

    response = _debit(client, session.id, SUCCEEDS)

    assert response.status_code == 302
    assert response["Location"].endswith(f"session_id={session.id}")
    done = stripe.checkout.Session.retrieve(session.id, expand=["subscription.latest_invoice"])
    assert (done.status, done.payment_status) == ("complete", "unpaid")
    assert done.subscription.status == "incomplete"
    assert done.subscription.latest_invoice.status == "open"
    pi = stripe.PaymentIntent.list(customer=stripe_customer.id).data[0]
    assert pi.status == "processing"
    assert stripe.Charge.retrieve(pi.latest_charge).payment_method_details.type == "bacs_debit"
    assert event_types()[-6:] == [
        "customer.subscription.created",
        "invoice.created",
        "invoice.finalized",
        "charge.pending",
        "payment_intent.processing",
        "checkout.session.completed",
    ]
    before = event_types()

    assert "0 bank debit(s) settled" in _advance(2)
    assert event_types() == before
    assert "1 bank debit(s) settled" in _advance(1)

    assert event_types()[len(before) :] == [
        "charge.succeeded",
        "payment_intent.succeeded",
        "invoice.paid",
        "invoice.payment_succeeded",
        "customer.subscription.updated",
        "checkout.session.async_payment_succeeded",
    ]
    done = stripe.checkout.Session.retrieve(session.id, expand=["subscription.latest_invoice"])
    assert done.payment_status == "paid"
    assert done.subscription.status == "active"
    assert done.subscription.latest_invoice.status == "paid"
    assert stripe.PaymentIntent.retrieve(pi.id).status == "succeeded"
    assert "0 bank debit(s) settled" in _advance(3)  # once


def test_failed_bank_debit_sends_async_payment_failed(client, prices, stripe_customer):
    session = checkout_create(prices["flowkit_oneoff"], stripe_customer.id, mode="payment")
    _debit(client, session.id, FAILS)
    before = event_types()

    _advance(3)

    assert event_types()[len(before) :] == [
        "charge.failed",
        "payment_intent.payment_failed",
        "checkout.session.async_payment_failed",
    ]
    done = stripe.checkout.Session.retrieve(session.id, expand=["payment_intent.latest_charge"])
    assert (done.status, done.payment_status) == ("complete", "unpaid")
    assert done.payment_intent.status == "requires_payment_method"
    assert done.payment_intent.latest_charge.status == "failed"


@pytest.mark.parametrize("delivery", ["ordered", "stripe"])
@pytest.mark.parametrize(
    ("interval", "account", "plan_after"),
    [
        ("monthly", SUCCEEDS, "flowkit"),
        ("monthly", FAILS, "starter"),
        ("oneoff", SUCCEEDS, "flowkit"),
        ("oneoff", FAILS, "starter"),
    ],
)
def test_the_plan_goes_live_only_when_the_debit_succeeds(
    client, customer, settings, delivery, interval, account, plan_after
):
    settings.STRIPE_SANDBOX_DELIVERY = delivery
    settings.STRIPE_SANDBOX_SEED = 1212
    transport = app_transport(client)
    call_command("stripe_catalog", stdout=StringIO())
    client.force_login(customer)
    checkout = client.post("/billing/checkout/", {"plan": "flowkit", "interval": interval})
    session_id = _path(checkout["Location"]).split("/")[3]

    paid = _debit(client, session_id, account)
    success = client.get(_path(paid["Location"]))
    assert deliver_pending(transport=transport).failed == 0
    customer.refresh_from_db()
    assert success.status_code == 200
    assert "Your bank is processing the payment" in success.content.decode()
    assert b'http-equiv="refresh"' not in success.content  # not for days
    assert customer.plan == "starter"  # processing: not paid yet

    _advance(3)
    assert deliver_pending(transport=transport).failed == 0
    customer.refresh_from_db()

    assert customer.plan == plan_after


def test_make_runs_banner_lists_the_test_bank_accounts(settings):
    from smartflow.management.commands.run_banner import banner_lines

    text = "\n".join(banner_lines())

    assert "sort code 10-88-00" in text
    assert f"{SUCCEEDS}" in text
    assert f"{FAILS}" in text
    assert "stripe_sandbox advance --days 3" in text


@pytest.mark.parametrize("delivery", ["ordered", "stripe"])
def test_a_subscription_debit_is_pending_until_the_bank_refuses_it_then_told_once(
    client, customer, settings, delivery
):
    """Issue 27, defect 7: shown while processing, not bought twice (no second
    subscription beside the one the debit starts), and a refusal told once, as a bank
    debit that failed, never as a renewal "we will try again"."""
    from onboarding.models import OnboardingMessage

    settings.STRIPE_SANDBOX_DELIVERY = delivery
    settings.STRIPE_SANDBOX_SEED = 2727
    transport = app_transport(client)
    call_command("stripe_catalog", stdout=StringIO())
    client.force_login(customer)
    checkout = client.post("/billing/checkout/", {"plan": "flowkit", "interval": "monthly"})
    session_id = _path(checkout["Location"]).split("/")[3]
    client.get(_path(_debit(client, session_id, FAILS)["Location"]))
    assert deliver_pending(transport=transport).failed == 0

    billing = client.get("/billing/").content.decode()
    pricing = client.get("/pricing/").content.decode()
    again = client.post("/billing/checkout/", {"plan": "launchpack", "interval": "monthly"})

    assert "by Bacs Direct Debit for FlowKit, processing: usually 3 working days" in billing
    assert "Subscribe monthly" not in pricing
    assert "Subscribe yearly" not in pricing
    assert again.status_code == 409

    _advance(3)
    assert deliver_pending(transport=transport).failed == 0

    told = OnboardingMessage.objects.filter(user=customer).values_list("template", flat=True)
    assert list(told) == ["bank_debit_failed"]
    assert "processing" not in client.get("/billing/").content.decode()
    assert "Subscribe monthly" in client.get("/pricing/").content.decode()
