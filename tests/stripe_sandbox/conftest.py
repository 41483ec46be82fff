from __future__ import annotations

from typing import Any

import pytest
import stripe

from accounts.models import User
from stripe_sandbox.client import SandboxHTTPClient


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
            unit_amount=amount * 10,
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


def checkout_create(
    price: Any, customer_id: str, *, mode: str = "subscription", **extra: Any
) -> Any:
    """A checkout session with the parameters billing/views.py sends."""
    return stripe.checkout.Session.create(
        mode=mode,
        customer=customer_id,
        line_items=[{"price": price.id, "quantity": 1}],
        metadata={"djstripe_subscriber": "1", "app_user_id": "1"},
        client_reference_id="1",
        success_url="http://testserver/billing/success/?session_id={CHECKOUT_SESSION_ID}",
        cancel_url="http://testserver/pricing/",
        **extra,
    )


def event_types() -> list[str]:
    """Types of the events emitted so far, in emission order."""
    from stripe_sandbox import store
    from stripe_sandbox.models import Delivery

    ids = list(Delivery.objects.order_by("id").values_list("event_id", flat=True))
    return [store.find(i, "event")["type"] for i in dict.fromkeys(ids)]


def pay(client: Any, session_id: str, card: str = "4242 4242 4242 4242") -> Any:
    return client.post(f"/sandbox/checkout/{session_id}/", {"card_number": card})


@pytest.fixture
def subscribed(client, prices, stripe_customer) -> Any:
    """A paid FlowKit monthly subscription; returns it as Stripe shows it."""
    session = checkout_create(prices["flowkit_monthly"], stripe_customer.id)
    pay(client, session.id)
    return stripe.Subscription.retrieve(stripe.checkout.Session.retrieve(session.id).subscription)
