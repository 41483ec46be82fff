"""Browser tests of the sandbox's pages after the first payment: 3-D Secure in Checkout
and at renewal (approved on the hosted invoice page), and a failed renewal recovered by
updating the card in the portal and paying the invoice (issue 12)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import stripe
from playwright.sync_api import Page, expect

from devtools.stripe_sandbox import collection, store
from tests.e2e.helpers import assert_fits, shot

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def site(live_server, settings, monkeypatch) -> str:
    settings.SITE_URL = live_server.url
    monkeypatch.setattr(stripe, "api_key", settings.STRIPE_TEST_SECRET_KEY)
    return live_server.url


def _checkout(site: str) -> tuple[Any, Any]:
    product = stripe.Product.create(name="SmartFlow Flowkit")
    price = stripe.Price.create(
        product=product.id, unit_amount=4900, currency="gbp", recurring={"interval": "month"}
    )
    customer = stripe.Customer.create(email="buyer@example.com")
    session = stripe.checkout.Session.create(
        mode="subscription",
        customer=customer.id,
        line_items=[{"price": price.id, "quantity": 1}],
        success_url=f"{site}/?paid={{CHECKOUT_SESSION_ID}}",
    )
    return customer, session


def _pay_checkout(page: Page, session: Any, card: str) -> None:
    page.goto(session.url)
    page.get_by_label(re.compile("card number", re.I)).fill(card)
    page.get_by_role("button", name=re.compile(r"^Pay ")).click()


def _renew(customer: Any) -> Any:
    sub = stripe.Subscription.list(customer=customer.id).data[0]
    # The renewal is charged an hour after its invoice is created, as at Stripe.
    renewal = sub["items"].data[0].current_period_end + collection.FINALIZE_SECONDS
    collection.clock_advance(renewal - store.now())
    return stripe.Subscription.retrieve(sub.id, expand=["latest_invoice"])


def test_3ds_card_is_authenticated_in_checkout_and_on_the_hosted_invoice_page(page, site):
    customer, session = _checkout(site)

    _pay_checkout(page, session, "4000 0027 6000 3184")
    expect(page.get_by_role("heading", name="Authenticate this payment")).to_be_visible()
    shot(page, "sandbox-checkout-3ds")
    page.get_by_role("button", name="Complete authentication").click()
    page.wait_for_url(re.compile(r".*/\?paid=cs_test_\w+"))

    sub = _renew(customer)
    assert sub.status == "past_due"
    assert sub.latest_invoice.status == "open"
    page.goto(sub.latest_invoice.hosted_invoice_url)
    expect(page.get_by_role("heading", name="Authenticate this payment")).to_be_visible()
    for width in (375, 1280):
        assert_fits(page, width)
    shot(page, "sandbox-invoice-3ds")
    page.get_by_role("button", name="Complete authentication").click()

    expect(page.get_by_text("Payment received: the invoice is paid.")).to_be_visible()
    expect(page.locator(".sandbox-invoice")).to_have_attribute("data-status", "paid")
    assert stripe.Subscription.retrieve(sub.id).status == "active"


def test_failed_renewal_recovered_by_a_new_card_in_the_portal(page, site):
    customer, session = _checkout(site)
    _pay_checkout(page, session, "4000 0000 0000 0341")
    page.wait_for_url(re.compile(r".*/\?paid=cs_test_\w+"))
    sub = _renew(customer)
    assert sub.status == "past_due"
    portal = stripe.billing_portal.Session.create(customer=customer.id, return_url=f"{site}/")

    page.goto(portal.url)
    expect(page.locator(".sandbox-open-invoice")).to_be_visible()
    page.get_by_label(re.compile("card number", re.I)).fill("4242 4242 4242 4242")
    page.get_by_role("button", name="Update card").click()
    expect(page.get_by_text("Visa ending 4242", exact=True)).to_be_visible()
    shot(page, "sandbox-portal-card-updated")
    page.get_by_role("link", name="Pay invoice").click()
    page.get_by_role("button", name="Pay with Visa ending 4242").click()

    expect(page.locator(".sandbox-invoice")).to_have_attribute("data-status", "paid")
    page.goto(stripe.Invoice.retrieve(sub.latest_invoice.id).invoice_pdf)
    expect(page.get_by_role("heading", name=re.compile(r"^Invoice "))).to_be_visible()
    assert stripe.Subscription.retrieve(sub.id).status == "active"
