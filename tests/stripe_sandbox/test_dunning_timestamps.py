"""The Stripe timestamps the app's grace period is counted from (billing/dunning.py): the
failed renewal's invoice is finalized at its first attempt, on the sandbox clock, and
keeps that time through the retries, as Stripe's automatically collected invoices do."""

from __future__ import annotations

import stripe

from devtools.stripe_sandbox import collection, store
from tests.stripe_sandbox.test_lifecycle import (
    CARD_RENEWAL_FAILS,
    DAY,
    _advance_to,
    _charged_at,
    _latest_invoice,
    _subscribe,
)


def test_a_failed_renewal_is_finalized_at_its_first_attempt_and_keeps_that_time(
    client, prices, stripe_customer
):
    sub_id = _subscribe(client, prices, stripe_customer.id, CARD_RENEWAL_FAILS)
    renewal = _charged_at(sub_id)  # the draft's hour is over: finalized and charged
    collection.clock_advance(renewal - store.now() + 120)

    invoice = _latest_invoice(sub_id)
    assert invoice.status_transitions.finalized_at == renewal
    assert invoice.effective_at == renewal
    assert invoice.attempt_count == 1
    assert invoice.attempted
    failed = stripe.Event.list(type="invoice.payment_failed", limit=1).data[0]
    assert failed.created == renewal == failed.data.object.status_transitions.finalized_at

    _advance_to(renewal + 3 * DAY)

    retried = stripe.Invoice.retrieve(invoice.id)
    assert retried.attempt_count == 2
    assert retried.status_transitions.finalized_at == renewal
    assert retried.next_payment_attempt == renewal + 8 * DAY
