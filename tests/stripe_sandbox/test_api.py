from __future__ import annotations

import pytest
import stripe

from devtools.stripe_sandbox.client import form_decode
from tests.stripe_sandbox.helpers import checkout_create, pay


def test_form_encoding_is_decoded_into_nested_params():
    body = (
        "mode=subscription&metadata[djstripe_subscriber]=7&metadata[0]=zero"
        "&line_items[0][price]=price_1&line_items[0][quantity]=2&line_items[1][price]=price_2"
        "&expand[0]=line_items&expand[]=customer&lookup_keys[0]=a&lookup_keys[1]=b"
    )

    params = form_decode(body)

    assert params["metadata"] == {"djstripe_subscriber": "7", "0": "zero"}
    assert params["line_items"] == [{"price": "price_1", "quantity": "2"}, {"price": "price_2"}]
    assert params["expand"] == ["line_items", "customer"]
    assert params["lookup_keys"] == ["a", "b"]


def test_prices_are_found_by_lookup_key_with_their_product(prices):
    found = stripe.Price.list(lookup_keys=["flowkit_monthly"], active=True, expand=["data.product"])

    assert [p.id for p in found.data] == [prices["flowkit_monthly"].id]
    assert found.data[0].product.metadata["plan"] == "flowkit"
    assert found.data[0].recurring.interval == "month"


def test_prices_filter_by_type_product_and_active(prices):
    product = prices["flowkit_monthly"].product
    stripe.Price.modify(prices["flowkit_oneoff"].id, active=False)

    assert {p.id for p in stripe.Price.list(product=product, active=True)} == {
        prices["flowkit_monthly"].id
    }
    assert {p.type for p in stripe.Price.list(type="one_time").data} == {"one_time"}


def test_price_create_takes_a_lookup_key_once(prices):
    with pytest.raises(stripe.InvalidRequestError) as exc:
        stripe.Price.create(
            product=prices["flowkit_monthly"].product,
            unit_amount=1,
            currency="gbp",
            lookup_key="flowkit_monthly",
        )

    assert exc.value.param == "lookup_key"


def test_customers_are_listed_by_email(stripe_customer):
    stripe.Customer.create(email="someone@example.com")

    found = stripe.Customer.list(email="customer@example.com")

    assert [c.id for c in found.data] == [stripe_customer.id]
    assert stripe_customer.id.startswith("cus_")
    assert stripe_customer.livemode is False


def test_customer_update_merges_metadata_and_emits_previous_attributes(stripe_customer):
    updated = stripe.Customer.modify(stripe_customer.id, name="Ada", metadata={"x": "1"})

    assert updated.name == "Ada"
    assert updated.metadata.to_dict() == {
        "djstripe_subscriber": stripe_customer.metadata["djstripe_subscriber"],
        "x": "1",
    }
    event = stripe.Event.list(type="customer.updated").data[0]
    assert event.data.previous_attributes["name"] is None
    assert event.api_version == "2026-08-26.dahlia"


def test_unknown_id_is_404_resource_missing(db):
    with pytest.raises(stripe.InvalidRequestError) as exc:
        stripe.Subscription.retrieve("sub_nope")

    assert exc.value.http_status == 404
    assert exc.value.code == "resource_missing"


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"line_items": [{"price": "price_nope", "quantity": 1}]}, "line_items[0][price]"),
        ({"success_url": ""}, "success_url"),
        ({"mode": "rent"}, "mode"),
        ({"mode": "payment"}, "line_items[0][price]"),
    ],
)
def test_bad_checkout_params_are_400_with_the_param(prices, stripe_customer, change, param):
    params = {
        "mode": "subscription",
        "customer": stripe_customer.id,
        "line_items": [{"price": prices["flowkit_monthly"].id, "quantity": 1}],
        "success_url": "http://testserver/ok/",
        **change,
    }

    with pytest.raises(stripe.InvalidRequestError) as exc:
        stripe.checkout.Session.create(**params)

    assert exc.value.http_status == 400
    assert exc.value.param == param


def test_checkout_line_items_and_expansions(prices, stripe_customer):
    session = checkout_create(prices["flowkit_monthly"], stripe_customer.id)

    items = stripe.checkout.Session.list_line_items(session.id)
    full = stripe.checkout.Session.retrieve(
        session.id, expand=["line_items", "total_details.breakdown", "customer"]
    )

    assert items.data[0].price.id == prices["flowkit_monthly"].id
    assert items.data[0].amount_total == 4900
    assert full.line_items.data[0].quantity == 1
    assert full.total_details.breakdown.to_dict() == {"discounts": [], "taxes": []}
    assert full.customer.email == "customer@example.com"


def test_open_sessions_can_be_listed_and_expired(prices, stripe_customer):
    session = checkout_create(prices["flowkit_monthly"], stripe_customer.id)

    open_ones = stripe.checkout.Session.list(customer=stripe_customer.id, status="open")
    stripe.checkout.Session.expire(session.id)

    assert [s.id for s in open_ones.data] == [session.id]
    assert stripe.checkout.Session.retrieve(session.id).status == "expired"


def test_lists_page_with_has_more_and_starting_after(db):
    made = [stripe.Customer.create(email=f"c{i}@example.com").id for i in range(3)]

    first = stripe.Customer.list(limit=2)
    rest = stripe.Customer.list(limit=2, starting_after=first.data[-1].id)

    assert first.has_more is True
    assert rest.has_more is False
    assert [c.id for c in first.data + rest.data] == made[::-1]
    assert [c.id for c in stripe.Customer.list(limit=1).auto_paging_iter()] == made[::-1]


