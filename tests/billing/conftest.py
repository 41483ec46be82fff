from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import stripe
from djstripe.models import WebhookEndpoint

from accounts.models import User
from billing.webhook_queue import process_due
from tests.billing import stripe_fakes as sf

SECRET = "whsec_test_secret_for_billing_tests"


@pytest.fixture
def fake_stripe() -> Iterator[sf.FakeStripe]:
    """Stripe's API, faked at stripe-python's HTTP client."""
    previous = stripe.default_http_client
    fake = sf.FakeStripe()
    stripe.default_http_client = fake
    try:
        yield fake
    finally:
        stripe.default_http_client = previous


@pytest.fixture
def catalog(fake_stripe: sf.FakeStripe) -> dict[str, dict[str, Any]]:
    """One product per plan with a monthly, an annual and a one-off price, by lookup key."""
    prices: dict[str, dict[str, Any]] = {}
    for plan, amount in (("starter", 1900), ("flowkit", 4900), ("launchpack", 9900)):
        prod = sf.product(name=f"SmartFlow {plan}", metadata={"plan": plan})
        fake_stripe.add(prod)
        for interval, recurring in (("monthly", True), ("oneoff", False)):
            key = f"{plan}_{interval}"
            prc = sf.price(
                prod=prod,
                lookup_key=key,
                amount=amount * (1 if recurring else 10),
                recurring=recurring,
            )
            fake_stripe.add(prc)
            prices[key] = prc
        yearly = sf.price(
            prod=prod, lookup_key=f"{plan}_annual", amount=amount * 10, interval="year"
        )
        fake_stripe.add(yearly)
        prices[f"{plan}_annual"] = yearly
    return prices


@pytest.fixture
def endpoint(db) -> WebhookEndpoint:
    return WebhookEndpoint.objects.create(
        id="we_test",
        livemode=False,
        secret=SECRET,
        url="http://testserver/",
        enabled_events=["*"],
        status="enabled",
        api_version=sf.API_VERSION,
    )


@pytest.fixture
def deliver(client, endpoint: WebhookEndpoint) -> Callable[..., Any]:
    """POST an event to the real endpoint, signed as Stripe signs it, then process what
    it acknowledged as a worker would (`process=False`: acknowledge only)."""

    def _deliver(
        event: dict[str, Any],
        *,
        secret: str = SECRET,
        timestamp: int | None = None,
        tamper: Callable[[bytes], bytes] | None = None,
        signed: bool = True,
        process: bool = True,
    ):
        body = json.dumps(event).encode()
        headers = {}
        if signed:
            headers["HTTP_STRIPE_SIGNATURE"] = sf.signature(body, secret, timestamp=timestamp)
        if tamper:
            body = tamper(body)
        response = client.post(
            f"/stripe/webhook/{endpoint.djstripe_uuid}/",
            body,
            content_type="application/json",
            **headers,
        )
        if process:
            process_due()
        return response

    return _deliver


@pytest.fixture
def payer(fake_stripe: sf.FakeStripe, customer: User) -> dict[str, Any]:
    """The Stripe customer object of the `customer` user (linked through metadata)."""
    cus = sf.customer(email=customer.email, metadata={"djstripe_subscriber": str(customer.pk)})
    fake_stripe.add(cus)
    return cus
