"""Two subscription checkouts for one customer (two tabs, a double click, a second checkout
started before the first's webhook was processed, or a subscription made in Stripe's
dashboard), through the app's own pages and webhooks with the sandbox standing in for
Stripe: the customer ends with one live subscription, one trial at most, and any second
one is cancelled at once with its payment refunded, the customer told and staff alerted."""

from __future__ import annotations

import re
from io import StringIO

import pytest
import stripe
from django.core.management import call_command
from djstripe.models import Subscription

from billing.checkout import customer_for
from billing.models import BillingAlert
from devtools.stripe_sandbox.delivery import deliver_pending
from onboarding.models import OnboardingMessage
from onboarding.notices import notice_email_render
from tests.sandbox_app import app_transport
from tests.stripe_sandbox.helpers import pay

CARD_OK = "4242 4242 4242 4242"


@pytest.fixture(autouse=True)
def catalogue(db):
    call_command("stripe_catalog", stdout=StringIO())


def _path(url: str) -> str:
    return url.removeprefix("http://testserver")


def _deliver(client) -> None:
    assert deliver_pending(transport=app_transport(client)).failed == 0


def _session_id(response) -> str:
    return re.search(r"(cs_test_\w+)", response["Location"]).group(1)


def _live(customer_id: str) -> list:
    return [
        s
        for s in stripe.Subscription.list(customer=customer_id, status="all").data
        if s.status in ("active", "trialing", "past_due")
    ]


def _open_raced(customer, plan: str = "flowkit", trial_days: int = 0) -> str:
    """A subscription session as the app opens it, but made beside the app's lock (the
    race two requests can still win, or a session opened by another integration)."""
    price = stripe.Price.list(lookup_keys=[f"{plan}_monthly"]).data[0]
    extra = {"subscription_data": {"trial_period_days": trial_days}} if trial_days else {}
    return stripe.checkout.Session.create(
        mode="subscription",
        customer=customer_for(customer).id,
        line_items=[{"price": price.id, "quantity": 1}],
        metadata={"djstripe_subscriber": str(customer.pk), "app_user_id": str(customer.pk)},
        client_reference_id=str(customer.pk),
        success_url="http://testserver/billing/success/?session_id={CHECKOUT_SESSION_ID}",
        **extra,
    ).id


def test_a_second_checkout_before_the_first_payment_is_processed_is_refused(
    client, customer, settings
):
    settings.BILLING_TRIAL_DAYS = 14
    client.force_login(customer)
    first = client.post("/billing/checkout/", {"plan": "flowkit", "interval": "monthly"})
    pay(client, _session_id(first))  # paid; its webhook not processed yet

    second = client.post("/billing/checkout/", {"plan": "flowkit", "interval": "monthly"})
    sessions = stripe.checkout.Session.list(customer=customer_for(customer).id).data

    assert second.status_code == 409
    assert "You already have FlowKit" in second.content.decode()
    assert [s.id for s in sessions] == [_session_id(first)]
    assert len(_live(customer_for(customer).id)) == 1


def test_an_upgrade_checkout_before_the_first_payment_is_processed_is_refused(client, customer):
    client.force_login(customer)
    first = client.post("/billing/checkout/", {"plan": "flowkit", "interval": "monthly"})
    pay(client, _session_id(first))

    second = client.post("/billing/checkout/", {"plan": "launchpack", "interval": "monthly"})

    assert second.status_code == 409
    assert "upgrade" in second.content.decode()
    assert len(stripe.checkout.Session.list(customer=customer_for(customer).id).data) == 1


def test_a_paid_subscription_checkout_expires_the_other_open_one(client, customer):
    client.force_login(customer)
    paid = client.post("/billing/checkout/", {"plan": "flowkit", "interval": "monthly"})
    other = _open_raced(customer)

    pay(client, _session_id(paid))
    _deliver(client)

    assert stripe.checkout.Session.retrieve(other).status == "expired"
    assert "expired" in pay(client, other).content.decode()


