from __future__ import annotations

from typing import Any

import pytest
import stripe

from accounts.models import User
from devtools.stripe_sandbox.client import SandboxHTTPClient
from tests.stripe_sandbox.helpers import checkout_create, pay


@pytest.fixture(autouse=True)
def sandbox(settings, monkeypatch) -> SandboxHTTPClient:
    """The sandbox as stripe-python's client (even if another test swapped it) and a
    site URL the test client answers."""
    settings.SITE_URL = "http://testserver"
    # The app passes its key on every call; tests that call stripe directly use the global.
    monkeypatch.setattr(stripe, "api_key", settings.STRIPE_TEST_SECRET_KEY)
    client = SandboxHTTPClient()
    previous = stripe.default_http_client
    stripe.default_http_client = client
    yield client
    stripe.default_http_client = previous


@pytest.fixture
def prices(db) -> dict[str, Any]:
    """The catalogue as the `stripe_catalog` command makes it, by lookup key."""
    made: dict[str, Any] = {}
    for plan, amount in (("flowkit", 4900), ("launchpack", 9900)):
        product = stripe.Product.create(name=f"SmartFlow {plan.title()}", metadata={"plan": plan})
        made[f"{plan}_monthly"] = stripe.Price.create(
            product=product.id,
            unit_amount=amount,
            currency="gbp",
            recurring={"interval": "month"},
            lookup_key=f"{plan}_monthly",
            metadata={"plan": plan},
        )
        made[f"{plan}_oneoff"] = stripe.Price.create(
            product=product.id,
            unit_amount=amount * 30,
            currency="gbp",
            lookup_key=f"{plan}_oneoff",
            metadata={"plan": plan},
        )
    return made


@pytest.fixture
def stripe_customer(customer: User) -> Any:
    return stripe.Customer.create(
        email=customer.email, metadata={"djstripe_subscriber": str(customer.pk)}
    )


@pytest.fixture
def subscribed(client, prices, stripe_customer) -> Any:
    """A paid FlowKit monthly subscription; returns it as Stripe shows it."""
    session = checkout_create(prices["flowkit_monthly"], stripe_customer.id)
    pay(client, session.id)
    return stripe.Subscription.retrieve(stripe.checkout.Session.retrieve(session.id).subscription)
