from __future__ import annotations

import json
from collections.abc import Mapping
from io import StringIO

import pytest
import stripe
from django.core.management import CommandError, call_command
from djstripe.models import Charge, Customer, Subscription, WebhookEventTrigger

from devtools.stripe_sandbox import delivery, store
from devtools.stripe_sandbox.delivery import deliver_pending
from devtools.stripe_sandbox.models import Delivery
from tests.sandbox_app import app_transport
from tests.stripe_sandbox.helpers import checkout_create, event_types, pay

EMAIL = "customer@example.com"


def _run(*args: str) -> str:
    out = StringIO()
    call_command("stripe_sandbox", *args, stdout=out)
    return out.getvalue().strip()


def _period_end(sub_id: str) -> int:
    return store.find(sub_id)["items"]["data"][0]["current_period_end"]


def test_renew_starts_the_next_paid_period(subscribed):
    end = _period_end(subscribed.id)
    before = event_types()

    summary = _run("renew", "--email", EMAIL)

    sub = stripe.Subscription.retrieve(subscribed.id, expand=["latest_invoice"])
    assert sub["items"].data[0].current_period_start == end
    assert sub.status == "active"
    assert sub.latest_invoice.billing_reason == "subscription_cycle"
    assert sub.latest_invoice.status == "paid"
    assert event_types()[len(before) :] == [
        "customer.subscription.updated",
        "invoice.created",
        "invoice.finalized",
        "charge.succeeded",
        "payment_intent.succeeded",
        "invoice.paid",
        "invoice.payment_succeeded",
    ]
    assert summary.startswith(f"Renewed {subscribed.id}")
    assert "\n" not in summary


def test_fail_makes_the_subscription_past_due(subscribed):
    before = event_types()

    _run("fail", "--email", EMAIL)

    sub = stripe.Subscription.retrieve(subscribed.id, expand=["latest_invoice"])
    assert sub.status == "past_due"
    assert sub.latest_invoice.status == "open"
    assert sub.latest_invoice.attempt_count == 1
    new = event_types()[len(before) :]
    assert new[-4:] == [
        "charge.failed",
        "payment_intent.payment_failed",
        "invoice.payment_failed",
        "customer.subscription.updated",
    ]
    event = stripe.Event.list(type="customer.subscription.updated", limit=1).data[0]
    assert event.data.previous_attributes["status"] == "active"


def test_renew_after_a_failure_makes_it_active_again(subscribed):
    _run("fail", "--email", EMAIL)

    _run("renew", "--email", EMAIL)

    assert stripe.Subscription.retrieve(subscribed.id).status == "active"


def test_refund_refunds_the_latest_charge_once(subscribed):
    summary = _run("refund", "--email", EMAIL)
    again = _run("refund", "--email", EMAIL)

    charge = stripe.Charge.list(customer=subscribed.customer).data[0]
    assert charge.refunded is True
    assert charge.amount_refunded == 4900
    assert summary.startswith("Refunded £49.00")
    assert "nothing to do" in again
    assert event_types().count("charge.refunded") == 1


def test_delete_cancels_the_subscription_once(subscribed):
    _run("delete", "--email", EMAIL)
    again = _run("delete", "--email", EMAIL)

    assert stripe.Subscription.retrieve(subscribed.id).status == "canceled"
    assert "nothing to cancel" in again
    assert event_types().count("customer.subscription.deleted") == 1


def test_advance_renews_subscriptions_whose_period_ended(subscribed):
    summary = _run("advance", "--days", "32")

    sub = stripe.Subscription.retrieve(subscribed.id)
    assert sub.status == "active"
    assert sub["items"].data[0].current_period_end > store.now()
    assert "1 renewed, 0 failed" in summary


def test_advance_fails_the_renewal_of_card_0341(client, prices, stripe_customer):
    session = checkout_create(prices["flowkit_monthly"], stripe_customer.id)
    pay(client, session.id, "4000 0000 0000 0341")

    summary = _run("advance", "--days", "32")

    sub_id = stripe.checkout.Session.retrieve(session.id).subscription
    assert stripe.Subscription.retrieve(sub_id).status == "past_due"
    assert "0 renewed, 1 failed" in summary


def test_advance_ends_subscriptions_set_to_cancel(subscribed):
    stripe.Subscription.modify(subscribed.id, cancel_at_period_end=True)

    _run("advance", "--days", "40")

    assert stripe.Subscription.retrieve(subscribed.id).status == "canceled"


def test_advance_with_nothing_due_changes_nothing(subscribed):
    summary = _run("advance", "--days", "1")

    assert "0 renewed, 0 failed, 0 ended" in summary


def test_load_stores_objects_from_a_list_envelope(tmp_path, db):
    path = tmp_path / "objects.json"
    path.write_text(
        json.dumps(
            {
                "object": "list",
                "data": [
                    {
                        "id": "prod_loaded",
                        "object": "product",
                        "name": "Loaded",
                        "created": 1,
                        "active": True,
                    },
                    {
                        "id": "cus_loaded",
                        "object": "customer",
                        "email": "l@example.com",
                        "created": 2,
                    },
                ],
            }
        )
    )

    summary = _run("load", str(path))
    _run("load", str(path))

    assert summary == f"Loaded 2 object(s) from {path}."
    assert stripe.Product.retrieve("prod_loaded").name == "Loaded"
    assert stripe.Customer.list(email="l@example.com").data[0].id == "cus_loaded"


def test_load_refuses_what_is_not_stripe_objects(tmp_path, db):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([{"name": "no id"}]))

    with pytest.raises(CommandError):
        _run("load", str(path))


def test_deliver_sends_pending_events_over_http(monkeypatch, stripe_customer):
    sent: list[str] = []

    def receiver(url: str, body: bytes, headers: Mapping[str, str]) -> int:
        sent.append(json.loads(body)["type"])
        return 200

    monkeypatch.setattr(delivery, "http_transport", receiver)

    summary = _run("deliver")

    assert sent == ["customer.created"]
    assert summary == "Delivered 1 event(s); 0 attempt(s) failed."
    assert _run("deliver") == "Delivered 0 event(s); 0 attempt(s) failed."


def test_unknown_email_is_a_clear_error(db):
    with pytest.raises(CommandError, match=r"nobody@example\.com"):
        _run("renew", "--email", "nobody@example.com")


def test_djstripe_follows_failure_and_refund(client, customer, prices):
    djstripe_customer, _ = Customer.get_or_create(subscriber=customer)
    session = checkout_create(prices["flowkit_monthly"], djstripe_customer.id)
    pay(client, session.id)

    _run("fail", "--email", EMAIL)
    _run("refund", "--email", EMAIL)
    report = deliver_pending(transport=app_transport(client))

    assert report.failed == 0, list(Delivery.objects.values_list("event_id", "last_error"))
    assert all(t.processed and not t.exception for t in WebhookEventTrigger.objects.all())
    assert Subscription.objects.get(customer=djstripe_customer).stripe_data["status"] == "past_due"
    refunded = Charge.objects.get(customer=djstripe_customer, stripe_data__status="succeeded")
    assert refunded.stripe_data["refunded"] is True


def test_renew_ends_a_subscription_set_to_cancel(subscribed):
    stripe.Subscription.modify(subscribed.id, cancel_at_period_end=True)

    summary = _run("renew", "--email", EMAIL)

    assert stripe.Subscription.retrieve(subscribed.id).status == "canceled"
    assert "has ended" in summary
