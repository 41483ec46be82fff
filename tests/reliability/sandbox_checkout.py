"""Customers who bought a plan at the Stripe sandbox (devtools/stripe_sandbox/), their events
acknowledged by the app and not yet processed: work for the workers of the reliability
tests, whose processing re-reads everything from the sandbox as it would from Stripe."""

from __future__ import annotations

from collections.abc import Iterator
from io import StringIO
from typing import Any

import pytest
import stripe
from django.core.management import call_command

from accounts.models import User
from devtools.stripe_sandbox.client import SandboxHTTPClient
from devtools.stripe_sandbox.delivery import client_transport, deliver_pending
from tests.helpers import PASSWORD, email_confirmed


@pytest.fixture
def sandbox(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """stripe-python talks to the sandbox, which has the catalogue."""
    settings.SITE_URL = "http://testserver"
    monkeypatch.setattr(stripe, "api_key", settings.STRIPE_TEST_SECRET_KEY)
    previous = stripe.default_http_client
    stripe.default_http_client = SandboxHTTPClient()
    call_command("stripe_catalog", stdout=StringIO())
    yield
    stripe.default_http_client = previous


def buyer_checkout(client: Any, email: str, plan: str) -> User:
    """`email` signs up and pays a monthly `plan` at the sandbox's Checkout; every event
    that caused is delivered (signed, over the app's webhook view) and acknowledged, and
    left for the workers."""
    user = email_confirmed(User.objects.create_user(email, PASSWORD))  # payment needs it
    client.force_login(user)
    checkout = client.post("/billing/checkout/", {"plan": plan, "interval": "monthly"})
    assert checkout.status_code in (302, 303), checkout
    session_id = checkout["Location"].rstrip("/").split("/")[-1]
    paid = client.post(f"/sandbox/checkout/{session_id}/", {"card_number": "4242 4242 4242 4242"})
    assert paid.status_code in (200, 302), paid
    client.logout()
    report = deliver_pending(transport=client_transport(client))
    assert report.succeeded > 0, report
    assert report.failed == 0, report
    return user
