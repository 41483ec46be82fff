"""Changes at the end of the paid period, in the browser against the sandbox with
Stripe-like delivery: cancel at the period end (the plan ends on the date), a downgrade
that waits for the period end, and the billing page's invoices and card."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

import pytest
from djstripe.models import Invoice, Subscription
from playwright.sync_api import Page, expect

from accounts.models import User
from billing.models import PlanChange
from devtools.stripe_sandbox import collection, store
from tests.e2e.helpers import assert_fits, shot
from tests.e2e.test_billing_journeys import CARD_OK, _buy, _sign_up, _wait_plan, shop  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


def _long(ts: int) -> str:
    moment = datetime.fromtimestamp(ts, tz=UTC)
    return f"{moment.day} {moment:%B %Y}"


def _period_end(email: str) -> int:
    sub = Subscription.objects.get(customer__subscriber__email=email).stripe_data
    return sub["items"]["data"][0]["current_period_end"]


def _advance_to(ts: int) -> None:
    """The sandbox clock to `ts` (what falls due on the way happens, at its time)."""
    collection.clock_advance(max(ts - store.now(), 0))


def _wait_text(page: Page, url: str, text: str, *, seconds: float = 45) -> None:
    deadline = time.monotonic() + seconds
    while True:
        page.goto(url)
        if text in page.content():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} never said {text!r}")
        page.wait_for_timeout(250)


def _wait_renewal_paid(seconds: float = 45) -> Invoice:
    """The synced renewal invoice, once paid: its events may arrive after the
    subscription's (Stripe-like delivery)."""
    renewals = Invoice.objects.filter(
        stripe_data__billing_reason="subscription_cycle", stripe_data__status="paid"
    )
    deadline = time.monotonic() + seconds
    while not renewals.exists():
        assert time.monotonic() < deadline, "the renewal invoice was never synced as paid"
        time.sleep(0.25)
    return renewals.get()


def test_cancel_at_the_period_end_then_the_plan_ends_on_the_date(page, shop):  # noqa: F811
    email = "cancel-later@example.com"
    _sign_up(page, shop, email)
    _buy(page, shop, "FlowKit", monthly=True, card=CARD_OK)
    _wait_plan(page, shop, "flowkit")
    end = _period_end(email)

    page.goto(f"{shop}/billing/")
    page.get_by_role("link", name="Cancel at the end of the period").click()
    expect(page.get_by_text(f"ends on {_long(end)}")).to_be_visible()
    for width in (375, 1280):
        assert_fits(page, width)
    page.set_viewport_size({"width": 1280, "height": 900})
    shot(page, "billing-cancel-confirm")
    page.get_by_role("button", name=f"Cancel on {_long(end)}").click()
    page.wait_for_url(f"{shop}/billing/")
    expect(page.get_by_text(f"Cancels on {_long(end)}")).to_be_visible()
    page.goto(f"{shop}/")
    expect(page.get_by_text(f"Cancels on {_long(end)}")).to_be_visible()

    _advance_to(end - 3600)  # the last hour of the paid period: still FlowKit
    _wait_plan(page, shop, "flowkit", seconds=3)
    _advance_to(end + 60)
    _wait_plan(page, shop, "starter")
    change = PlanChange.objects.latest("id")
    assert (change.old_plan, change.new_plan) == ("flowkit", "starter")
    assert User.objects.get(email=email).plan == "starter"


def test_resume_before_the_date_keeps_the_plan(page, shop):  # noqa: F811
    email = "resume@example.com"
    _sign_up(page, shop, email)
    _buy(page, shop, "FlowKit", monthly=True, card=CARD_OK)
    _wait_plan(page, shop, "flowkit")
    end = _period_end(email)

    page.goto(f"{shop}/billing/cancel/")
    page.get_by_role("button", name=f"Cancel on {_long(end)}").click()
    page.get_by_role("button", name="Resume my subscription").click()
    page.wait_for_url(f"{shop}/billing/")
    expect(page.get_by_text(f"Renews on {_long(end)}")).to_be_visible()

    _advance_to(end + collection.FINALIZE_SECONDS + 60)  # the renewal's charge
    _wait_renewal_paid()
    _wait_plan(page, shop, "flowkit", seconds=3)
    assert Subscription.objects.get().stripe_data["status"] == "active"


def test_a_downgrade_waits_for_the_period_end(page, shop):  # noqa: F811
    email = "downgrade@example.com"
    _sign_up(page, shop, email)
    _buy(page, shop, "LaunchPack", monthly=True, card=CARD_OK)
    _wait_plan(page, shop, "launchpack")
    end = _period_end(email)

    page.goto(f"{shop}/billing/")
    page.get_by_role("link", name="Move to FlowKit at the period end").click()
    expect(page.get_by_text(f"until {_long(end)}")).to_be_visible()
    for width in (375, 1280):
        assert_fits(page, width)
    page.set_viewport_size({"width": 1280, "height": 900})
    shot(page, "billing-downgrade-confirm")
    page.get_by_role("button", name=f"Move to FlowKit on {_long(end)}").click()
    page.wait_for_url(f"{shop}/billing/")
    expect(page.get_by_text(f"Changes to FlowKit on {_long(end)}")).to_be_visible()
    page.goto(f"{shop}/")
    expect(page.get_by_text(f"Changes to FlowKit on {_long(end)}")).to_be_visible()

    _advance_to(end - 86400)  # a day before: the customer still has what they paid for
    _wait_plan(page, shop, "launchpack", seconds=3)
    _advance_to(end + collection.FINALIZE_SECONDS + 60)  # the renewal's charge
    _wait_plan(page, shop, "flowkit")
    change = PlanChange.objects.latest("id")
    assert (change.old_plan, change.new_plan) == ("launchpack", "flowkit")
    # The renewal billed FlowKit's price, and the billing page says what comes next.
    assert _wait_renewal_paid().stripe_data["amount_paid"] == 4900
    page.goto(f"{shop}/billing/")
    expect(page.locator("li.invoice").first).to_contain_text("£49.00")
    expect(page.get_by_text(f"Renews on {_long(_period_end(email))}")).to_be_visible()


def test_the_billing_page_lists_the_invoices_and_the_card(page, shop):  # noqa: F811
    email = "statement@example.com"
    _sign_up(page, shop, email)
    _buy(page, shop, "FlowKit", monthly=True, card=CARD_OK)
    _wait_plan(page, shop, "flowkit")
    _advance_to(_period_end(email) + collection.FINALIZE_SECONDS + 60)  # a renewal, charged

    _wait_text(page, f"{shop}/billing/", "Visa ending 4242")
    deadline = time.monotonic() + 45
    while page.locator("li.invoice").count() < 2 and time.monotonic() < deadline:
        page.wait_for_timeout(250)
        page.reload()
    invoices = page.locator("li.invoice")
    expect(invoices).to_have_count(2)
    expect(page.get_by_text("Visa ending 4242, expires 12/2034")).to_be_visible()
    for row in range(2):
        expect(invoices.nth(row)).to_contain_text("£49.00")
        expect(invoices.nth(row)).to_contain_text("Paid")
    for width in (375, 1280):
        assert_fits(page, width)
    page.set_viewport_size({"width": 375, "height": 900})
    shot(page, "billing-page-375")
    page.set_viewport_size({"width": 1280, "height": 900})

    invoices.first.get_by_role("link", name="View invoice").click()
    page.wait_for_url(re.compile(r".*/sandbox/invoice/in_\w+/"))
    expect(page.locator(".sandbox-invoice")).to_have_attribute("data-status", "paid")
