"""A GB customer with Stripe Tax on types a 20 %-off code on the sandbox's Checkout: the
page shows the discount and the 20 % VAT, and the billing page shows the invoice."""

from __future__ import annotations

import re
import time
from io import StringIO

import pytest
from django.core.management import call_command
from playwright.sync_api import Locator, Page, expect

from tests.e2e.helpers import shot
from tests.e2e.test_billing_journeys import CARD_OK, _sign_up, _wait_plan

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def taxed_shop(live_server, settings, task_worker):
    settings.SITE_URL = live_server.url
    settings.BILLING_AUTOMATIC_TAX = True
    call_command("stripe_catalog", stdout=StringIO())
    call_command(
        "stripe_sandbox", "coupon", "--code", "SPRING20", "--percent-off", "20", stdout=StringIO()
    )
    return live_server.url


def test_a_gb_customer_pays_vat_on_a_discounted_first_invoice(page: Page, taxed_shop):
    _sign_up(page, taxed_shop, "vat@example.com")
    page.goto(f"{taxed_shop}/pricing/")
    page.get_by_role("button", name="Buy FlowKit monthly").click()
    page.wait_for_url(re.compile(r".*/sandbox/checkout/cs_test_\w+/"))

    page.get_by_label("Promotion code").fill("spring20")
    page.get_by_label("Billing address country").select_option("GB")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator(".sandbox-discount")).to_contain_text("−£9.80")
    expect(page.locator(".sandbox-tax")).to_contain_text("VAT (20%)")
    expect(page.locator(".sandbox-tax")).to_contain_text("£7.84")
    shot(page, "checkout-code-and-vat")
    page.get_by_label(re.compile("card number", re.I)).fill(CARD_OK)
    page.get_by_role("button", name="Pay £47.04").click()
    page.wait_for_url(re.compile(r".*/billing/success/\?session_id=cs_test_\w+"))
    _wait_plan(page, taxed_shop, "flowkit")

    invoice = _paid_invoice(page, taxed_shop)
    expect(invoice).to_contain_text("£47.04")
    expect(invoice).to_contain_text("after £9.80 discount")
    expect(invoice).to_contain_text("with £7.84 VAT")
    invoice.get_by_role("link", name="View invoice").click()
    expect(page.locator(".sandbox-tax")).to_contain_text("VAT (20%)")
    expect(page.locator(".sandbox-discount")).to_contain_text("SPRING20")


def _paid_invoice(page: Page, site: str, *, seconds: float = 45) -> Locator:
    # The invoice's webhooks reach the worker in any order, after the plan's.
    deadline = time.monotonic() + seconds
    while True:
        page.goto(f"{site}/billing/")
        invoice = page.locator('.billing-invoices .invoice[data-status="paid"]').first
        if invoice.count():
            return invoice
        if time.monotonic() > deadline:
            raise AssertionError("the billing page never listed the paid invoice")
        page.wait_for_timeout(200)


def test_a_100_percent_off_code_makes_the_plan_live_without_payment(
    page: Page, live_server, settings, task_worker
):
    from accounts.models import User

    settings.SITE_URL = live_server.url
    call_command("stripe_catalog", stdout=StringIO())
    call_command(
        "stripe_sandbox",
        "coupon",
        "--code",
        "ONUS",
        "--percent-off",
        "100",
        "--duration",
        "once",
        stdout=StringIO(),
    )
    site = live_server.url
    _sign_up(page, site, "free@example.com")
    page.goto(f"{site}/pricing/")
    page.get_by_role("button", name="Buy FlowKit monthly").click()
    page.wait_for_url(re.compile(r".*/sandbox/checkout/cs_test_\w+/"))
    page.get_by_label("Promotion code").fill("ONUS")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator(".sandbox-discount")).to_contain_text("−£49.00")
    shot(page, "checkout-100-percent-off")
    page.get_by_label(re.compile("card number", re.I)).fill(CARD_OK)
    page.get_by_role("button", name=re.compile(r"^(Pay|Subscribe|Start)")).click()
    page.wait_for_url(re.compile(r".*/billing/success/\?session_id=cs_test_\w+"))
    _wait_plan(page, site, "flowkit")

    import stripe

    from billing.stripe_api import api_kwargs

    user = User.objects.get(email="free@example.com")
    [session] = stripe.checkout.Session.list(**api_kwargs())["data"][:1]
    assert session["payment_status"] == "no_payment_required"
    assert user.plan_changes.count() == 1
    invoice = _paid_invoice(page, site)
    expect(invoice).to_contain_text("£0.00")