@pytest.mark.parametrize(
    ("lister", "created", "param"),
    [
        (stripe.Event.list, {"gte": "yesterday"}, "created[gte]"),
        (stripe.Event.list, "1.5", "created"),
        (stripe.Customer.list, {"lt": "soon"}, "created[lt]"),
    ],
)
def test_a_created_bound_that_is_not_an_integer_is_400_with_the_param(db, lister, created, param):
    # Stripe answers 400 "Invalid integer" naming the bound (the sandbox once answered
    # 500), for the Events API (paged in SQL) and any other list alike.
    with pytest.raises(stripe.InvalidRequestError) as exc:
        lister(created=created)

    assert exc.value.http_status == 400
    assert exc.value.param == param
    assert "Invalid integer" in str(exc.value)


def test_created_bounds_filter_a_list(db):
    made = stripe.Customer.create(email="c@example.com")

    assert [c.id for c in stripe.Customer.list(created={"gte": made.created})] == [made.id]
    assert list(stripe.Customer.list(created={"gt": made.created})) == []
    assert [c.id for c in stripe.Customer.list(created=made.created)] == [made.id]


def test_idempotency_key_replays_the_first_answer(db):
    first = stripe.Customer.create(email="a@example.com", idempotency_key="key-1")
    again = stripe.Customer.create(email="a@example.com", idempotency_key="key-1")

    assert again.id == first.id
    assert len(stripe.Customer.list(email="a@example.com").data) == 1


def test_account_and_product_features_are_answered(prices):
    product = prices["flowkit_monthly"].product

    assert stripe.Account.retrieve().id.startswith("acct_")
    assert stripe.Product.list_features(product).data == []


def test_subscription_modify_switches_the_price(subscribed, prices):
    item = subscribed["items"].data[0]

    updated = stripe.Subscription.modify(
        subscribed.id,
        items=[{"id": item.id, "price": prices["launchpack_monthly"].id}],
        proration_behavior="create_prorations",
    )

    assert updated["items"].data[0].price.id == prices["launchpack_monthly"].id
    # create_prorations bills the difference on the next invoice, not now (test_prorations.py).
    assert updated.latest_invoice == subscribed.latest_invoice
    assert len(stripe.InvoiceItem.list(customer=subscribed.customer, pending=True).data) == 2


def test_subscription_modify_with_unknown_item_is_400(subscribed, prices):
    with pytest.raises(stripe.InvalidRequestError) as exc:
        stripe.Subscription.modify(
            subscribed.id, items=[{"id": "si_nope", "price": prices["launchpack_monthly"].id}]
        )

    assert exc.value.param == "items[0][id]"


def test_cancel_at_period_end_and_delete(subscribed):
    assert stripe.Subscription.modify(subscribed.id, cancel_at_period_end=True).cancel_at_period_end

    canceled = stripe.Subscription.cancel(subscribed.id)

    assert canceled.status == "canceled"
    assert stripe.Subscription.list(customer=subscribed.customer).data == []
    assert len(stripe.Subscription.list(customer=subscribed.customer, status="all").data) == 1


def test_refund_by_payment_intent_refunds_the_charge(client, prices, stripe_customer):
    session = checkout_create(prices["flowkit_oneoff"], stripe_customer.id, mode="payment")
    pay(client, session.id)
    pi = stripe.checkout.Session.retrieve(session.id).payment_intent

    refund = stripe.Refund.create(payment_intent=pi)

    charge = stripe.Charge.retrieve(refund.charge)
    assert refund.id.startswith("re_")
    assert refund.status == "succeeded"
    assert charge.refunded is True
    assert charge.amount_refunded == 147000
    assert stripe.Refund.retrieve(refund.id).amount == 147000
    assert stripe.Event.list(limit=2).data[0].type == "charge.refunded"
    with pytest.raises(stripe.InvalidRequestError):
        stripe.Refund.create(charge=charge.id)


def test_an_invoice_names_the_payment_intent_that_paid_it_as_an_invoice_payment(subscribed):
    invoice = stripe.Invoice.retrieve(subscribed.latest_invoice, expand=["payments"])
    charge = stripe.Charge.list(customer=subscribed.customer).data[0]

    listed = stripe.InvoicePayment.list(invoice=invoice.id, status="paid").data

    assert [p.payment.payment_intent for p in listed] == [charge.payment_intent]
    assert listed[0].amount_paid == invoice.amount_paid == 4900
    assert listed[0].is_default
    assert [p.id for p in invoice.payments.data] == [listed[0].id]
    assert stripe.InvoicePayment.retrieve(listed[0].id).invoice == invoice.id
    assert stripe.InvoicePayment.list(invoice=invoice.id, status="open").data == []


def test_invoices_and_charges_are_listed_by_customer(subscribed):
    invoices = stripe.Invoice.list(customer=subscribed.customer)
    charges = stripe.Charge.list(customer=subscribed.customer)

    assert len(invoices.data) == 1
    assert invoices.data[0].status == "paid"
    assert stripe.Invoice.list(subscription=subscribed.id).data[0].id == invoices.data[0].id
    assert charges.data[0].payment_intent.startswith("pi_")
    assert stripe.PaymentIntent.retrieve(charges.data[0].payment_intent).status == "succeeded"


def test_unrecognized_url_is_404(db):
    with pytest.raises(stripe.InvalidRequestError) as exc:
        stripe.Coupon.retrieve("co_nope")

    assert exc.value.http_status == 404
