"""Promotion codes and VAT through the product's own pages, with the sandbox standing in
for Stripe: Checkout, the webhooks, the success page, the billing page, the admin MRR."""

from __future__ import annotations

import re
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from djstripe.models import Subscription

from backoffice.site import mrr_by_currency, subscription_discounts
from billing.models import OneOffPurchase
from devtools.stripe_sandbox import actions
from devtools.stripe_sandbox.delivery import deliver_pending
from tests.sandbox_app import app_transport

CARD = "4242 4242 4242 4242"


def _path(url: str) -> str:
    return url.removeprefix("http://testserver")


def _deliver(client: Any) -> None:
    assert deliver_pending(transport=app_transport(client)).failed == 0


def _coupon(code: str, *args: str) -> None:
    call_command("stripe_sandbox", "coupon", "--code", code, *args, stdout=StringIO())


@pytest.fixture
def shopper(client, customer) -> Any:
    call_command("stripe_catalog", stdout=StringIO())
    client.force_login(customer)
    return client


def _checkout(client: Any) -> str:
    started = client.post("/billing/checkout/", {"plan": "flowkit", "interval": "monthly"})
    return _path(started["Location"])


def _text(response: Any) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def test_a_gb_customer_sees_20_percent_vat_on_checkout_the_invoice_and_the_billing_page(
    shopper, customer, settings
):
    settings.BILLING_AUTOMATIC_TAX = True
    page = _checkout(shopper)

    quoted = _text(shopper.post(page, {"action": "apply", "country": "GB"}))
    paid = shopper.post(page, {"card_number": CARD, "country": "GB"})
    _deliver(shopper)
    success = _text(shopper.get(_path(paid["Location"])))
    customer.refresh_from_db()
    billing = _text(shopper.get("/billing/"))

    assert "VAT (20%)" in quoted
    assert "£9.80" in quoted
    assert "Pay £58.80" in quoted
    assert customer.plan == "flowkit"
    assert "<dt>VAT</dt>" in success
    assert 'class="paid-tax">£9.80' in success
    assert '£58.80 <small class="billing-tax">with £9.80 VAT</small>' in billing
    invoice_url = re.search(r'href="(http://testserver/sandbox/invoice/in_\w+/)"', billing)
    invoice = _text(shopper.get(_path(invoice_url.group(1))))
    assert "VAT (20%)" in invoice
    assert "£58.80" in invoice


def test_with_vat_on_prices_say_plus_vat_and_the_upgrade_says_the_vat_in_it(
    shopper, customer, settings
):
    settings.BILLING_AUTOMATIC_TAX = True
    page = _checkout(shopper)
    shopper.post(page, {"card_number": CARD, "country": "GB"})
    _deliver(shopper)

    pricing = re.sub(r"<[^>]+>", "", _text(shopper.get("/pricing/")))
    switch = _text(shopper.get("/billing/switch/?plan=launchpack"))

    assert "£99.00 + VAT per month" in pricing
    assert "£2,970.00 + VAT once" in pricing
    found = re.search(
        r'Due now: <strong data-amount-due="(\d+)">£[\d,.]+</strong> '
        r'<small class="amount-vat">incl. £([\d,.]+) VAT</small>',
        switch,
    )
    assert found
    assert int(found.group(1)) > 0
    assert float(found.group(2)) > 0


def test_without_automatic_tax_checkout_asks_no_address_and_adds_no_vat(shopper):
    page = _checkout(shopper)

    shown = _text(shopper.get(page))

    assert 'name="country"' not in shown
    assert "VAT" not in shown
    assert 'name="promotion_code"' in shown  # codes are always accepted


