from __future__ import annotations

from io import StringIO

import pytest
import stripe
from django.core.management import call_command

from accounts.models import User
from devtools.stripe_sandbox.client import SandboxHTTPClient
from tests.helpers import email_confirmed
from tests.privacy.helpers import NAME, PASSWORD, PHONE, deliver_events


@pytest.fixture(autouse=True)
def sandbox(settings, monkeypatch) -> SandboxHTTPClient:
    """The offline Stripe sandbox as stripe-python's client (even if another test swapped
    it), webhooks delivered in order, and a site URL the test client answers."""
    settings.SITE_URL = "http://testserver"
    settings.STRIPE_SANDBOX_DELIVERY = "ordered"
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    monkeypatch.setattr(stripe, "api_key", settings.STRIPE_TEST_SECRET_KEY)
    client = SandboxHTTPClient()
    previous = stripe.default_http_client
    stripe.default_http_client = client
    yield client
    stripe.default_http_client = previous


@pytest.fixture
def subscriber(client, db) -> User:
    """A customer who subscribed to FlowKit through the app's own checkout and the
    sandbox's page, with a mobile number and SMS consent, whose Stripe customer has a
    name, phone and address; every webhook delivered and processed."""
    user = email_confirmed(
        User.objects.create_user("ada@example.com", PASSWORD, phone=PHONE, sms_opt_in=True)
    )
    call_command("stripe_catalog", stdout=StringIO())
    client.force_login(user)
    checkout = client.post("/billing/checkout/", {"plan": "flowkit", "interval": "monthly"})
    location = checkout["Location"].removeprefix("http://testserver")
    client.post(location, {"card_number": "4242 4242 4242 4242"})
    deliver_events(client)
    user.refresh_from_db()
    stripe.Customer.modify(
        user.stripe_customer_id,
        name=NAME,
        phone=PHONE,
        address={"line1": "12 Analytical Row", "city": "London", "postal_code": "N1 9GU"},
    )
    deliver_events(client)
    user.refresh_from_db()
    assert user.plan == "flowkit"
    return user
