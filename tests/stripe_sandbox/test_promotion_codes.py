"""Coupons and promotion codes on the sandbox: the API, the Checkout page's code field,
the discount on the session, the subscription and the invoices its duration covers."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
import stripe
from django.core.management import call_command

from devtools.stripe_sandbox import actions, store
from tests.stripe_sandbox.helpers import checkout_create, event_types

DAY = 86400


def _code(code: str, **coupon: Any) -> Any:
    made = stripe.Coupon.create(**coupon)
    return stripe.PromotionCode.create(code=code, promotion={"type": "coupon", "coupon": made.id})


def _page(client: Any, session_id: str, **data: str) -> Any:
    return client.post(f"/sandbox/checkout/{session_id}/", data)


def _pay(client: Any, session_id: str, code: str = "", **extra: str) -> Any:
    return _page(
        client, session_id, card_number="4242 4242 4242 4242", promotion_code=code, **extra
    )


def _session(prices: Any, customer: Any, **extra: Any) -> Any:
    return checkout_create(
        prices["flowkit_monthly"], customer.id, allow_promotion_codes=True, **extra
    )


def _invoices(sub_id: str) -> list[Any]:
    found = stripe.Invoice.list(subscription=sub_id, limit=10).data
    return sorted(found, key=lambda i: (i.created, i.number))


# --- The API ----------------------------------------------------------------------------


def test_coupons_and_promotion_codes_have_stripes_shapes(db):
    coupon = stripe.Coupon.create(percent_off=20, duration="repeating", duration_in_months=3)
    promo = stripe.PromotionCode.create(
        code="SPRING20", promotion={"type": "coupon", "coupon": coupon.id}, max_redemptions=5
    )

    assert (coupon.percent_off, coupon.amount_off, coupon.duration) == (20, None, "repeating")
    assert (coupon.duration_in_months, coupon.valid, coupon.times_redeemed) == (3, True, 0)
    assert promo.id.startswith("promo_")
    assert promo.promotion.coupon == coupon.id
    assert (promo.code, promo.active, promo.max_redemptions) == ("SPRING20", True, 5)
    assert stripe.PromotionCode.list(code="spring20").data[0].id == promo.id
    assert stripe.Coupon.retrieve(coupon.id).id == coupon.id
    assert stripe.PromotionCode.modify(promo.id, active=False).active is False


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"duration": "once"}, "exactly one of `percent_off` or `amount_off`"),
        ({"percent_off": 10, "amount_off": 100, "currency": "gbp"}, "exactly one"),
        ({"amount_off": 500, "duration": "once"}, "`currency`"),
        ({"percent_off": 10, "duration": "repeating"}, "duration_in_months"),
        ({"percent_off": 120, "duration": "once"}, "at most 100"),
    ],
)
def test_a_coupon_stripe_would_refuse_is_refused(db, params, message):
    with pytest.raises(stripe.InvalidRequestError, match=message):
        stripe.Coupon.create(**params)


def test_two_active_promotion_codes_cannot_share_a_code(db):
    _code("TWICE", percent_off=10, duration="once")

    with pytest.raises(stripe.InvalidRequestError, match="already exists"):
        _code("twice", percent_off=15, duration="once")


# --- The Checkout page ------------------------------------------------------------------


def test_applying_a_code_shows_the_discounted_total(client, prices, stripe_customer):
    _code("SPRING20", percent_off=20, duration="once")
    session = _session(prices, stripe_customer)

    response = _page(client, session.id, action="apply", promotion_code="spring20")

    page = response.content.decode()
    assert response.status_code == 200
    assert "SPRING20: 20% off once" in page
    assert "−£9.80" in page
    assert "£39.20" in page
    # Applying pays nothing.
    assert stripe.checkout.Session.retrieve(session.id).status == "open"


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        (lambda: None, "This code is invalid."),
        (lambda: stripe.PromotionCode.modify(_promo().id, active=False), "no longer active"),
        (lambda: _expire(_promo()), "This code has expired."),
        (lambda: _use_up(_promo()), "maximum number of times"),
    ],
)
def test_a_refused_code_says_why_and_nothing_is_paid(
    client, prices, stripe_customer, setup, reason
):
    setup()
    session = _session(prices, stripe_customer)

    response = _pay(client, session.id, "SAVE10")

    assert response.status_code == 400
    assert reason in response.content.decode()
    assert stripe.checkout.Session.retrieve(session.id).status == "open"


def _promo() -> Any:
    return _code("SAVE10", percent_off=10, duration="once")


def _expire(promo: Any) -> None:
    stored = store.get(promo.id, "promotion_code")
    stored["expires_at"] = store.now() - 1
    store.save(stored)


def _use_up(promo: Any) -> None:
    stored = store.get(promo.id, "promotion_code")
    stored["max_redemptions"], stored["times_redeemed"] = 1, 1
    store.save(stored)


def test_a_session_without_allow_promotion_codes_refuses_codes(client, prices, stripe_customer):
    _code("SPRING20", percent_off=20, duration="once")
    session = checkout_create(prices["flowkit_monthly"], stripe_customer.id)

    response = _pay(client, session.id, "SPRING20")

    assert response.status_code == 400
    assert "does not accept promotion codes" in response.content.decode()


def test_a_percent_code_lowers_the_session_and_only_the_first_invoice(
    client, prices, stripe_customer
):
    promo = _code("SPRING20", percent_off=20, duration="once")
    session = _session(prices, stripe_customer)

    response = _pay(client, session.id, "SPRING20")

    assert response.status_code == 302
    done = stripe.checkout.Session.retrieve(session.id, expand=["total_details.breakdown"])
    assert (done.payment_status, done.amount_subtotal, done.amount_total) == ("paid", 4900, 3920)
    assert done.total_details.amount_discount == 980
    assert done.discounts[0].promotion_code == promo.id
    assert done.total_details.breakdown.discounts[0].amount == 980
    items = stripe.checkout.Session.list_line_items(session.id, expand=["data.discounts"])
    assert (items.data[0].amount_discount, items.data[0].discounts[0].amount) == (980, 980)
    sub = stripe.Subscription.retrieve(done.subscription)
    discount = store.get(sub.discounts[0], "discount")
    assert discount["promotion_code"] == promo.id
    assert discount["subscription"] == sub.id
    first = stripe.Invoice.retrieve(done.invoice)
    assert (first.subtotal, first.total, first.amount_paid) == (4900, 3920, 3920)
    assert first.total_discount_amounts[0].amount == 980
    assert first.discounts == [discount["id"]]
    assert first.lines.data[0].discount_amounts[0].amount == 980
    assert stripe.PromotionCode.retrieve(promo.id).times_redeemed == 1

    actions.subscription_renew(sub.id)

    assert _invoices(sub.id)[-1].total == 4900


def test_a_repeating_code_lowers_the_invoices_of_its_months(client, prices, stripe_customer):
    _code("THREE", amount_off=1000, currency="gbp", duration="repeating", duration_in_months=2)
    session = _session(prices, stripe_customer)
    _pay(client, session.id, "THREE")
    sub_id = stripe.checkout.Session.retrieve(session.id).subscription

    actions.subscription_renew(sub_id)
    actions.subscription_renew(sub_id)

    assert [i.total for i in _invoices(sub_id)] == [3900, 3900, 4900]


def test_a_forever_code_lowers_every_invoice(client, prices, stripe_customer):
    _code("ALWAYS", percent_off=50, duration="forever")
    session = _session(prices, stripe_customer)
    _pay(client, session.id, "ALWAYS")
    sub_id = stripe.checkout.Session.retrieve(session.id).subscription

    actions.subscription_renew(sub_id)

    assert [i.total for i in _invoices(sub_id)] == [2450, 2450]


def test_a_full_discount_needs_no_payment_and_the_subscription_is_active(
    client, prices, stripe_customer
):
    _code("FREE", percent_off=100, duration="once")
    session = _session(prices, stripe_customer)
    page = _page(client, session.id, action="apply", promotion_code="FREE").content.decode()
    assert "Start for £0.00" in page
    before = event_types()

    _pay(client, session.id, "FREE")

    done = stripe.checkout.Session.retrieve(session.id)
    assert (done.status, done.payment_status, done.amount_total) == (
        "complete",
        "no_payment_required",
        0,
    )
    assert stripe.Subscription.retrieve(done.subscription).status == "active"
    invoice = stripe.Invoice.retrieve(done.invoice)
    assert (invoice.status, invoice.total, invoice.amount_paid) == ("paid", 0, 0)
    new = event_types()[len(before) :]
    assert "charge.succeeded" not in new
    assert "checkout.session.completed" in new


def test_a_code_on_a_one_off_payment_lowers_the_charge(client, prices, stripe_customer):
    _code("FIVER", amount_off=500, currency="gbp", duration="once")
    session = checkout_create(
        prices["flowkit_oneoff"], stripe_customer.id, mode="payment", allow_promotion_codes=True
    )

    _pay(client, session.id, "FIVER")

    done = stripe.checkout.Session.retrieve(session.id)
    assert (done.amount_total, done.total_details.amount_discount) == (146500, 500)
    assert stripe.PaymentIntent.retrieve(done.payment_intent).amount == 146500


def test_the_command_creates_a_coupon_and_its_code_once(client, prices, stripe_customer):
    out = StringIO()
    args = ["coupon", "--code", "LAUNCH", "--percent-off", "25", "--duration", "repeating"]
    call_command("stripe_sandbox", *args, "--months", "3", stdout=out)
    call_command("stripe_sandbox", *args, "--months", "3", stdout=out)

    lines = out.getvalue().splitlines()
    assert "25% off for 3 months" in lines[0]
    assert "exists already" in lines[1]
    promo = stripe.PromotionCode.list(code="LAUNCH").data[0]
    coupon = stripe.Coupon.retrieve(promo.promotion.coupon)
    assert (coupon.percent_off, coupon.duration_in_months) == (25, 3)
    assert len(stripe.PromotionCode.list().data) == 1


# --- Shapes -----------------------------------------------------------------------------


def test_coupons_codes_discounts_and_taxed_invoices_match_the_pinned_api_version(
    client, prices, stripe_customer
):
    from tests.stripe_sandbox.test_conformance import RecordingClient, _report, conformance

    recorder = RecordingClient()
    stripe.default_http_client = recorder
    promo = _code("SPRING20", percent_off=20, duration="repeating", duration_in_months=2)
    stripe.Coupon.list()
    stripe.PromotionCode.list(active=True)
    stripe.PromotionCode.retrieve(promo.id)
    stripe.PromotionCode.modify(promo.id, metadata={"campaign": "spring"})
    session = checkout_create(
        prices["flowkit_monthly"],
        stripe_customer.id,
        allow_promotion_codes=True,
        automatic_tax={"enabled": True},
        billing_address_collection="required",
        tax_id_collection={"enabled": True},
        customer_update={"address": "auto", "name": "auto"},
    )
    _pay(client, session.id, "SPRING20", country="GB", tax_id="GB123456789")
    oneoff = checkout_create(
        prices["flowkit_oneoff"], stripe_customer.id, mode="payment", allow_promotion_codes=True
    )
    _pay(client, oneoff.id, "SPRING20")
    for made in (session, oneoff):
        stripe.checkout.Session.retrieve(made.id, expand=["total_details.breakdown"])
        stripe.checkout.Session.list_line_items(made.id)
        stripe.checkout.Session.list_line_items(made.id, expand=["data.discounts", "data.taxes"])
    sub_id = stripe.checkout.Session.retrieve(session.id).subscription
    stripe.Subscription.retrieve(sub_id, expand=["discounts"])
    actions.subscription_renew(sub_id)
    stripe.Invoice.list(subscription=sub_id, expand=["data.discounts"])

    found = conformance(recorder.answers)

    emitted = {event["type"] for event in found["events"]}
    assert {"coupon.created", "promotion_code.created", "promotion_code.updated"} <= emitted
    assert not found["violations"], _report(found["violations"])
