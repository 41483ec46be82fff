"""Upgrades and what is offered, in a browser against the sandbox with Stripe-like delivery:
the upgrade is quoted and charged now, a failing card keeps the old plan, and nobody is
offered what they already have."""

from __future__ import annotations

import re
from io import StringIO

import pytest
import stripe
from django.core.management import call_command
from playwright.sync_api import Page, expect

from accounts.models import User
from billing.stripe_api import api_kwargs
from tests.e2e.helpers import assert_fits, shot
from tests.e2e.test_billing_journeys import _buy, _sign_up, _wait_plan

pytestmark = pytest.mark.django_db(transaction=True)

CARD_OK = "4242 4242 4242 4242"
CARD_FAILS_LATER = "4000 0000 0000 0341"  # pays in Checkout, every later charge fails
CARD_3DS_ALWAYS = "4000 0027 6000 3184"  # asks for 3-D Secure on every payment


@pytest.fixture
def shop(live_server, settings, task_worker):
    settings.SITE_URL = live_server.url
    call_command("stripe_catalog", stdout=StringIO())
    return live_server.url


def _subscribe_flowkit(page: Page, site: str, email: str, card: str) -> None:
    _sign_up(page, site, email)
    _buy(page, site, "FlowKit", monthly=True, card=card)
    page.wait_for_url(re.compile(r".*/billing/success/.*"))
    _wait_plan(page, site, "flowkit")


def _open_upgrade(page: Page, site: str) -> int:
    """From the pricing page to the confirmation page; returns the amount due shown."""
    page.goto(f"{site}/pricing/")
    expect(page.get_by_role("button", name="Buy LaunchPack monthly")).to_have_count(0)
    page.get_by_role("link", name="Switch your subscription to LaunchPack", exact=True).click()
    page.wait_for_url(re.compile(r".*/billing/switch/\?plan=launchpack"))
    due = page.locator("[data-amount-due]")
    expect(due).to_have_text(re.compile(r"^£\d+\.\d\d$"))
    return int(due.get_attribute("data-amount-due"))


def _subscription_invoices(email: str) -> list[dict]:
    customer = User.objects.get(email=email).djstripe_customers.get()
    invoices = stripe.Invoice.list(customer=customer.id, **api_kwargs()).data
    return [i for i in invoices if i["billing_reason"] == "subscription_update"]


def test_the_upgrade_page_shows_the_amount_due_and_the_invoice_bills_it_now(page, shop):
    email = "upgrader@example.com"
    _subscribe_flowkit(page, shop, email, CARD_OK)

    quoted = _open_upgrade(page, shop)
    shot(page, "upgrade-confirm")
    for width in (375, 1280):
        assert_fits(page, width)
    page.set_viewport_size({"width": 1280, "height": 900})
    # A whole month of LaunchPack less the unused FlowKit month, to the second.
    assert 4990 <= quoted <= 5000
    amount = f"£{quoted / 100:.2f}"
    expect(page.get_by_text(f"Due now: {amount}")).to_be_visible()
    page.get_by_role("button", name=f"Pay {amount} and upgrade").click()

    _wait_plan(page, shop, "launchpack")
    [invoice] = _subscription_invoices(email)
    assert (invoice["status"], invoice["amount_paid"]) == ("paid", quoted)
    user = User.objects.get(email=email)
    history = list(user.plan_changes.order_by("id").values_list("old_plan", "new_plan"))
    assert history == [("starter", "flowkit"), ("flowkit", "launchpack")]


