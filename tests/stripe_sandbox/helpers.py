"""Helpers for the sandbox's tests: a checkout as billing creates it, paying it on the
sandbox's page, the events emitted so far."""

from __future__ import annotations

from typing import Any

import stripe


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
    """Types of the events emitted so far, in emission order; without the test clock's
    `test_helpers.test_clock.ready`, which ends every advance of the clock."""
    from devtools.stripe_sandbox import store
    from devtools.stripe_sandbox.models import Delivery

    ids = list(Delivery.objects.order_by("id").values_list("event_id", flat=True))
    types = [store.find(i, "event")["type"] for i in dict.fromkeys(ids)]
    return [t for t in types if t != "test_helpers.test_clock.ready"]


def pay(client: Any, session_id: str, card: str = "4242 4242 4242 4242") -> Any:
    return client.post(f"/sandbox/checkout/{session_id}/", {"card_number": card})
