"""Stripe's rate limit under a burst of webhooks: the workers, at the product's default
concurrency, meet the sandbox's 429s (STRIPE_SANDBOX_RATE_LIMIT, shared by every
connection through PostgreSQL) and process every event anyway, none counted as a failed
attempt, none an alert (billing/stripe_pace.py, billing/webhook_queue.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import stripe

from billing.models import BillingAlert, WebhookDelivery
from billing.stripe_pace import Pace, PacedHTTPClient
from devtools.stripe_sandbox import ratelimit
from tests.reliability.helpers import checkout_event, post_signed, until, workers

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _bucket_fresh() -> Iterator[None]:
    ratelimit.reset()
    yield
    ratelimit.reset()
    ratelimit.close()  # its own connection, not left open on the test database


def test_a_burst_beyond_stripes_limit_is_processed_with_no_429_counted_as_a_failure(
    postgresql, webhook_url, fake_stripe, catalog, settings, monkeypatch, caplog
):
    # Stripe allows 4 requests a second here; the deployment does not pace (off), so the
    # burst meets Stripe's 429s and only their handling stands between them and failures.
    settings.STRIPE_SANDBOX_RATE_LIMIT = 4.0
    monkeypatch.setattr(stripe, "default_http_client", PacedHTTPClient(fake_stripe, Pace(0)))
    buyers = [checkout_event(fake_stripe, catalog, n) for n in range(12)]
    caplog.set_level(logging.INFO, logger="billing")

    with workers(2):
        for _, _, event in buyers:
            assert post_signed(webhook_url, event) == 200
        until(
            lambda: (
                WebhookDelivery.objects.filter(state=WebhookDelivery.State.PROCESSED).count()
                == len(buyers)
            ),
            "every delivery is processed",
            seconds=240,
        )

    assert "Stripe answered 429" in caplog.text  # the limit was met, and waited out
    for user, plan, _ in buyers:
        user.refresh_from_db()
        assert user.plan == plan
    assert set(WebhookDelivery.objects.values_list("attempts", flat=True)) == {0}
    assert not WebhookDelivery.objects.exclude(last_error="").exists()
    assert not BillingAlert.objects.exists()
