"""The app's webhooks as the sandbox delivers them in `stripe` mode (late, shuffled, some
twice), through the whole life of a customer: whatever the seed, the plan after each
batch of deliveries is the one Stripe's current state gives, every delivery is answered
2xx and processed without an error.

Each batch is delivered only after every change in it was made at "Stripe", so that the
events of several changes arrive mixed, the way they do when a receiver lags behind."""

from __future__ import annotations

from io import StringIO

import pytest
import stripe
from django.core.management import call_command
from djstripe.models import WebhookEventTrigger

from accounts.models import User
from devtools.stripe_sandbox import actions
from devtools.stripe_sandbox.client import SandboxHTTPClient
from devtools.stripe_sandbox.delivery import deliver_pending
from devtools.stripe_sandbox.models import Delivery
from tests.helpers import DELIVERY_SEED, PASSWORD, email_confirmed
from tests.sandbox_app import app_transport

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def sandbox(settings, monkeypatch):
    settings.SITE_URL = "http://testserver"
    monkeypatch.setattr(stripe, "api_key", settings.STRIPE_TEST_SECRET_KEY)
    previous = stripe.default_http_client
    stripe.default_http_client = SandboxHTTPClient()
    yield
    stripe.default_http_client = previous


def _run(*args: str) -> None:
    call_command(*args, stdout=StringIO())


def _deliver(client, user: User) -> str:
    report = deliver_pending(transport=app_transport(client))
    assert report.failed == 0
    user.refresh_from_db()
    return user.plan


@pytest.mark.parametrize("offset", range(4))
def test_a_customers_life_under_unordered_duplicated_delivery(client, settings, offset):
    settings.STRIPE_SANDBOX_SEED = DELIVERY_SEED + offset
    user = email_confirmed(User.objects.create_user("life@example.com", PASSWORD))
    _run("stripe_catalog")
    client.force_login(user)
    plans = []

    # Subscribe to FlowKit, then switch to LaunchPack in the portal, before any webhook.
    checkout = client.post("/billing/checkout/", {"plan": "flowkit", "interval": "monthly"})
    session_id = checkout["Location"].rstrip("/").split("/")[-1]
    client.post(f"/sandbox/checkout/{session_id}/", {"card_number": "4242 4242 4242 4242"})
    sub_id = stripe.checkout.Session.retrieve(session_id).subscription
    launchpack = stripe.Price.list(lookup_keys=["launchpack_monthly"]).data[0]
    actions.subscription_switch(sub_id, price_id=launchpack.id)
    plans.append(_deliver(client, user))

    # A failed renewal (past_due, within the grace period), then a paid one.
    _run("stripe_sandbox", "fail", "--email", user.email)
    plans.append(_deliver(client, user))
    _run("stripe_sandbox", "renew", "--email", user.email)
    plans.append(_deliver(client, user))

    # Cancelled at once, then a one-off FlowKit purchase. The app sells only what raises
    # the plan (billing/offers.py), so the purchase waits until the cancellation's webhooks
    # have reached it: before that, it still sees LaunchPack and answers 409.
    actions.subscription_cancel(sub_id)
    refused = client.post("/billing/checkout/", {"plan": "flowkit", "interval": "oneoff"})
    assert refused.status_code == 409
    plans.append(_deliver(client, user))
    checkout = client.post("/billing/checkout/", {"plan": "flowkit", "interval": "oneoff"})
    session_id = checkout["Location"].rstrip("/").split("/")[-1]
    client.post(f"/sandbox/checkout/{session_id}/", {"card_number": "4242 4242 4242 4242"})
    plans.append(_deliver(client, user))

    # Refunded in full: back to Starter.
    _run("stripe_sandbox", "refund", "--email", user.email)
    plans.append(_deliver(client, user))

    assert plans == ["launchpack", "launchpack", "launchpack", "starter", "flowkit", "starter"]
    rows = list(Delivery.objects.values_list("event_id", flat=True))
    assert len(rows) > len(set(rows)), "no event was delivered twice: not Stripe's delivery"
    triggers = WebhookEventTrigger.objects.all()
    assert all(t.processed and not t.exception for t in triggers), [
        (t.event_id, t.exception) for t in triggers if t.exception
    ]
