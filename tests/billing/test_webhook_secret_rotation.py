"""`billing_webhook --rotate-secret`: the old secret keeps verifying for a window, then
is refused; and Stripe's own roll, a Stripe-Signature carrying both secrets' v1."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from djstripe.models import WebhookEndpoint

from billing.models import WebhookDelivery, WebhookSecretPrevious
from billing.webhook_queue import signature_valid
from tests.billing import stripe_fakes as sf
from tests.billing.stripe_fakes import SECRET

pytestmark = pytest.mark.django_db

NEW = "whsec_new_secret_after_the_roll"


def _rotate(*args: str) -> str:
    out = StringIO()
    call_command("billing_webhook", "--rotate-secret", *args, stdout=out)
    return out.getvalue()


def _event(n: int = 1) -> dict:
    return {"id": f"evt_rotation_{n}", "object": "event", "type": "ping", "livemode": False,
            "data": {"object": {"id": "cus_rot", "object": "customer"}}}  # fmt: skip


def _post(client, endpoint: WebhookEndpoint, event: dict, signature_of) -> int:
    body = json.dumps(event).encode()
    return client.post(
        f"/stripe/webhook/{endpoint.djstripe_uuid}/",
        body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=signature_of(body),
    ).status_code


def test_during_the_window_both_secrets_verify_then_the_old_is_refused(client, endpoint):
    out = _rotate(NEW, "--keep-previous-hours", "24")

    endpoint.refresh_from_db()
    assert endpoint.secret == NEW
    previous = WebhookSecretPrevious.objects.get()
    assert previous.secret == SECRET
    assert timedelta(hours=23) < previous.expires_at - timezone.now() <= timedelta(hours=24)
    assert "secret rotated" in out
    body = json.dumps(_event()).encode()
    assert signature_valid(endpoint, body.decode(), sf.signature(body, SECRET))
    assert signature_valid(endpoint, body.decode(), sf.signature(body, NEW))
    assert _post(client, endpoint, _event(1), lambda b: sf.signature(b, SECRET)) == 200
    assert _post(client, endpoint, _event(2), lambda b: sf.signature(b, NEW)) == 200

    WebhookSecretPrevious.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    assert not signature_valid(endpoint, body.decode(), sf.signature(body, SECRET))
    assert _post(client, endpoint, _event(3), lambda b: sf.signature(b, SECRET)) == 400
    assert _post(client, endpoint, _event(4), lambda b: sf.signature(b, NEW)) == 200
    assert sorted(WebhookDelivery.objects.values_list("event_id", flat=True)) == [
        "evt_rotation_1",
        "evt_rotation_2",
        "evt_rotation_4",
    ]


def test_a_signature_header_with_both_secrets_v1_verifies(client, endpoint):
    # Stripe, while a rolled secret is still valid, signs with both: t=..,v1=old,v1=new.
    _rotate(NEW, "--keep-previous-hours", "0")  # the old one is not accepted on its own

    def both(body: bytes) -> str:
        old = sf.signature(body, SECRET)
        new_v1 = sf.signature(body, NEW, timestamp=int(old.split(",")[0][2:])).split(",")[1]
        return f"{old},{new_v1}"

    assert _post(client, endpoint, _event(1), lambda b: sf.signature(b, SECRET)) == 400
    assert _post(client, endpoint, _event(2), both) == 200
    assert WebhookDelivery.objects.get().event_id == "evt_rotation_2"


def test_rotating_twice_to_the_same_secret_keeps_the_first_previous(endpoint):
    _rotate(NEW)
    out = _rotate(NEW)

    endpoint.refresh_from_db()
    assert endpoint.secret == NEW
    assert list(WebhookSecretPrevious.objects.values_list("secret", flat=True)) == [SECRET]
    assert "nothing changed" in out


def test_rotation_with_no_endpoint_or_several_says_what_to_do(endpoint):
    WebhookEndpoint.objects.create(
        id="we_second", livemode=False, secret="whsec_2", url="http://x/", enabled_events=["*"],
        status="enabled", api_version=sf.API_VERSION,
    )  # fmt: skip

    with pytest.raises(CommandError, match=r"we_second, we_test.*--endpoint"):
        _rotate(NEW)
    _rotate(NEW, "--endpoint", "we_second")

    assert WebhookEndpoint.objects.get(id="we_second").secret == NEW
    assert WebhookEndpoint.objects.get(id="we_test").secret == SECRET
    with pytest.raises(CommandError, match="whsec_"):
        _rotate("sk_test_oops", "--endpoint", "we_test")
