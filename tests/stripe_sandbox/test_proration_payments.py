"""A proration invoice is charged off-session with the card on file, as Stripe charges
any payment after the card was set up: 4000 0000 0000 0341 attaches and then fails every
charge, 4000 0027 6000 3184 asks for 3-D Secure on every payment."""

from __future__ import annotations

import stripe

from devtools.stripe_sandbox import collection, store
from tests.stripe_sandbox.test_prorations import (  # noqa: F401 (fixtures)
    HALFWAY,
    _card_set,
    _to_launchpack,
    clock,
    flowkit,
)

CARD_FAILS_LATER = "4000000000000341"
CARD_3DS_ALWAYS = "4000002760003184"


def _upgrade(flowkit, prices):  # noqa: F811
    return _to_launchpack(
        flowkit,
        prices,
        proration_behavior="always_invoice",
        payment_behavior="pending_if_incomplete",
    )


def test_card_0341_declines_the_proration_and_the_update_waits(flowkit, prices, clock):  # noqa: F811
    clock.now = HALFWAY
    _card_set(flowkit.id, CARD_FAILS_LATER)

    updated = _upgrade(flowkit, prices)

    assert updated["items"].data[0].price.id == prices["flowkit_monthly"].id
    assert updated.pending_update is not None
    invoice = stripe.Invoice.retrieve(updated.latest_invoice)
    assert (invoice.status, invoice.amount_due, invoice.attempt_count) == ("open", 2500, 1)
    [intent] = stripe.PaymentIntent.list(customer=flowkit.customer, limit=1).data
    assert intent.status == "requires_payment_method"


def test_card_3184_makes_the_proration_wait_for_3d_secure_then_applies_it(
    flowkit,  # noqa: F811
    prices,
    clock,  # noqa: F811
):
    clock.now = HALFWAY
    _card_set(flowkit.id, CARD_3DS_ALWAYS)

    updated = _upgrade(flowkit, prices)

    assert updated["items"].data[0].price.id == prices["flowkit_monthly"].id
    invoice = stripe.Invoice.retrieve(updated.latest_invoice)
    assert invoice.status == "open"
    [intent] = stripe.PaymentIntent.list(customer=flowkit.customer, limit=1).data
    assert intent.status == "requires_action"
    kinds = [e.type for e in stripe.Event.list(limit=20).data]
    assert "invoice.payment_action_required" in kinds

    # The customer completes 3-D Secure on the hosted invoice page.
    clock.now = HALFWAY + 600
    assert collection.invoice_pay(invoice.id, authenticated=True) == collection.PAID

    sub = stripe.Subscription.retrieve(flowkit.id)
    assert sub["items"].data[0].price.id == prices["launchpack_monthly"].id
    assert sub.pending_update is None
    assert store.get(invoice.id, "invoice")["status"] == "paid"
