"""A deleted customer, as Stripe keeps it: retrievable as deleted, its invoices kept,
nothing more done with it."""

from __future__ import annotations

import pytest
import stripe

from tests.stripe_sandbox.helpers import checkout_create

pytestmark = pytest.mark.django_db


def test_a_deleted_customer_is_retrieved_as_deleted_and_keeps_its_invoices(subscribed, prices):
    customer_id = subscribed.customer
    invoices = [i.id for i in stripe.Invoice.list(customer=customer_id).data]

    stripe.Customer.delete(customer_id)
    gone = stripe.Customer.retrieve(customer_id)

    assert gone.to_dict() == {"id": customer_id, "object": "customer", "deleted": True}
    assert [i.id for i in stripe.Invoice.list(customer=customer_id).data] == invoices
    assert stripe.Invoice.retrieve(invoices[0]).status == "paid"
    assert customer_id not in [c.id for c in stripe.Customer.list().data]
    # Refused as for an unknown id: 404 at its own URL, 400 naming it as a parameter.
    for refused, status in (
        (lambda: stripe.Customer.modify(customer_id, name="x"), 404),
        (lambda: stripe.Customer.delete(customer_id), 404),
        (lambda: checkout_create(prices["flowkit_monthly"], customer_id), 400),
    ):
        with pytest.raises(stripe.InvalidRequestError) as raised:
            refused()
        assert (raised.value.http_status, raised.value.code) == (status, "resource_missing")
