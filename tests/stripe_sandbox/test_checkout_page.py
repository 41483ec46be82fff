from __future__ import annotations

import re

import pytest
import stripe
from django.test import Client

from devtools.stripe_sandbox import store
from tests.stripe_sandbox.helpers import checkout_create, event_types, pay

SUBSCRIPTION_EVENTS = [
    "payment_method.attached",
    "customer.subscription.created",
    "invoice.created",
    "invoice.finalized",
    "charge.succeeded",
    "payment_intent.succeeded",
    "invoice.paid",
    "invoice.payment_succeeded",
    "checkout.session.completed",
]


def _new_events(before: list[str]) -> list[str]:
    return event_types()[len(before) :]


def test_checkout_page_shows_what_is_bought_without_login(client, prices, stripe_customer):
    session = checkout_create(prices["flowkit_monthly"], stripe_customer.id)

    response = client.get(f"/sandbox/checkout/{session.id}/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "SmartFlow Flowkit" in page
    assert "£49.00" in page
    assert "per month" in page
    assert 'name="card_number"' in page
    assert "http://testserver/pricing/" in page


def test_checkout_session_url_points_at_the_sandbox_page(prices, stripe_customer):
    session = checkout_create(prices["flowkit_oneoff"], stripe_customer.id, mode="payment")

    assert session.url == f"http://testserver/sandbox/checkout/{session.id}/"
    assert (session.status, session.payment_status) == ("open", "unpaid")


def test_one_off_price_is_shown_as_one_off(client, prices, stripe_customer):
    session = checkout_create(prices["flowkit_oneoff"], stripe_customer.id, mode="payment")

    page = client.get(f"/sandbox/checkout/{session.id}/").content.decode()

    assert "£1,470.00" in page
    assert "one-off" in page


def test_paying_a_subscription_creates_it_and_redirects_to_success(client, prices, stripe_customer):
    session = checkout_create(
        prices["flowkit_monthly"],
        stripe_customer.id,
        subscription_data={"metadata": {"plan": "flowkit"}},
    )
    before = event_types()

    response = pay(client, session.id, "4242424242424242")

    assert response.status_code == 302
    assert response["Location"] == f"http://testserver/billing/success/?session_id={session.id}"
    paid = stripe.checkout.Session.retrieve(session.id, expand=["subscription", "line_items"])
    assert (paid.status, paid.payment_status) == ("complete", "paid")
    assert paid.line_items.data[0].price.id == prices["flowkit_monthly"].id
    sub = paid.subscription
    assert sub.status == "active"
    assert sub.metadata["plan"] == "flowkit"
    item = sub["items"].data[0]
    assert item.price.id == prices["flowkit_monthly"].id
    assert 27 * 86400 <= item.current_period_end - item.current_period_start <= 31 * 86400
    invoice = stripe.Invoice.retrieve(sub.latest_invoice)
    assert invoice.status == "paid"
    assert invoice.amount_paid == 4900
    assert invoice.parent.subscription_details.subscription == sub.id
    assert invoice.lines.data[0].amount == 4900
    assert _new_events(before) == SUBSCRIPTION_EVENTS


def test_paying_one_off_creates_a_succeeded_payment(client, prices, stripe_customer):
    session = checkout_create(
        prices["launchpack_oneoff"],
        stripe_customer.id,
        mode="payment",
        payment_intent_data={"metadata": {"plan": "launchpack"}},
    )
    before = event_types()

    pay(client, session.id)

    paid = stripe.checkout.Session.retrieve(session.id, expand=["payment_intent.latest_charge"])
    assert paid.payment_status == "paid"
    assert paid.subscription is None
    assert paid.payment_intent.status == "succeeded"
    assert paid.payment_intent.metadata["plan"] == "launchpack"
    assert paid.payment_intent.latest_charge.status == "succeeded"
    assert paid.payment_intent.latest_charge.amount == 297000
    assert _new_events(before) == [
        "charge.succeeded",
        "payment_intent.succeeded",
        "checkout.session.completed",
    ]


def test_a_one_off_with_invoice_creation_leaves_a_paid_invoice_with_its_code_and_vat(
    client, prices, stripe_customer
):
    # Stripe's `invoice_creation[enabled]`: once paid, the session names a paid invoice
    # with the line, the discount and the VAT it charged (a UK business's VAT invoice).
    coupon = stripe.Coupon.create(percent_off=20, duration="once")
    stripe.PromotionCode.create(code="SAVE20", promotion={"type": "coupon", "coupon": coupon.id})
    session = checkout_create(
        prices["flowkit_oneoff"],
        stripe_customer.id,
        mode="payment",
        allow_promotion_codes=True,
        automatic_tax={"enabled": True},
        billing_address_collection="required",
        customer_update={"address": "auto", "name": "auto"},
        invoice_creation={"enabled": True, "invoice_data": {"metadata": {"plan": "flowkit"}}},
    )
    before = event_types()

    client.post(
        f"/sandbox/checkout/{session.id}/",
        {"card_number": "4242 4242 4242 4242", "promotion_code": "SAVE20", "country": "GB"},
    )

    paid = stripe.checkout.Session.retrieve(session.id, expand=["invoice"])
    invoice = paid.invoice
    assert paid.invoice_creation.enabled is True
    # £1,470.00 less 20 % is £1,176.00, plus 20 % VAT: £1,411.20, as charged.
    assert (paid.amount_total, paid.total_details.amount_tax) == (141120, 23520)
    assert (invoice.status, invoice.customer, invoice.billing_reason) == (
        "paid",
        stripe_customer.id,
        "manual",
    )
    assert (invoice.subtotal, invoice.total, invoice.amount_paid) == (147000, 141120, 141120)
    assert invoice.total_discount_amounts[0].amount == 29400
    assert invoice.total_taxes[0].amount == 23520
    assert [line.amount for line in invoice.lines.data] == [147000]
    assert invoice.metadata["plan"] == "flowkit"
    assert invoice.hosted_invoice_url
    assert invoice.invoice_pdf
    assert _new_events(before) == [
        "charge.succeeded",
        "payment_intent.succeeded",
        "invoice.created",
        "invoice.finalized",
        "invoice.paid",
        "invoice.payment_succeeded",
        "checkout.session.completed",
    ]


def test_a_one_off_without_invoice_creation_has_no_invoice(client, prices, stripe_customer):
    session = checkout_create(prices["flowkit_oneoff"], stripe_customer.id, mode="payment")

    pay(client, session.id)

    paid = stripe.checkout.Session.retrieve(session.id)
    assert paid.invoice is None
    assert paid.invoice_creation.enabled is False
    assert store.all_of("invoice") == []


def test_invoice_creation_is_refused_in_subscription_mode(prices, stripe_customer):
    with pytest.raises(stripe.InvalidRequestError) as refused:
        checkout_create(
            prices["flowkit_monthly"], stripe_customer.id, invoice_creation={"enabled": True}
        )

    assert refused.value.param == "invoice_creation"


def test_session_without_customer_creates_one_first(client, prices):
    session = stripe.checkout.Session.create(
        mode="subscription",
        customer_email="new@example.com",
        line_items=[{"price": prices["flowkit_monthly"].id}],
        success_url="http://testserver/ok/",
    )
    before = event_types()

    pay(client, session.id)

    paid = stripe.checkout.Session.retrieve(session.id, expand=["customer"])
    assert paid.customer.email == "new@example.com"
    assert _new_events(before)[:3] == [
        "customer.created",
        "payment_method.attached",
        "customer.subscription.created",
    ]


def test_declined_card_shows_the_decline_and_creates_nothing(client, prices, stripe_customer):
    session = checkout_create(prices["flowkit_monthly"], stripe_customer.id)
    before = event_types()

    response = pay(client, session.id, "4000 0000 0000 0002")

    assert response.status_code == 400
    assert "Your card was declined" in response.content.decode()
    assert stripe.checkout.Session.retrieve(session.id).status == "open"
    assert store.all_of("subscription") == []
    assert store.all_of("charge") == []
    assert event_types() == before


def test_unknown_card_number_is_refused_clearly(client, prices, stripe_customer):
    session = checkout_create(prices["flowkit_monthly"], stripe_customer.id)

    response = pay(client, session.id, "1234 5678 9012 3456")

    assert response.status_code == 400
    assert "accepts only its test cards" in response.content.decode()
    assert stripe.checkout.Session.retrieve(session.id).status == "open"


def test_renewal_failing_card_subscribes_now(client, prices, stripe_customer):
    session = checkout_create(prices["flowkit_monthly"], stripe_customer.id)

    pay(client, session.id, "4000 0000 0000 0341")

    sub_id = stripe.checkout.Session.retrieve(session.id).subscription
    assert stripe.Subscription.retrieve(sub_id).status == "active"


def test_paying_twice_only_charges_once(client, prices, stripe_customer):
    session = checkout_create(prices["flowkit_monthly"], stripe_customer.id)

    pay(client, session.id)
    second = pay(client, session.id)

    assert second.status_code == 302
    assert len(store.all_of("subscription")) == 1


def test_pay_form_is_csrf_protected(prices, stripe_customer):
    session = checkout_create(prices["flowkit_monthly"], stripe_customer.id)

    response = pay(Client(enforce_csrf_checks=True), session.id)

    assert response.status_code == 403
    assert stripe.checkout.Session.retrieve(session.id).status == "open"


def test_unknown_session_is_404(client, db):
    assert client.get("/sandbox/checkout/cs_test_nope/").status_code == 404


def test_one_off_price_bought_with_a_subscription_is_on_its_first_invoice(
    client, prices, stripe_customer
):
    session = stripe.checkout.Session.create(
        mode="subscription",
        customer=stripe_customer.id,
        line_items=[
            {"price": prices["flowkit_monthly"].id, "quantity": 1},
            {"price": prices["flowkit_oneoff"].id, "quantity": 1},
        ],
        success_url="http://testserver/ok/",
    )

    pay(client, session.id)

    paid = stripe.checkout.Session.retrieve(session.id, expand=["invoice"])
    assert paid.amount_total == 4900 + 147000
    assert paid.invoice.amount_paid == 4900 + 147000
    sub = stripe.Subscription.retrieve(paid.subscription)
    assert [i.price.id for i in sub["items"].data] == [prices["flowkit_monthly"].id]


def _page_text(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def test_a_trial_checkout_shows_nothing_due_today_then_the_price_after_the_trial(
    client, prices, stripe_customer
):
    session = checkout_create(
        prices["flowkit_monthly"],
        stripe_customer.id,
        subscription_data={"trial_period_days": 14},
    )

    response = client.get(f"/sandbox/checkout/{session.id}/")

    # As Stripe's Checkout shows a trial: free days, £0.00 due today, then the price.
    text = _page_text(response)
    assert "14 days free" in text
    assert "Total due today £0.00" in text
    assert "Then £49.00 per month after 14 days" in text
    assert "Start trial" in text
    assert "Pay £49.00" not in text
    assert "Total due today £49.00" not in text
