"""Checkout and other billing attempts are limited per account and per address
(BILLING_RATE_LIMITS, billing/ratelimit.py): the one over the limit answers 429 and
calls Stripe for nothing."""

from __future__ import annotations

import pytest
from django.core import checks

from accounts.models import User
from tests.billing import stripe_fakes as sf
from tests.helpers import PASSWORD, email_confirmed

pytestmark = pytest.mark.django_db

FLOWKIT = {"plan": "flowkit", "interval": "monthly"}


def _checkouts(client, count: int) -> list[int]:
    return [client.post("/billing/checkout/", FLOWKIT).status_code for _ in range(count)]


def test_the_eleventh_checkout_in_a_minute_answers_429_and_calls_stripe_for_nothing(
    client, customer, fake_stripe, catalog
):
    client.force_login(customer)
    assert _checkouts(client, 10) == [303] * 10
    calls_before = len(fake_stripe.calls)

    response = client.post("/billing/checkout/", FLOWKIT)

    assert response.status_code == 429
    assert "Too many requests" in response.content.decode()
    assert "nothing was charged" in response.content.decode()
    assert len(fake_stripe.calls) == calls_before
    sessions = [o for o in fake_stripe.objects.values() if o["object"] == "checkout.session"]
    assert len(sessions) == 10


def test_another_account_is_not_held_back_by_the_first(client, customer, fake_stripe, catalog):
    client.force_login(customer)
    _checkouts(client, 11)
    other = email_confirmed(User.objects.create_user("other@example.com", PASSWORD))
    client.force_login(other)

    assert client.post("/billing/checkout/", FLOWKIT).status_code == 303


def test_pages_that_do_not_call_stripe_are_not_limited(client, customer, fake_stripe, catalog):
    client.force_login(customer)
    _checkouts(client, 11)

    for url in ("/billing/", "/pricing/", "/billing/cancel/", "/"):
        assert client.get(url).status_code != 429, url


def test_one_address_is_limited_across_accounts(client, settings, fake_stripe, catalog):
    settings.BILLING_RATE_LIMITS = {**settings.BILLING_RATE_LIMITS, "checkout": "3/h/ip"}
    statuses = []
    for n in range(4):
        user = email_confirmed(User.objects.create_user(f"user{n}@example.com", PASSWORD))
        client.force_login(user)
        statuses += _checkouts(client, 1)

    assert statuses == [303, 303, 303, 429]


def test_the_address_is_the_one_behind_our_proxies(client, settings, fake_stripe, catalog):
    # One proxy: the client is the last X-Forwarded-For entry, whatever it wrote before.
    settings.AXES_IPWARE_PROXY_COUNT = 1
    settings.BILLING_RATE_LIMITS = {**settings.BILLING_RATE_LIMITS, "checkout": "1/h/ip"}
    client.force_login(email_confirmed(User.objects.create_user("a@example.com", PASSWORD)))

    first = client.post("/billing/checkout/", FLOWKIT, HTTP_X_FORWARDED_FOR="1.1.1.1, 203.0.113.5")
    forged = client.post("/billing/checkout/", FLOWKIT, HTTP_X_FORWARDED_FOR="9.9.9.9, 203.0.113.5")
    elsewhere = client.post("/billing/checkout/", FLOWKIT, HTTP_X_FORWARDED_FOR="203.0.113.6")

    assert (first.status_code, forged.status_code, elsewhere.status_code) == (303, 429, 303)


def test_a_refused_attempt_counts_nothing_against_the_account(
    client, customer, settings, fake_stripe, catalog
):
    # The address is used up, the account is not: refused requests leave it untouched.
    settings.BILLING_RATE_LIMITS = {**settings.BILLING_RATE_LIMITS, "checkout": "2/h/user,1/h/ip"}
    client.force_login(customer)
    statuses = _checkouts(client, 3)
    settings.BILLING_RATE_LIMITS = {**settings.BILLING_RATE_LIMITS, "checkout": "2/h/user"}

    assert statuses == [303, 429, 429]
    assert _checkouts(client, 2) == [303, 429]


@pytest.mark.parametrize(
    ("method", "url", "data"),
    [
        ("post", "/billing/switch/", {"plan": "launchpack"}),
        ("get", "/billing/switch/?plan=launchpack", None),
        ("post", "/billing/portal/", {}),
        ("post", "/billing/cancel/", {}),
        ("post", "/billing/resume/", {}),
        ("post", "/billing/downgrade/", {"plan": "flowkit"}),
        ("post", "/billing/downgrade/cancel/", {}),
        ("get", "/billing/success/?session_id=cs_x", None),
        ("get", "/billing/switch/pending/", None),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_every_view_that_calls_stripe_is_limited_before_it_does(
    client, customer, settings, fake_stripe, catalog, payer, deliver, method, url, data
):
    sub = sf.subscription(cus=payer, prc=catalog["flowkit_monthly"])
    fake_stripe.add(sub)
    deliver(sf.event("customer.subscription.created", sub))
    settings.BILLING_RATE_LIMITS = {"checkout": "0/m/user", "preview": "0/m/user"}
    client.force_login(customer)
    calls_before = len(fake_stripe.calls)

    response = getattr(client, method)(url, data)

    assert response.status_code == 429
    assert len(fake_stripe.calls) == calls_before


def test_a_rate_limit_that_does_not_parse_is_a_system_check_error(settings):
    settings.BILLING_RATE_LIMITS = {"checkout": "ten a minute", "preview": "5/m/user"}

    [error] = [m for m in checks.run_checks() if m.id == "billing.E004"]

    assert "'checkout'" in error.msg