def test_two_sessions_both_paid_leave_one_subscription_and_refund_the_newer(client, customer):
    client.force_login(customer)
    first = _session_id(
        client.post("/billing/checkout/", {"plan": "flowkit", "interval": "monthly"})
    )
    second = _open_raced(customer)
    pay(client, first)
    pay(client, second)

    _deliver(client)

    customer_id = customer_for(customer).id
    kept = stripe.checkout.Session.retrieve(first).subscription
    newer = stripe.Subscription.retrieve(stripe.checkout.Session.retrieve(second).subscription)
    refunds = stripe.Refund.list().data
    newer_invoice = stripe.Invoice.retrieve(newer.latest_invoice)
    customer.refresh_from_db()
    assert [s.id for s in _live(customer_id)] == [kept]
    assert newer.status == "canceled"
    assert len(refunds) == 1
    assert refunds[0].amount == newer_invoice.amount_paid == 4900
    assert customer.plan == "flowkit"
    alert = BillingAlert.objects.get(kind="duplicate_subscription")
    assert alert.stripe_id == newer.id
    assert customer.email in alert.detail
    told = OnboardingMessage.objects.filter(user=customer, template="duplicate_subscription")
    assert told.count() == 1
    email = notice_email_render(told.get())
    assert "£49.00" in email.text
    assert "refunded" in email.text
    # One message for this: not a second, generic "Your SmartFlow refund".
    assert not OnboardingMessage.objects.filter(user=customer, template="refund").exists()
    assert Subscription.objects.get(id=newer.id).stripe_data["status"] == "canceled"


def test_two_raced_trials_leave_one_trial_and_charge_nothing(client, customer, settings):
    settings.BILLING_TRIAL_DAYS = 14
    client.force_login(customer)
    first = _session_id(
        client.post("/billing/checkout/", {"plan": "flowkit", "interval": "monthly"})
    )
    second = _open_raced(customer, trial_days=14)
    pay(client, first)
    pay(client, second)

    _deliver(client)

    live = _live(customer_for(customer).id)
    assert [s.id for s in live] == [stripe.checkout.Session.retrieve(first).subscription]
    assert live[0].status == "trialing"
    assert stripe.Refund.list().data == []
    assert BillingAlert.objects.filter(kind="duplicate_subscription").count() == 1


def _dashboard_subscription(customer) -> str:
    """A subscription made directly through the API (Stripe's dashboard, a script)."""
    price = stripe.Price.list(lookup_keys=["flowkit_monthly"]).data[0]
    return stripe.Subscription.create(
        customer=customer_for(customer).id,
        items=[{"price": price.id}],
        default_payment_method="pm_card_visa",
    ).id


def test_a_second_subscription_made_in_the_dashboard_is_cancelled_and_refunded(client, customer):
    first = _dashboard_subscription(customer)
    _deliver(client)
    second = _dashboard_subscription(customer)

    _deliver(client)

    assert [s.id for s in _live(customer_for(customer).id)] == [first]
    assert [r.amount for r in stripe.Refund.list().data] == [4900]
    assert BillingAlert.objects.filter(kind="duplicate_subscription", stripe_id=second).exists()


def test_reconcile_reports_a_customer_with_two_live_subscriptions(client, customer):
    made = [_dashboard_subscription(customer), _dashboard_subscription(customer)]
    for sub_id in made:  # synced, but their webhooks never came
        Subscription.sync_from_stripe_data(stripe.Subscription.retrieve(sub_id))

    out = StringIO()
    call_command("reconcile_plans", "--dry-run", stdout=out, stderr=StringIO())

    line = next(line for line in out.getvalue().splitlines() if "live subscriptions" in line)
    assert customer.email in line
    assert all(sub_id in line for sub_id in made)


def test_reconcile_raises_a_billing_alert_for_two_live_subscriptions(client, customer):
    made = [_dashboard_subscription(customer), _dashboard_subscription(customer)]
    for sub_id in made:
        Subscription.sync_from_stripe_data(stripe.Subscription.retrieve(sub_id))

    call_command("reconcile_plans", stdout=StringIO(), stderr=StringIO())

    alert = BillingAlert.objects.get(kind="duplicate_subscription")
    assert alert.stripe_id == made[1]
    assert customer.email in alert.detail
    assert sorted(s.id for s in _live(customer_for(customer).id)) == sorted(made)  # not undone
