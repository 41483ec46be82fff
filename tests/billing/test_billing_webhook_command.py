from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from djstripe.models import WebhookEndpoint

from billing.webhook_queue import process_due

pytestmark = pytest.mark.django_db


def _run(*args: str) -> str:
    out = StringIO()
    call_command("billing_webhook", *args, stdout=out)
    return out.getvalue()


def test_creates_the_local_endpoint_and_prints_its_url(settings):
    settings.SITE_URL = "https://app.example.com"

    out = _run("--secret", "whsec_abc")

    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret == "whsec_abc"
    assert endpoint.url == f"https://app.example.com/stripe/webhook/{endpoint.djstripe_uuid}/"
    assert endpoint.url in out


def test_running_twice_updates_the_secret_and_keeps_the_url():
    _run("--secret", "whsec_old")
    url = WebhookEndpoint.objects.get().url

    out = _run("--secret", "whsec_new")

    endpoint = WebhookEndpoint.objects.get()
    assert (endpoint.secret, endpoint.url) == ("whsec_new", url)
    assert out.startswith("Updated")


def test_refuses_something_that_is_not_a_signing_secret():
    with pytest.raises(CommandError, match="whsec_"):
        _run("--secret", "sk_test_oops")
    assert not WebhookEndpoint.objects.exists()


def test_the_printed_endpoint_accepts_events_signed_with_the_secret(
    client, fake_stripe, catalog, payer, customer
):
    from tests.billing import stripe_fakes as sf

    _run("--secret", "whsec_from_stripe_listen")
    endpoint = WebhookEndpoint.objects.get()
    sub = sf.subscription(cus=payer, prc=catalog["flowkit_monthly"])
    fake_stripe.add(sub)
    import json

    body = json.dumps(sf.event("customer.subscription.created", sub)).encode()
    response = client.post(
        endpoint.url.replace("http://127.0.0.1:8000", ""),
        body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sf.signature(body, "whsec_from_stripe_listen"),
    )

    assert response.status_code == 200
    process_due()
    customer.refresh_from_db()
    assert customer.plan == "flowkit"
