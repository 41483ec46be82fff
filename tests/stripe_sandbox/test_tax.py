"""The sandbox's stand-in for Stripe Tax: UK VAT at 20 % for a GB billing address, 0 %
elsewhere; exclusive prices add it, inclusive ones carve it out; on Checkout, the
session, the invoices and the hosted invoice page."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import stripe

from devtools.stripe_sandbox import actions, store, tax
from tests.stripe_sandbox.helpers import checkout_create

# --- The arithmetic ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "behavior", "expected"),
    [
        (4900, "exclusive", 980),
        (4900, "inclusive", 817),  # 4900 / 1.2 = 4083.33: 4083 net, 817 VAT
        (4999, "exclusive", 1000),  # 999.8 rounds to the penny
        (4999, "inclusive", 833),  # 4165.83 -> 4166 net
        (3, "inclusive", 0),  # 2.5 net rounds half up to 3: no VAT left
        (9, "inclusive", 1),  # 7.5 -> 8 net
        (0, "exclusive", 0),
        # A credit (a proration for unused time) carries its tax, negative.
        (-2450, "exclusive", -490),
        (-2450, "inclusive", -408),  # 2041.67 -> 2042 net
        (-4999, "exclusive", -1000),  # rounded half away from zero, as its positive
    ],
)
def test_uk_vat_is_20_percent_rounded_half_up_to_the_penny(amount, behavior, expected):
    assert tax.tax_of(amount, rate=tax.rate_for("GB"), behavior=behavior) == expected


@pytest.mark.parametrize("country", ["FR", "US", "", None])
def test_outside_gb_the_rate_is_nothing(country):
    assert tax.rate_for(country) == 0
    assert tax.tax_of(4900, rate=tax.rate_for(country), behavior="exclusive") == 0


def test_gb_is_20_percent():
    assert tax.rate_for("gb") == Decimal("0.20")


def test_the_discount_comes_off_before_the_tax():
    lines = [tax.LineTotal(amount=4900, behavior="exclusive", discountable=True)]

    found = tax.lines_total(lines, coupon={"percent_off": 20}, country="GB", taxed=True)

    assert (found.subtotal, found.discount, found.tax, found.total) == (4900, 980, 784, 4704)


def test_inclusive_prices_keep_their_total_and_show_the_vat_in_it():
    lines = [tax.LineTotal(amount=4900, behavior="inclusive", discountable=True)]

    found = tax.lines_total(lines, coupon=None, country="GB", taxed=True)

    assert (found.total, found.tax, found.total_excluding_tax) == (4900, 817, 4083)


def test_without_automatic_tax_nothing_is_added_even_in_gb():
    lines = [tax.LineTotal(amount=4900, behavior="exclusive", discountable=True)]

    assert tax.lines_total(lines, coupon=None, country="GB", taxed=False).total == 4900


# --- Checkout and invoices --------------------------------------------------------------


def _taxed_session(price: Any, customer: Any, **extra: Any) -> Any:
    return checkout_create(
        price,
        customer.id,
        automatic_tax={"enabled": True},
        billing_address_collection="required",
        tax_id_collection={"enabled": True},
        customer_update={"address": "auto", "name": "auto"},
        **extra,
    )


def _pay(client: Any, session_id: str, **data: str) -> Any:
    return client.post(
        f"/sandbox/checkout/{session_id}/", {"card_number": "4242 4242 4242 4242", **data}
    )


def test_automatic_tax_with_a_customer_without_address_needs_customer_update(
    prices, stripe_customer
):
    with pytest.raises(stripe.InvalidRequestError, match=r"customer_update\[address\]"):
        checkout_create(
            prices["flowkit_monthly"], stripe_customer.id, automatic_tax={"enabled": True}
        )


def test_the_page_asks_for_the_country_and_shows_the_vat_once_known(
    client, prices, stripe_customer
):
    session = _taxed_session(prices["flowkit_monthly"], stripe_customer)

    first = client.get(f"/sandbox/checkout/{session.id}/").content.decode()
    applied = client.post(
        f"/sandbox/checkout/{session.id}/", {"action": "apply", "country": "GB"}
    ).content.decode()
    refused = _pay(client, session.id)

    assert 'name="country"' in first
    assert 'name="tax_id"' in first
    assert "Enter your address to calculate" in first
    assert "VAT (20%)" in applied
    assert "£9.80" in applied
    assert "£58.80" in applied
    assert refused.status_code == 400
    assert "country of your billing address" in refused.content.decode()


def test_a_gb_customer_pays_20_percent_vat_on_checkout_and_on_every_invoice(
    client, prices, stripe_customer
):
    session = _taxed_session(prices["flowkit_monthly"], stripe_customer)

    _pay(client, session.id, country="GB", tax_id="GB 123 4567 89")

    done = stripe.checkout.Session.retrieve(session.id, expand=["total_details.breakdown"])
    assert (done.amount_subtotal, done.total_details.amount_tax, done.amount_total) == (
        4900,
        980,
        5880,
    )
    assert done.automatic_tax.status == "complete"
    assert done.customer_details.address.country == "GB"
    assert done.customer_details.tax_ids[0].to_dict() == {"type": "gb_vat", "value": "GB123456789"}
    assert done.total_details.breakdown.taxes[0].rate.percentage == 20
    assert stripe.Customer.retrieve(stripe_customer.id).address.country == "GB"
    invoice = stripe.Invoice.retrieve(done.invoice)
    assert (invoice.subtotal, invoice.total, invoice.amount_paid) == (4900, 5880, 5880)
    assert invoice.total_excluding_tax == 4900
    assert invoice.total_taxes[0].amount == 980
    assert invoice.total_taxes[0].taxability_reason == "standard_rated"
    assert invoice.lines.data[0].taxes[0].amount == 980
    page = client.get(f"/sandbox/invoice/{invoice.id}/").content.decode()
    assert "VAT (20%)" in page
    assert "£9.80" in page
    assert "£58.80" in page

    renewed = actions.subscription_renew(done.subscription)

    assert stripe.Invoice.retrieve(renewed["latest_invoice"]).total == 5880


def test_outside_gb_no_vat_is_charged(client, prices, stripe_customer):
    session = _taxed_session(prices["flowkit_monthly"], stripe_customer)

    _pay(client, session.id, country="FR")

    done = stripe.checkout.Session.retrieve(session.id)
    assert (done.total_details.amount_tax, done.amount_total) == (0, 4900)
    invoice = stripe.Invoice.retrieve(done.invoice)
    assert invoice.total == 4900
    assert invoice.total_taxes[0].amount == 0
    assert invoice.total_taxes[0].taxability_reason == "not_collecting"


def test_an_inclusive_price_carves_the_vat_out(client, prices, stripe_customer):
    price = stripe.Price.create(
        product=prices["flowkit_monthly"].product,
        unit_amount=4900,
        currency="gbp",
        recurring={"interval": "month"},
        tax_behavior="inclusive",
    )
    session = _taxed_session(price, stripe_customer)

    _pay(client, session.id, country="GB")

    done = stripe.checkout.Session.retrieve(session.id)
    assert (done.amount_total, done.total_details.amount_tax) == (4900, 817)
    invoice = stripe.Invoice.retrieve(done.invoice)
    assert (invoice.total, invoice.total_excluding_tax) == (4900, 4083)
    assert invoice.total_taxes[0].tax_behavior == "inclusive"


def test_a_code_and_vat_together(client, prices, stripe_customer):
    coupon = stripe.Coupon.create(percent_off=20, duration="once")
    stripe.PromotionCode.create(code="SPRING20", promotion={"type": "coupon", "coupon": coupon.id})
    session = _taxed_session(prices["flowkit_monthly"], stripe_customer, allow_promotion_codes=True)

    _pay(client, session.id, country="GB", promotion_code="SPRING20")

    done = stripe.checkout.Session.retrieve(session.id)
    assert (done.total_details.amount_discount, done.total_details.amount_tax) == (980, 784)
    assert done.amount_total == 4704 == stripe.Invoice.retrieve(done.invoice).total


def test_a_price_takes_stripes_tax_behaviors_only(prices):
    with pytest.raises(stripe.InvalidRequestError, match="tax_behavior"):
        stripe.Price.create(
            product=prices["flowkit_monthly"].product,
            unit_amount=100,
            currency="gbp",
            tax_behavior="sometimes",
        )
    assert store.find(prices["flowkit_monthly"].id, "price")["tax_behavior"] == "unspecified"
