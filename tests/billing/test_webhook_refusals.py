"""The Stripe webhook endpoint (billing/views.py `stripe_webhook`) checks the signature
before it parses the body, refuses a body over STRIPE_WEBHOOK_MAX_BYTES with 413 before
reading it, and a disabled endpoint refuses events. Each refusal stores nothing."""

from __future__ import annotations

import json
import logging

import pytest
from djstripe.models import WebhookEventTrigger

from billing.models import WebhookDelivery
from tests.billing import stripe_fakes as sf

pytestmark = pytest.mark.django_db


def _post(client, endpoint, body: bytes, *, signed: bool = True, **extra):
    headers = {"HTTP_STRIPE_SIGNATURE": sf.signature(body, sf.SECRET)} if signed else {}
    return client.post(
        f"/stripe/webhook/{endpoint.djstripe_uuid}/",
        body,
        content_type="application/json",
        **headers,
        **extra,
    )


def _event(padding: int = 0) -> bytes:
    event = {
        "id": "evt_limits_1",
        "object": "event",
        "type": "customer.updated",
        "livemode": False,
        "data": {"object": {"id": "cus_x", "object": "customer", "description": "x" * padding}},
    }
    return json.dumps(event).encode()


def _nothing_stored() -> bool:
    return not WebhookEventTrigger.objects.exists() and not WebhookDelivery.objects.exists()


def test_an_unsigned_body_is_refused_for_its_signature_before_it_is_parsed(client, endpoint):
    # Not JSON at all, badly signed: the answer is about the signature, so the parser
    # never saw a byte an outsider chose.
    body = b"[" * 50_000

    response = _post(client, endpoint, body, signed=False, HTTP_STRIPE_SIGNATURE="t=1,v1=00")

    assert response.status_code == 400
    assert response.content == b"The signature does not verify."
    assert _nothing_stored()


def test_a_signed_body_that_is_not_json_is_still_refused(client, endpoint):
    response = _post(client, endpoint, b"not json")

    assert response.status_code == 400
    assert response.content == b"The body is not a JSON object."
    assert _nothing_stored()


def test_a_body_that_is_not_utf8_is_refused(client, endpoint):
    response = _post(client, endpoint, b'{"id": "\xff"}')

    assert response.status_code == 400
    assert _nothing_stored()


def test_a_body_over_the_limit_is_refused_with_413(client, endpoint, settings, caplog):
    settings.STRIPE_WEBHOOK_MAX_BYTES = 2_000
    body = _event(padding=2_500)

    with caplog.at_level(logging.WARNING, logger="billing.views"):
        response = _post(client, endpoint, body)

    assert response.status_code == 413
    assert _nothing_stored()
    assert "over STRIPE_WEBHOOK_MAX_BYTES" in caplog.text


def test_a_signed_event_within_the_limit_is_taken(client, endpoint, settings):
    settings.STRIPE_WEBHOOK_MAX_BYTES = 2_000
    body = _event(padding=1_500)
    assert len(body) < 2_000

    response = _post(client, endpoint, body)

    assert response.status_code == 200
    assert WebhookDelivery.objects.filter(event_id="evt_limits_1").exists()


def test_the_limit_is_applied_before_the_body_is_read(client, endpoint):
    # The declared length says more than the limit; the test client's stream holds a few
    # bytes and fails any read past them, so a 413 here means nothing was read.
    response = _post(
        client,
        endpoint,
        b"{}",
        signed=False,
        HTTP_STRIPE_SIGNATURE="t=1,v1=00",
        CONTENT_LENGTH=str(1024 * 1024 + 1),
    )

    assert response.status_code == 413


def test_the_default_limit_is_one_mebibyte(settings):
    assert settings.STRIPE_WEBHOOK_MAX_BYTES == 1024 * 1024


def test_a_disabled_endpoint_refuses_a_correctly_signed_event(client, endpoint, caplog):
    endpoint.status = "disabled"
    endpoint.save()

    with caplog.at_level(logging.WARNING, logger="billing.views"):
        response = _post(client, endpoint, _event())

    assert response.status_code == 403
    assert response.content == b"This webhook endpoint is disabled."
    assert _nothing_stored()
    assert f"endpoint {endpoint.id} is disabled; event refused" in caplog.text


def test_an_endpoint_enabled_again_takes_events(client, endpoint):
    endpoint.status = "disabled"
    endpoint.save()
    assert _post(client, endpoint, _event()).status_code == 403

    endpoint.status = "enabled"
    endpoint.save()

    assert _post(client, endpoint, _event()).status_code == 200
