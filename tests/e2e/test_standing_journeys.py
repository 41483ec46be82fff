"""Issue 27's journeys: what a customer is told about their money equals what Stripe
charges, at the edges (VAT with a promotion code, an upgrade tried during dunning, two tabs
paying), on a 375 px phone and a 1280 px screen, with Stripe-like delivery."""

from __future__ import annotations

import re
from io import StringIO

import pytest
import stripe
from django.core.management import call_command
from playwright.sync_api import Page, expect

from accounts.models import User
from billing.checkout import customer_for
from billing.stripe_api import api_kwargs
from tests.e2e.helpers import assert_fits, shot
from tests.e2e.test_dunning_journeys import (
    CARD_OK,
    CARD_RENEWAL_FAILS,
    _banner,
    _mail_arrives,
    _plan,
    _renew,
    _sign_up,
    _subscribe,
    _until,
    shop,  # noqa: F401 (a fixture)
)

pytestmark = pytest.mark.django_db(transaction=True)


def _widths(page: Page, name: str) -> None:
    """The page fits a phone and a laptop; a screenshot of each is kept."""
    for width in (375, 1280):
        assert_fits(page, width)
        shot(page, f"{name}-{width}")


def _pay_checkout(page: Page, card: str = CARD_OK) -> None:
    page.get_by_label(re.compile("card number", re.I)).fill(card)
    page.get_by_role("button", name=re.compile(r"^Pay ")).click()


def test_vat_and_a_once_only_code_show_todays_charge_and_the_next_one(page: Page, shop, settings):  # noqa: F811
    # FlowKit £49 + 20 % VAT with 20 % off the first invoice: £47.04 today, then £58.80.
    settings.BILLING_AUTOMATIC_TAX = True
    call_command(
        "stripe_sandbox", "coupon", "--code", "SPRING20", "--percent-off", "20", stdout=StringIO()
    )
    _sign_up(page, shop, "vatcode@example.com")
    page.goto(f"{shop}/pricing/")
    expect(page.locator("main")).to_contain_text("+ VAT")
    _widths(page, "standing-pricing-vat")
    page.get_by_role("button", name="Buy FlowKit monthly").click()
    page.wait_for_url(re.compile(r".*/sandbox/checkout/cs_test_\w+/"))
    page.get_by_label("Promotion code").fill("SPRING20")
    page.get_by_label("Billing address country").select_option("GB")
    page.get_by_role("button", name="Apply").click()
    _pay_checkout(page)
    page.wait_for_url(re.compile(r".*/billing/success/.*"))

    _until(
        page,
        shop,
        lambda: "next payment £58.80/month incl. £9.80 VAT" in (page.text_content("main") or ""),
        "Stripe's next charge with its VAT",
    )
    assert _plan(page) == "flowkit"
    assert "£49.00/month" not in (page.text_content("main") or "")
    _widths(page, "standing-dashboard-vat")
    page.goto(f"{shop}/billing/")
    expect(page.locator("main")).to_contain_text("£47.04")
    expect(page.locator("main")).to_contain_text("next payment £58.80/month incl. £9.80 VAT")
    _widths(page, "standing-billing-vat")


def test_an_upgrade_during_dunning_is_refused_with_the_overdue_amount_to_pay(page: Page, shop):  # noqa: F811
    email = "overdue@example.com"
    _subscribe(page, shop, email, CARD_RENEWAL_FAILS)
    _renew(email)
    _until(page, shop, lambda: _banner(page).count() == 1, "the failed-payment banner")

    page.goto(f"{shop}/pricing/")
    launchpack = page.locator("#plan-launchpack").locator("xpath=..")
    expect(launchpack.locator(".refusal").first).to_contain_text("pay the overdue £49.00 first")
    assert page.get_by_role("link", name=re.compile("Switch your subscription")).count() == 0
    _widths(page, "standing-upgrade-in-dunning")
    # The way out is on the page: the banner's button to pay what is overdue.
    expect(_banner(page).get_by_role("button").first).to_be_visible()
    assert User.objects.get(email=email).plan == "flowkit"


