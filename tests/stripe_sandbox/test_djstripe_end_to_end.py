from __future__ import annotations

import stripe
from djstripe.models import Charge, Customer, Event, Invoice, Subscription, WebhookEventTrigger

from devtools.stripe_sandbox.delivery import deliver_pending
from devtools.stripe_sandbox.events import endpoint_ensure
from devtools.stripe_sandbox.models import Delivery
from tests.sandbox_app import app_transport
from tests.stripe_sandbox.helpers import checkout_create


def _deliver_all(client) -> None:
    report = deliver_pending(transport=app_transport(client))
    failures = list(
        Delivery.objects.exclude(state=Delivery.State.SUCCEEDED).values_list(
            "event_id", "last_error"
        )
    )
    assert report.failed == 0, failures


def test_paid_subscription_checkout_is_synced_by_djstripe(client, customer, prices):
    endpoint_ensure()
    djstripe_customer, _ = Customer.get_or_create(subscriber=customer)
    session = checkout_create(prices["flowkit_monthly"], djstripe_customer.id)

    response = client.post(
        f"/sandbox/checkout/{session.id}/", {"card_number": "4242 4242 4242 4242"}
    )
    _deliver_all(client)

    assert response.status_code == 302
    triggers = WebhookEventTrigger.objects.all()
    assert triggers.exists()
    assert all(t.processed and not t.exception for t in triggers), [
        (t.event_id, t.exception) for t in triggers if not t.processed
    ]
    subscription = Subscription.objects.get(customer=djstripe_customer)
    assert subscription.stripe_data["status"] == "active"
    assert subscription.stripe_data["items"]["data"][0]["price"]["lookup_key"] == "flowkit_monthly"
    assert Invoice.objects.get(customer=djstripe_customer).stripe_data["status"] == "paid"
    assert Charge.objects.get(customer=djstripe_customer).stripe_data["status"] == "succeeded"
    assert Event.objects.filter(type="checkout.session.completed").exists()
    assert stripe.checkout.Session.retrieve(session.id).payment_status == "paid"