def test_an_upgrade_with_a_card_that_then_fails_keeps_the_old_plan_and_says_what_to_do(page, shop):
    email = "declined-upgrade@example.com"
    _subscribe_flowkit(page, shop, email, CARD_FAILS_LATER)
    quoted = _open_upgrade(page, shop)

    page.get_by_role("button", name=re.compile(r"^Pay £.* and upgrade$")).click()

    page.wait_for_url(re.compile(r".*/billing/switch/pending/"))
    shot(page, "upgrade-declined")
    assert_fits(page, 375)
    page.set_viewport_size({"width": 1280, "height": 900})
    expect(page.get_by_text("Your card was declined")).to_be_visible()
    expect(page.get_by_role("button", name="Update your card")).to_be_visible()
    _wait_plan(page, shop, "flowkit", seconds=3)
    page.wait_for_timeout(2500)  # every webhook of the attempt has arrived by now
    _wait_plan(page, shop, "flowkit", seconds=1)
    [invoice] = _subscription_invoices(email)
    assert (invoice["status"], invoice["amount_due"]) == ("open", quoted)

    # Paying the invoice with another card applies the upgrade.
    page.goto(f"{shop}/billing/switch/pending/")
    page.get_by_role("link", name="Pay the invoice").click()
    page.wait_for_url(re.compile(r".*/sandbox/invoice/in_\w+/"))
    page.get_by_label(re.compile("card number", re.I)).fill(CARD_OK)
    page.get_by_role("button", name="Pay with this card").click()
    _wait_plan(page, shop, "launchpack")


def test_an_upgrade_needing_authentication_is_confirmed_on_the_hosted_invoice_page(page, shop):
    email = "secure-upgrade@example.com"
    _sign_up(page, shop, email)
    _buy(page, shop, "FlowKit", monthly=True, card=CARD_3DS_ALWAYS)
    page.get_by_role("button", name="Complete authentication").click()
    page.wait_for_url(re.compile(r".*/billing/success/.*"))
    _wait_plan(page, shop, "flowkit")
    _open_upgrade(page, shop)

    page.get_by_role("button", name=re.compile(r"^Pay £.* and upgrade$")).click()

    page.wait_for_url(re.compile(r".*/billing/switch/pending/"))
    expect(page.get_by_text("Your bank wants you to confirm this payment")).to_be_visible()
    _wait_plan(page, shop, "flowkit", seconds=1)
    page.goto(f"{shop}/billing/switch/pending/")
    page.get_by_role("link", name="Confirm the payment").click()
    page.wait_for_url(re.compile(r".*/sandbox/invoice/in_\w+/"))
    page.get_by_role("button", name="Complete authentication").click()
    _wait_plan(page, shop, "launchpack")
    [invoice] = _subscription_invoices(email)
    assert invoice["status"] == "paid"


def test_a_starter_customer_is_never_offered_starter(page, shop):
    _sign_up(page, shop, "free@example.com")

    page.goto(f"{shop}/pricing/")

    starter = page.locator(".plan-card", has=page.locator("#plan-starter"))
    expect(starter.get_by_text("Free", exact=True)).to_be_visible()
    expect(starter.get_by_text("Your plan")).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("^Buy Starter"))).to_have_count(0)
    expect(page.get_by_text("£19.00")).to_have_count(0)
    expect(page.get_by_role("button", name="Buy FlowKit monthly")).to_be_visible()


def test_a_oneoff_flowkit_owner_is_not_offered_flowkit_and_a_forged_post_is_409(page, shop):
    _sign_up(page, shop, "owner@example.com")
    _buy(page, shop, "FlowKit", monthly=False, card=CARD_OK)
    page.wait_for_url(re.compile(r".*/billing/success/.*"))
    _wait_plan(page, shop, "flowkit")

    page.goto(f"{shop}/pricing/")
    expect(page.get_by_role("button", name=re.compile("^Buy FlowKit"))).to_have_count(0)
    expect(page.get_by_role("button", name="Buy LaunchPack once")).to_be_visible()
    shot(page, "pricing-oneoff-owner")

    # Whatever is posted: the LaunchPack form edited to buy FlowKit again.
    page.evaluate(
        """() => document.querySelectorAll('form[action="/billing/checkout/"] input[name=plan]')
            .forEach((input) => { input.value = "flowkit"; })"""
    )
    with page.expect_response(re.compile(r".*/billing/checkout/$")) as answer:
        page.get_by_role("button", name="Buy LaunchPack once").click()
    assert answer.value.status == 409
    expect(page.get_by_text("You already have FlowKit")).to_be_visible()
    assert User.objects.get(email="owner@example.com").oneoff_purchases.count() == 1
