from __future__ import annotations

import json
import time

import pytest
from djstripe.models import Event, WebhookEventTrigger

from billing.models import PlanChange
from billing.webhook_queue import process_due
from tests.billing import stripe_fakes as sf

pytestmark = pytest.mark.django_db


@pytest.fixture
def event(fake_stripe, catalog, payer):
    sub = sf.subscription(cus=payer, prc=catalog["launchpack_monthly"])
    fake_stripe.add(sub)
    return sf.event("customer.subscription.created", sub)


def _nothing_changed(customer) -> bool:
    customer.refresh_from_db()
    return (
        customer.plan == "starter"
        and not PlanChange.objects.exists()
        and not Event.objects.exists()
    )


def test_missing_signature_is_refused(deliver, event, customer):
    assert deliver(event, signed=False).status_code == 400
    assert _nothing_changed(customer)


def test_wrong_secret_is_refused(deliver, event, customer):
    assert deliver(event, secret="whsec_someone_else").status_code == 400
    assert _nothing_changed(customer)


def test_a_changed_byte_is_refused(deliver, event, customer):
    response = deliver(event, tamper=lambda body: body.replace(b"launchpack", b"launchpacK", 1))

    assert response.status_code == 400
    assert _nothing_changed(customer)


def test_a_timestamp_older_than_the_tolerance_is_refused(deliver, event, customer):
    assert deliver(event, timestamp=int(time.time()) - 301).status_code == 400
    assert _nothing_changed(customer)


def test_a_valid_signature_is_accepted(deliver, event, customer):
    assert deliver(event).status_code == 200
    customer.refresh_from_db()
    assert customer.plan == "launchpack"


def _forge(client, endpoint, event):
    """An event signed with the forger's own secret, offered in dj-stripe's DEBUG header."""
    body = json.dumps(event).encode()
    return client.post(
        f"/stripe/webhook/{endpoint.djstripe_uuid}/",
        body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sf.signature(body, "whsec_forger"),
        HTTP_X_DJSTRIPE_WEBHOOK_SECRET="whsec_forger",
    )


@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
def test_debug_header_cannot_forge_an_event(client, endpoint, event, customer, settings, debug):
    # dj-stripe lets X-Djstripe-Webhook-Secret replace the secret when DEBUG is on.
    settings.DEBUG = debug

    response = _forge(client, endpoint, event)

    assert response.status_code == 400
    assert _nothing_changed(customer)
    assert not WebhookEventTrigger.objects.exists()


def test_debug_header_works_only_when_asked_for_with_debug_on(
    client, endpoint, event, customer, settings
):
    # Forwarding with the Stripe CLI on a laptop: both switches on, explicitly.
    settings.DEBUG = True
    settings.STRIPE_WEBHOOK_DEBUG_HEADER = True

    assert _forge(client, endpoint, event).status_code == 200
    process_due()
    customer.refresh_from_db()
    assert customer.plan == "launchpack"
