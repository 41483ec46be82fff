"""Free trials: BILLING_TRIAL_DAYS on a customer's first subscription only, decided on the
server from the subscriptions Stripe has made for them (never from the page)."""

from __future__ import annotations

import pytest

from tests.billing import stripe_fakes as sf

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed_in(client, customer):
    client.force_login(customer)
    return client


def _checkout_params(fake_stripe) -> dict:
    return fake_stripe.calls_to("POST", "/v1/checkout/sessions")[-1]


def test_a_first_subscription_starts_with_the_trial_days(signed_in, fake_stripe, catalog, settings):
    settings.BILLING_TRIAL_DAYS = 14

    signed_in.post("/billing/checkout/", {"plan": "flowkit", "interval": "monthly"})

    params = _checkout_params(fake_stripe)
    assert params["subscription_data[trial_period_days]"] == "14"
    assert params["payment_method_collection"] == "always"


def test_no_trial_when_trial_days_are_zero(signed_in, fake_stripe, catalog):
    signed_in.post("/billing/checkout/", {"plan": "flowkit", "interval": "annual"})

    params = _checkout_params(fake_stripe)
    assert params["mode"] == "subscription"
    assert params["line_items[0][price]"] == catalog["flowkit_annual"]["id"]
    assert "subscription_data[trial_period_days]" not in params


def test_a_oneoff_never_has_a_trial(signed_in, fake_stripe, catalog, settings):
    settings.BILLING_TRIAL_DAYS = 14

    signed_in.post("/billing/checkout/", {"plan": "flowkit", "interval": "oneoff"})

    assert not any(k.startswith("subscription_data") for k in _checkout_params(fake_stripe))


@pytest.mark.parametrize("status", ["canceled", "active", "past_due", "incomplete"])
def test_a_customer_who_ever_had_a_subscription_gets_no_second_trial(
    signed_in, deliver, fake_stripe, catalog, payer, settings, status
):
    settings.BILLING_TRIAL_DAYS = 14
    sub = sf.subscription(cus=payer, prc=catalog["flowkit_monthly"], status=status)
    sub.update(trial_start=None, trial_end=None)  # a subscription without a trial
    fake_stripe.add(sub)
    deliver(sf.event("customer.subscription.created", sub))

    # Even a post the page never offers (a higher plan through Checkout) gets no trial.
    signed_in.post("/billing/checkout/", {"plan": "launchpack", "interval": "oneoff"})
    signed_in.post("/billing/checkout/", {"plan": "launchpack", "interval": "monthly"})

    for params in fake_stripe.calls_to("POST", "/v1/checkout/sessions"):
        assert "subscription_data[trial_period_days]" not in params


def test_a_subscription_that_never_started_does_not_use_up_the_trial(
    signed_in, deliver, fake_stripe, catalog, payer, settings
):
    settings.BILLING_TRIAL_DAYS = 14
    sub = sf.subscription(cus=payer, prc=catalog["flowkit_monthly"], status="incomplete_expired")
    sub.update(trial_start=None, trial_end=None)  # its first payment failed: no trial
    fake_stripe.add(sub)
    deliver(sf.event("customer.subscription.created", sub))

    signed_in.post("/billing/checkout/", {"plan": "flowkit", "interval": "monthly"})

    assert _checkout_params(fake_stripe)["subscription_data[trial_period_days]"] == "14"


def test_a_completed_trial_checkout_uses_up_the_trial_before_its_subscription_is_synced(
    customer, settings
):
    from billing.models import CheckoutOpened
    from billing.offers import trial_days

    settings.BILLING_TRIAL_DAYS = 14
    opened = CheckoutOpened.objects.create(
        user=customer,
        session_id="cs_test_1",
        mode="subscription",
        plan="flowkit",
        interval="monthly",
        trial_days=14,
    )
    before = trial_days(customer)
    CheckoutOpened.objects.filter(pk=opened.pk).update(status="complete")

    assert (before, trial_days(customer)) == (14, 0)