def test_two_tabs_paying_leave_one_subscription_and_one_charge(browser, shop):  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    first, second = context.new_page(), context.new_page()
    email = "twotabs@example.com"
    _sign_up(first, shop, email)
    for tab in (first, second):
        tab.goto(f"{shop}/pricing/")
    # Both tabs show the offer; the customer clicks Buy in each before paying either.
    # Opening the second checkout expires the first (billing/checkout.py), so the
    # first tab's payment is refused with a word the customer understands.
    first.get_by_role("button", name="Buy FlowKit monthly").click()
    first.wait_for_url(re.compile(r".*/sandbox/checkout/cs_test_\w+/"))
    second.get_by_role("button", name="Buy FlowKit monthly").click()
    second.wait_for_url(re.compile(r".*/sandbox/checkout/cs_test_\w+/"))
    _pay_checkout(first)
    expect(first.locator("body")).to_contain_text(re.compile("expired", re.I))
    shot(first, "standing-two-tabs-first-expired")
    _pay_checkout(second)
    second.wait_for_url(re.compile(r".*/billing/success/.*"))
    _until(second, shop, lambda: _plan(second) == "flowkit", "the FlowKit plan")

    user = User.objects.get(email=email)
    customer = customer_for(user).id
    subs = stripe.Subscription.list(customer=customer, status="all", **api_kwargs()).data
    live = [s for s in subs if s.status in ("active", "trialing", "past_due")]
    paid = [i for i in stripe.Invoice.list(customer=customer, **api_kwargs()).data if i.amount_paid]
    assert len(live) == 1
    assert [i.amount_paid for i in paid] == [4900]
    second.goto(f"{shop}/billing/")
    _widths(second, "standing-two-tabs-billing")
    context.close()


def test_a_trial_is_free_today_and_says_what_follows(page: Page, shop, settings):  # noqa: F811
    settings.BILLING_TRIAL_DAYS = 14
    _sign_up(page, shop, "trial@example.com")
    page.goto(f"{shop}/pricing/")
    flowkit = page.locator("#plan-flowkit").locator("xpath=..")
    expect(flowkit.locator(".price-trial").first).to_contain_text("14 days free, then £49.00/month")
    expect(flowkit.locator(".trial-due-today").first).to_contain_text("£0.00 due today")
    _widths(page, "standing-pricing-trial")
    page.get_by_role("button", name="Buy FlowKit monthly").click()
    page.wait_for_url(re.compile(r".*/sandbox/checkout/cs_test_\w+/"))
    expect(page.locator("[data-total]")).to_have_text("£0.00")
    page.get_by_label(re.compile("card number", re.I)).fill(CARD_OK)
    page.get_by_role("button", name=re.compile(r"^(Start|Pay|Subscribe)")).click()
    page.wait_for_url(re.compile(r".*/billing/success/.*"))
    expect(page.locator("main")).to_contain_text("£0.00 due today")
    _widths(page, "standing-success-trial")

    _until(
        page,
        shop,
        lambda: "then £49.00/month" in (page.text_content(".standing") or ""),
        "the trial with Stripe's first charge",
    )
    expect(page.locator(".standing")).to_contain_text("Free trial of FlowKit until")
    _widths(page, "standing-dashboard-trial")


