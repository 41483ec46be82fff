"""A correctly signed event whose livemode is not its endpoint's is refused (400, logged,
one billing alert), before dj-stripe stores or processes anything."""

from __future__ import annotations

import pytest
from djstripe.models import Event, WebhookEventTrigger

from billing.models import BillingAlert
from tests.billing import stripe_fakes as sf

pytestmark = pytest.mark.django_db


def _live_event(payer: dict) -> dict:
    event = sf.event("customer.updated", payer)
    event["livemode"] = True
    return event


def test_a_live_event_replayed_to_the_test_endpoint_is_refused(deliver, payer, fake_stripe, caplog):
    event = _live_event(payer)

    response = deliver(event)

    assert response.status_code == 400
    assert WebhookEventTrigger.objects.count() == 0  # dj-stripe never saw it
    assert not Event.objects.filter(id=event["id"]).exists()
    assert fake_stripe.calls == []
    (alert,) = BillingAlert.objects.all()
    assert alert.kind == BillingAlert.Kind.LIVEMODE_MISMATCH
    assert alert.stripe_id == event["id"]
    assert "live-mode event (customer.updated)" in alert.detail
    assert "refused by the test endpoint" in caplog.text


def test_stripes_retries_of_it_add_to_the_one_alert(deliver, payer):
    event = _live_event(payer)

    for _ in range(3):
        assert deliver(event).status_code == 400

    (alert,) = BillingAlert.objects.all()
    assert alert.seen_count == 3


def test_an_unsigned_event_in_the_wrong_mode_raises_no_alert(deliver, payer):
    # Only someone with the endpoint's secret can make staff look: the rest is dj-stripe's
    # plain "bad signature" 400.
    assert deliver(_live_event(payer), secret="whsec_someone_else").status_code == 400
    assert deliver(_live_event(payer), signed=False).status_code == 400

    assert not BillingAlert.objects.exists()


def test_an_event_in_the_endpoints_mode_is_processed(deliver, payer):
    event = sf.event("customer.updated", payer)
    assert event["livemode"] is False

    assert deliver(event).status_code == 200
    assert not BillingAlert.objects.exists()
