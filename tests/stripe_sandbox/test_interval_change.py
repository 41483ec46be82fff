"""Monthly to annual as Stripe does it: a new billing interval resets the billing cycle
anchor to now and invoices at once, crediting the unused time on the monthly price and
billing the annual price for a whole year from now.

The worked example: FlowKit £49.00/month (4900), 1 April to 1 May 2027, moved to FlowKit
£490.00/year (49000) halfway: a credit of -£24.50 (-2450), the year £490.00, £465.50
(46550) due now; the new period runs 16 April 2027 to 16 April 2028."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import stripe

from devtools.stripe_sandbox import store
from tests.stripe_sandbox.test_prorations import (  # noqa: F401 (fixtures)
    HALFWAY,
    _card_set,
    clock,
    flowkit,
)

NEXT_YEAR = int(datetime(2028, 4, 16, tzinfo=UTC).timestamp())
CARD_FAILS_LATER = "4000000000000341"


@pytest.fixture
def annual(prices) -> Any:
    return stripe.Price.create(
        product=prices["flowkit_monthly"].product,
        unit_amount=49000,
        currency="gbp",
        recurring={"interval": "year"},
        lookup_key="flowkit_annual",
    )


def _to_annual(sub: Any, annual: Any, **params: Any) -> Any:
    return stripe.Subscription.modify(
        sub.id,
        items=[{"id": sub["items"].data[0].id, "price": annual.id}],
        proration_behavior="always_invoice",
        **params,
    )


def test_monthly_to_annual_credits_the_month_and_bills_a_year_from_now(
    flowkit,  # noqa: F811
    annual,
    clock,  # noqa: F811
):
    clock.now = HALFWAY

    updated = _to_annual(flowkit, annual, payment_behavior="pending_if_incomplete")
    invoice = stripe.Invoice.retrieve(updated.latest_invoice)
    item = updated["items"].data[0]

    assert sorted(line.amount for line in invoice.lines.data) == [-2450, 49000]
    assert (invoice.amount_due, invoice.status) == (46550, "paid")
    assert (item.price.id, item.current_period_start, item.current_period_end) == (
        annual.id,
        HALFWAY,
        NEXT_YEAR,
    )
    assert updated.billing_cycle_anchor == HALFWAY


def test_the_preview_is_what_the_switch_charges(flowkit, annual, clock):  # noqa: F811
    clock.now = HALFWAY
    preview = stripe.Invoice.create_preview(
        customer=flowkit.customer,
        subscription=flowkit.id,
        subscription_details={
            "items": [{"id": flowkit["items"].data[0].id, "price": annual.id}],
            "proration_behavior": "always_invoice",
            "proration_date": HALFWAY,
        },
    )

    charged = stripe.Invoice.retrieve(_to_annual(flowkit, annual).latest_invoice)

    assert preview.amount_due == charged.amount_due == 46550
    assert store.get(flowkit.id, "subscription")["items"]["data"][0]["price"]["id"] == annual.id


def test_a_new_interval_invoices_now_even_with_create_prorations(flowkit, annual, clock):  # noqa: F811
    clock.now = HALFWAY

    updated = stripe.Subscription.modify(
        flowkit.id,
        items=[{"id": flowkit["items"].data[0].id, "price": annual.id}],
        proration_behavior="create_prorations",
    )

    invoice = stripe.Invoice.retrieve(updated.latest_invoice)
    assert (invoice.amount_paid, invoice.billing_reason) == (46550, "subscription_update")


def test_a_declined_card_keeps_the_monthly_price_and_the_anchor_waits(flowkit, annual, clock):  # noqa: F811
    clock.now = HALFWAY
    _card_set(flowkit.id, CARD_FAILS_LATER)

    updated = _to_annual(flowkit, annual, payment_behavior="pending_if_incomplete")

    assert updated["items"].data[0].price.id != annual.id
    assert updated.pending_update.billing_cycle_anchor == HALFWAY
    assert updated.pending_update.subscription_items[0].current_period_end == NEXT_YEAR
    assert stripe.Invoice.retrieve(updated.latest_invoice).status == "open"