def test_a_comped_customer_subscribes_to_keep_the_plan(page: Page, shop):  # noqa: F811
    from datetime import timedelta

    from django.utils import timezone

    from billing.overrides import override_grant

    _sign_up(page, shop, "comped@example.com")
    user = User.objects.get(email="comped@example.com")
    staff = User.objects.create_superuser(email="boss@example.com", password="x" * 20)
    until = timezone.now() + timedelta(days=10)
    override_grant(
        user=user, plan="flowkit", reason="Trade show", expires_at=until, notify=False, actor=staff
    )
    _until(page, shop, lambda: _plan(page) == "flowkit", "the comped plan")
    expect(page.locator(".standing")).to_contain_text("Complimentary FlowKit until")
    expect(page.locator(".standing")).to_contain_text("back to Starter")
    _widths(page, "standing-dashboard-comp")

    page.goto(f"{shop}/pricing/")
    flowkit = page.locator("#plan-flowkit").locator("xpath=..")
    expect(flowkit.locator(".offer-comp").first).to_contain_text("Complimentary FlowKit until")
    _widths(page, "standing-pricing-comp")
    page.get_by_role("button", name="Buy FlowKit monthly").click()
    page.wait_for_url(re.compile(r".*/sandbox/checkout/cs_test_\w+/"))
    _pay_checkout(page)
    page.wait_for_url(re.compile(r".*/billing/success/.*"))

    _until(
        page,
        shop,
        lambda: "next payment £49.00/month" in (page.text_content("main") or ""),
        "Stripe's next charge for the new subscription",
    )
    expect(page.locator(".standing")).to_contain_text("FlowKit through your monthly subscription")
    _widths(page, "standing-dashboard-comp-paid")


def test_a_pending_bacs_debit_is_shown_and_not_sold_twice(page: Page, shop):  # noqa: F811
    _sign_up(page, shop, "bacs@example.com")
    page.goto(f"{shop}/pricing/")
    page.get_by_role("button", name="Buy FlowKit monthly").click()
    page.wait_for_url(re.compile(r".*/sandbox/checkout/cs_test_\w+/"))
    page.get_by_label("Sort code").fill("10-88-00")
    page.get_by_label("Account number").fill("00012345")
    page.get_by_role("button", name=re.compile(r"^Set up Direct Debit")).click()
    page.wait_for_url(re.compile(r".*/billing/success/.*"))

    _until(
        page,
        shop,
        lambda: page.locator(".pending-payment").count() == 1,
        "the pending bank debit",
    )
    expect(page.locator(".pending-payment")).to_contain_text(
        "£49.00 by Bacs Direct Debit for FlowKit, processing"
    )
    assert _plan(page) == "starter"
    _widths(page, "standing-dashboard-bacs")
    page.goto(f"{shop}/pricing/")
    assert page.get_by_role("button", name="Buy FlowKit monthly").count() == 0
    flowkit = page.locator("#plan-flowkit").locator("xpath=..")
    expect(flowkit.locator(".refusal").first).to_contain_text("by bank debit is processing")
    _widths(page, "standing-pricing-bacs")

    call_command("stripe_sandbox", "advance", "--days", "3", stdout=StringIO())
    _until(page, shop, lambda: _plan(page) == "flowkit", "FlowKit once the bank confirms")
    assert page.locator(".pending-payment").count() == 0


def test_dunning_to_its_end_asks_for_no_money_for_a_lost_plan(page: Page, shop, mailoutbox):  # noqa: F811
    from devtools.stripe_sandbox import collection

    email = "lapsed@example.com"
    _subscribe(page, shop, email, CARD_RENEWAL_FAILS)
    _renew(email)
    _until(page, shop, lambda: _banner(page).count() == 1, "the failed-payment banner")
    expect(_banner(page)).to_contain_text("£49.00")
    _widths(page, "standing-dunning-banner")

    # Past the 7-day grace, then past Stripe's last retry (3 + 5 + 7 days): it gives up.
    collection.clock_advance(16 * 86400)

    _until(page, shop, lambda: _plan(page) == "starter", "the plan back on Starter")

    def voided_on_the_billing_page() -> bool:
        page.goto(f"{shop}/billing/")
        return "Void, not owed" in (page.text_content("main") or "")

    _until(page, shop, voided_on_the_billing_page, "the unpaid renewal voided")
    assert page.get_by_role("link", name=re.compile("Pay")).count() == 0
    _widths(page, "standing-dunning-end-billing")
    page.goto(f"{shop}/")
    assert "£49.00" not in (page.text_content("body") or "")  # no money asked for a lost plan
    _widths(page, "standing-dunning-end-dashboard")
    ended = _mail_arrives(mailoutbox, email, "Your SmartFlow plan has ended")  # exactly one
    assert "£49.00" in ended.body  # the renewal that was not paid