def test_a_20_percent_code_lowers_the_first_invoice_only(shopper, customer):
    _coupon("SPRING20", "--percent-off", "20")
    page = _checkout(shopper)

    applied = _text(shopper.post(page, {"action": "apply", "promotion_code": "spring20"}))
    paid = shopper.post(page, {"card_number": CARD, "promotion_code": "spring20"})
    _deliver(shopper)
    success = _text(shopper.get(_path(paid["Location"])))
    customer.refresh_from_db()
    sub = Subscription.objects.get(customer__subscriber=customer)
    actions.subscription_renew(sub.id)
    _deliver(shopper)
    billing = _text(shopper.get("/billing/"))

    assert "SPRING20: 20% off once" in applied
    assert "Pay £39.20" in applied
    assert customer.plan == "flowkit"
    assert "−£9.80" in success
    assert "£39.20" in success
    assert '£39.20 <small class="billing-discount">after £9.80 discount</small>' in billing
    amounts = re.findall(r'<span class="billing-amount">(£[\d.]+)', billing)
    assert amounts == ["£49.00", "£39.20"]  # newest first: the renewal is full price


def test_a_refused_code_is_explained_on_the_checkout_page(shopper):
    page = _checkout(shopper)

    response = shopper.post(page, {"card_number": CARD, "promotion_code": "NOPE"})

    assert response.status_code == 400
    assert "This code is invalid." in _text(response)


def test_a_100_percent_code_makes_the_plan_live_without_payment(shopper, customer):
    _coupon("FREEMONTH", "--percent-off", "100")
    page = _checkout(shopper)

    paid = shopper.post(page, {"card_number": CARD, "promotion_code": "FREEMONTH"})
    # The webhook alone (checkout.session.completed, no_payment_required) makes it live,
    # before the customer comes back to the success page.
    _deliver(shopper)
    customer.refresh_from_db()
    plan_from_webhook = customer.plan
    success = _text(shopper.get(_path(paid["Location"])))

    assert plan_from_webhook == "flowkit"
    assert "nothing was charged" in success
    sub = Subscription.objects.get(customer__subscriber=customer)
    assert sub.stripe_data["status"] == "active"


def test_a_100_percent_code_on_a_one_off_purchase_grants_the_plan(shopper, customer):
    # No payment at all: only `payment_status` says the session needs none
    # (billing/checkout.py counts no_payment_required as paid).
    _coupon("FREEPACK", "--percent-off", "100")
    started = shopper.post("/billing/checkout/", {"plan": "launchpack", "interval": "oneoff"})

    shopper.post(_path(started["Location"]), {"card_number": CARD, "promotion_code": "FREEPACK"})
    _deliver(shopper)
    customer.refresh_from_db()

    assert customer.plan == "launchpack"
    purchase = OneOffPurchase.objects.get(user=customer)
    assert (purchase.amount, purchase.payment_intent_id) == (0, "")


def _mrr() -> dict[str, Any]:
    subs = list(Subscription.objects.values_list("stripe_data", flat=True))
    return mrr_by_currency(subs, subscription_discounts(subs))


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--percent-off", "50", "--duration", "forever"), "24.50"),
        (("--amount-off", "900", "--duration", "repeating", "--months", "3"), "40.00"),
        (("--percent-off", "50"), "49.00"),  # once: the first invoice only
    ],
)
def test_mrr_is_net_of_the_discounts_still_in_force(shopper, args, expected):
    _coupon("CODE", *args)
    page = _checkout(shopper)
    shopper.post(page, {"card_number": CARD, "promotion_code": "CODE"})
    _deliver(shopper)

    assert {c: f"{v:.2f}" for c, v in _mrr().items()} == {"gbp": expected}


def test_a_repeating_discount_no_longer_lowers_mrr_once_it_ended(shopper):
    _coupon("CODE", "--amount-off", "900", "--duration", "repeating", "--months", "1")
    page = _checkout(shopper)
    shopper.post(page, {"card_number": CARD, "promotion_code": "CODE"})
    _deliver(shopper)
    subs = list(Subscription.objects.values_list("stripe_data", flat=True))
    discounts = subscription_discounts(subs)
    [discount] = discounts.values()

    later = mrr_by_currency(subs, discounts, now=discount["end"] + 1)

    assert f"{later['gbp']:.2f}" == "49.00"


def test_the_catalog_sets_the_configured_tax_behavior_on_new_prices(db, settings):
    import stripe

    settings.BILLING_TAX_BEHAVIOR = "inclusive"

    call_command("stripe_catalog", stdout=StringIO())

    prices = stripe.Price.list(lookup_keys=["flowkit_monthly", "flowkit_oneoff"])
    assert {p.tax_behavior for p in prices.data} == {"inclusive"}
