"""Prorations as Stripe makes them, through stripe-python: pending invoice items, billed
now or on the next invoice, pending updates, cancellation, and the invoice preview.

The worked example: FlowKit £49.00/month (4900) to LaunchPack £99.00/month (9900)
exactly halfway through a 30-day period (1 April 2027 to 1 May 2027): a credit of
-£24.50 (-2450) for the unused FlowKit time and £49.50 (4950) for the rest of the period
on LaunchPack, £25.00 (2500) in all.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
import stripe
from django.core.management import call_command
from djstripe.models import Customer, InvoiceItem, WebhookEventTrigger

from devtools.stripe_sandbox import store
from devtools.stripe_sandbox.delivery import deliver_pending
from devtools.stripe_sandbox.events import endpoint_ensure
from devtools.stripe_sandbox.objects import CARD_DECLINED, CARD_OK
from tests.sandbox_app import app_transport
from tests.stripe_sandbox.helpers import checkout_create, pay

APRIL_1 = int(datetime(2027, 4, 1, tzinfo=UTC).timestamp())
MAY_1 = int(datetime(2027, 5, 1, tzinfo=UTC).timestamp())
HALFWAY = APRIL_1 + 15 * 86400


@pytest.fixture
def clock(monkeypatch) -> SimpleNamespace:
    """The sandbox clock stopped at 1 April 2027 00:00 UTC; set `clock.now` to move it."""
    clock = SimpleNamespace(now=APRIL_1)
    monkeypatch.setattr(store, "time", SimpleNamespace(time=lambda: clock.now))
    return clock


@pytest.fixture
def flowkit(clock, client, prices, stripe_customer) -> Any:
    """A FlowKit monthly subscription paid on 1 April 2027 (period: 30 days)."""
    session = checkout_create(prices["flowkit_monthly"], stripe_customer.id)
    pay(client, session.id)
    sub = stripe.Subscription.retrieve(stripe.checkout.Session.retrieve(session.id).subscription)
    item = sub["items"].data[0]
    assert (item.current_period_start, item.current_period_end) == (APRIL_1, MAY_1)
    return sub


def _to_launchpack(sub: Any, prices: dict[str, Any], **params: Any) -> Any:
    return stripe.Subscription.modify(
        sub.id,
        items=[{"id": sub["items"].data[0].id, "price": prices["launchpack_monthly"].id}],
        **params,
    )


def _card_set(sub_id: str, card: str) -> None:
    """The card the sandbox charges for this subscription (as if the customer changed it)."""
    sub = store.get(sub_id, "subscription")
    sub["_card"] = card
    store.save(sub)


def _advance(days: int, hours: int = 0) -> None:
    call_command(
        "stripe_sandbox",
        "advance",
        "--days",
        str(days),
        "--hours",
        str(hours),
        stdout=io.StringIO(),
    )


def _amounts(lines: Any) -> list[int]:
    return sorted(line.amount for line in lines)


def test_create_prorations_leaves_pending_items_that_the_renewal_bills(flowkit, prices, clock):
    clock.now = HALFWAY

    updated = _to_launchpack(flowkit, prices)  # create_prorations is Stripe's default

    assert updated["items"].data[0].price.id == prices["launchpack_monthly"].id
    assert updated.latest_invoice == flowkit.latest_invoice  # nothing invoiced now
    pending = stripe.InvoiceItem.list(customer=flowkit.customer, pending=True).data
    assert sorted(ii.amount for ii in pending) == [-2450, 4950]
    for ii in pending:
        assert ii.proration is True
        assert ii.invoice is None
        assert ii.discountable is False
        assert ii.parent.subscription_details.subscription == flowkit.id
        assert (ii.period.start, ii.period.end) == (HALFWAY, MAY_1)
        assert stripe.InvoiceItem.retrieve(ii.id).amount == ii.amount
    credit = min(pending, key=lambda ii: ii.amount)
    assert credit.description == "Unused time on SmartFlow Flowkit after 16 Apr 2027"
    assert credit.pricing.price_details.price == prices["flowkit_monthly"].id

    _advance(15, hours=1)  # 1 May: the renewal, charged an hour after its invoice

    renewal = stripe.Invoice.retrieve(stripe.Subscription.retrieve(flowkit.id).latest_invoice)
    assert renewal.billing_reason == "subscription_cycle"
    assert renewal.status == "paid"
    assert _amounts(renewal.lines.data) == [-2450, 4950, 9900]
    assert renewal.amount_due == renewal.amount_paid == 12400
    prorations = [
        line for line in renewal.lines.data if line.parent.subscription_item_details.proration
    ]
    assert {line.parent.subscription_item_details.invoice_item for line in prorations} == {
        ii.id for ii in pending
    }
    assert stripe.InvoiceItem.list(customer=flowkit.customer, pending=True).data == []
    assert {stripe.InvoiceItem.retrieve(ii.id).invoice for ii in pending} == {renewal.id}


def test_always_invoice_charges_the_proration_at_once(flowkit, prices, clock):
    clock.now = HALFWAY

    updated = _to_launchpack(flowkit, prices, proration_behavior="always_invoice")

    invoice = stripe.Invoice.retrieve(updated.latest_invoice)
    assert invoice.billing_reason == "subscription_update"
    assert invoice.status == "paid"
    assert _amounts(invoice.lines.data) == [-2450, 4950]
    assert invoice.amount_paid == 2500
    assert stripe.InvoiceItem.list(customer=flowkit.customer, pending=True).data == []
    assert {ii.invoice for ii in stripe.InvoiceItem.list(customer=flowkit.customer)} == {invoice.id}

    _advance(15)

    renewal = stripe.Invoice.retrieve(stripe.Subscription.retrieve(flowkit.id).latest_invoice)
    assert _amounts(renewal.lines.data) == [9900]


def test_none_prorates_nothing(flowkit, prices, clock):
    clock.now = HALFWAY

    updated = _to_launchpack(flowkit, prices, proration_behavior="none")

    assert updated["items"].data[0].price.id == prices["launchpack_monthly"].id
    assert updated.latest_invoice == flowkit.latest_invoice
    assert stripe.InvoiceItem.list(customer=flowkit.customer).data == []


def test_prorations_are_computed_to_the_second_and_each_line_rounded(flowkit, prices, clock):
    # 130 s after halfway: 4900 × 1295870/2592000 = 2449.754 -> 2450 credit,
    # 9900 × 1295870/2592000 = 4949.504 -> 4950 charge: 2500.
    preview = stripe.Invoice.create_preview(
        subscription=flowkit.id,
        subscription_details={
            "items": [
                {"id": flowkit["items"].data[0].id, "price": prices["launchpack_monthly"].id}
            ],
            "proration_behavior": "always_invoice",
            "proration_date": HALFWAY + 130,
        },
    )
    assert _amounts(preview.lines.data) == [-2450, 4950]
    assert preview.amount_due == 2500

    # One second later the charge rounds down (4949.4997 -> 4949) and the total is 2499,
    # where rounding the 2499.75 total once, or counting whole days, would say 2500.
    clock.now = HALFWAY + 131
    updated = _to_launchpack(flowkit, prices, proration_behavior="always_invoice")

    invoice = stripe.Invoice.retrieve(updated.latest_invoice)
    assert _amounts(invoice.lines.data) == [-2450, 4949]
    assert invoice.amount_paid == 2499


def test_preview_shows_the_cost_and_creates_nothing(flowkit, prices, clock):
    clock.now = HALFWAY
    change = [{"id": flowkit["items"].data[0].id, "price": prices["launchpack_monthly"].id}]

    now = stripe.Invoice.create_preview(
        customer=flowkit.customer,
        subscription=flowkit.id,
        subscription_details={"items": change, "proration_behavior": "always_invoice"},
    )
    upcoming = stripe.Invoice.create_preview(
        subscription=flowkit.id, subscription_details={"items": change}
    )

    assert now.amount_due == 2500
    assert _amounts(now.lines.data) == [-2450, 4950]
    assert all(line.parent.subscription_item_details.proration for line in now.lines.data)
    assert upcoming.amount_due == 12400
    assert _amounts(upcoming.lines.data) == [-2450, 4950, 9900]
    assert upcoming.period_start == APRIL_1
    assert upcoming.next_payment_attempt == MAY_1
    sub = stripe.Subscription.retrieve(flowkit.id)
    assert sub["items"].data[0].price.id == prices["flowkit_monthly"].id
    assert stripe.InvoiceItem.list(customer=flowkit.customer).data == []
    assert [i.id for i in stripe.Invoice.list(subscription=flowkit.id)] == [flowkit.latest_invoice]


def test_pending_if_incomplete_keeps_the_old_price_until_the_invoice_is_paid(
    flowkit, prices, clock
):
    clock.now = HALFWAY
    _card_set(flowkit.id, CARD_DECLINED)

    updated = _to_launchpack(
        flowkit,
        prices,
        proration_behavior="always_invoice",
        payment_behavior="pending_if_incomplete",
    )

    assert updated.status == "active"
    assert updated["items"].data[0].price.id == prices["flowkit_monthly"].id
    assert updated.pending_update.expires_at == HALFWAY + 23 * 3600
    [pending_item] = updated.pending_update.subscription_items
    assert pending_item.price.id == prices["launchpack_monthly"].id
    invoice = stripe.Invoice.retrieve(updated.latest_invoice)
    assert invoice.status == "open"
    assert invoice.amount_due == 2500

    _card_set(flowkit.id, CARD_OK)
    clock.now = HALFWAY + 3600
    paid = stripe.Invoice.pay(invoice.id)

    assert paid.status == "paid"
    assert paid.amount_paid == 2500
    sub = stripe.Subscription.retrieve(flowkit.id)
    assert sub["items"].data[0].price.id == prices["launchpack_monthly"].id
    assert sub.pending_update is None


def test_pending_update_is_discarded_23_hours_later(flowkit, prices, clock):
    clock.now = HALFWAY
    _card_set(flowkit.id, CARD_DECLINED)
    updated = _to_launchpack(
        flowkit,
        prices,
        proration_behavior="always_invoice",
        payment_behavior="pending_if_incomplete",
    )

    _advance(1)

    sub = stripe.Subscription.retrieve(flowkit.id)
    assert sub.pending_update is None
    assert sub["items"].data[0].price.id == prices["flowkit_monthly"].id
    assert stripe.Invoice.retrieve(updated.latest_invoice).status == "void"


def test_a_declined_proration_without_pending_update_leaves_it_past_due(flowkit, prices, clock):
    clock.now = HALFWAY
    _card_set(flowkit.id, CARD_DECLINED)

    updated = _to_launchpack(flowkit, prices, proration_behavior="always_invoice")

    assert updated.status == "past_due"
    assert updated["items"].data[0].price.id == prices["launchpack_monthly"].id
    assert stripe.Invoice.retrieve(updated.latest_invoice).status == "open"


def test_cancel_now_with_invoice_now_and_prorate_bills_pending_items_and_credit(
    flowkit, prices, clock
):
    clock.now = HALFWAY
    _to_launchpack(flowkit, prices)
    clock.now = HALFWAY + 5 * 86400  # 10 of 30 days left on LaunchPack: 3300 unused

    canceled = stripe.Subscription.cancel(flowkit.id, invoice_now=True, prorate=True)

    assert canceled.status == "canceled"
    final = stripe.Invoice.retrieve(canceled.latest_invoice)
    assert _amounts(final.lines.data) == [-3300, -2450, 4950]
    assert final.total == -800
    assert final.amount_due == 0
    assert final.ending_balance == -800
    assert stripe.InvoiceItem.list(customer=flowkit.customer, pending=True).data == []


def test_cancel_now_without_invoice_now_leaves_the_pending_items(flowkit, prices, clock):
    clock.now = HALFWAY
    _to_launchpack(flowkit, prices)

    canceled = stripe.Subscription.cancel(flowkit.id)

    assert canceled.status == "canceled"
    assert canceled.latest_invoice == flowkit.latest_invoice
    pending = stripe.InvoiceItem.list(customer=flowkit.customer, pending=True).data
    assert sorted(ii.amount for ii in pending) == [-2450, 4950]


def test_cancel_at_period_end_collects_the_pending_prorations_then(flowkit, prices, clock):
    clock.now = HALFWAY
    _to_launchpack(flowkit, prices)
    stripe.Subscription.modify(flowkit.id, cancel_at_period_end=True)

    _advance(15)

    sub = stripe.Subscription.retrieve(flowkit.id)
    assert sub.status == "canceled"
    final = stripe.Invoice.retrieve(sub.latest_invoice)
    assert _amounts(final.lines.data) == [-2450, 4950]
    assert final.amount_paid == 2500
    assert stripe.InvoiceItem.list(customer=flowkit.customer, pending=True).data == []


def test_djstripe_syncs_the_proration_events(clock, client, customer, prices):
    endpoint_ensure()
    djstripe_customer, _ = Customer.get_or_create(subscriber=customer)
    session = checkout_create(prices["flowkit_monthly"], djstripe_customer.id)
    pay(client, session.id)
    sub = stripe.Subscription.retrieve(stripe.checkout.Session.retrieve(session.id).subscription)
    clock.now = HALFWAY
    _to_launchpack(sub, prices)
    _advance(15)

    report = deliver_pending(transport=app_transport(client))

    triggers = WebhookEventTrigger.objects.all()
    assert report.failed == 0
    assert all(t.processed and not t.exception for t in triggers), [
        (t.event_id, t.exception) for t in triggers if not t.processed
    ]
    synced = InvoiceItem.objects.filter(customer=djstripe_customer)
    assert sorted(ii.stripe_data["amount"] for ii in synced) == [-2450, 4950]


def test_a_quantity_change_prorates_the_extra_seats(flowkit, prices, clock):
    clock.now = HALFWAY
    item = flowkit["items"].data[0]

    stripe.Subscription.modify(flowkit.id, items=[{"id": item.id, "quantity": 3}])

    pending = stripe.InvoiceItem.list(customer=flowkit.customer, pending=True).data
    assert sorted((ii.amount, ii.quantity) for ii in pending) == [(-2450, 1), (7350, 3)]
    assert {ii.description for ii in pending} == {
        "Unused time on SmartFlow Flowkit after 16 Apr 2027",
        "Remaining time on 3 × SmartFlow Flowkit after 16 Apr 2027",
    }


def test_a_proration_date_outside_the_period_is_refused(flowkit, prices, clock):
    clock.now = HALFWAY

    with pytest.raises(stripe.InvalidRequestError) as exc:
        _to_launchpack(flowkit, prices, proration_date=MAY_1 + 1)

    assert exc.value.param == "proration_date"
    assert stripe.Subscription.retrieve(flowkit.id)["items"].data[0].price.id == (
        prices["flowkit_monthly"].id
    )


def test_a_deleted_pending_item_is_not_billed(flowkit, prices, clock):
    clock.now = HALFWAY
    _to_launchpack(flowkit, prices)
    credit = min(
        stripe.InvoiceItem.list(customer=flowkit.customer, pending=True).data,
        key=lambda ii: ii.amount,
    )

    assert stripe.InvoiceItem.delete(credit.id).deleted is True
    _advance(15)

    renewal = stripe.Invoice.retrieve(stripe.Subscription.retrieve(flowkit.id).latest_invoice)
    assert _amounts(renewal.lines.data) == [4950, 9900]


def test_a_taxed_upgrade_credits_the_vat_of_the_unused_time(clock, client, prices, stripe_customer):
    # As Stripe Tax: the credit for the unused time carries negative tax, so VAT is on the
    # difference (here 20 % of £25.00), not on the new plan's part alone.
    session = checkout_create(
        prices["flowkit_monthly"],
        stripe_customer.id,
        automatic_tax={"enabled": True},
        customer_update={"address": "auto"},
    )
    client.post(
        f"/sandbox/checkout/{session.id}/", {"card_number": "4242 4242 4242 4242", "country": "GB"}
    )
    flowkit = stripe.Subscription.retrieve(
        stripe.checkout.Session.retrieve(session.id).subscription
    )
    clock.now = HALFWAY

    updated = _to_launchpack(flowkit, prices, proration_behavior="always_invoice")

    invoice = stripe.Invoice.retrieve(updated.latest_invoice)
    taxes = sorted((line.amount, line.taxes[0].amount) for line in invoice.lines.data)
    assert taxes == [(-2450, -490), (4950, 990)]
    assert (invoice.subtotal, invoice.total_taxes[0].amount, invoice.total) == (2500, 500, 3000)
    assert invoice.amount_paid == 3000
