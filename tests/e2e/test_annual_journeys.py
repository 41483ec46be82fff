"""Buying a year in a browser against the sandbox: the yearly choice beside monthly and
once on the pricing page (no JavaScript needed), the yearly price and saving, and the
yearly renewal on the billing page."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from accounts.models import User
from billing.stripe_api import live_subscription
from billing.templatetags.billing import long_date
from tests.e2e.helpers import assert_fits, shot
from tests.e2e.test_billing_journeys import _sign_up, _wait_plan
from tests.e2e.test_upgrade_journeys import shop  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db(transaction=True)


def test_buy_flowkit_annually_and_see_the_yearly_renewal(page: Page, shop):  # noqa: F811
    email = "yearly@example.com"
    _sign_up(page, shop, email)
    page.goto(f"{shop}/pricing/")  # monthly, yearly and once side by side, no toggle
    shot(page, "pricing-annual")
    for width in (375, 1280):
        assert_fits(page, width)
    page.set_viewport_size({"width": 1280, "height": 900})
    expect(page.get_by_text("£490.00 per year")).to_be_visible()
    expect(page.get_by_text("Save £98.00 a year")).to_be_visible()

    page.get_by_role("button", name="Buy FlowKit yearly").click()
    page.wait_for_url(re.compile(r".*/sandbox/checkout/cs_test_\w+/"))
    page.get_by_label(re.compile("card number", re.I)).fill("4242 4242 4242 4242")
    page.get_by_role("button", name=re.compile(r"^Pay ")).click()
    page.wait_for_url(re.compile(r".*/billing/success/.*"))
    _wait_plan(page, shop, "flowkit")

    page.goto(f"{shop}/billing/")
    shot(page, "billing-annual")
    item = live_subscription(User.objects.get(email=email))["items"]["data"][0]
    from datetime import UTC, datetime

    renews = long_date(datetime.fromtimestamp(item["current_period_end"], tz=UTC))
    # The amount is Stripe's preview of the next invoice, which the worker fetches when
    # the subscription's webhooks arrive (late, as Stripe sends them): reload until then.
    _reload_until(page, lambda: "next payment" in page.locator(".outlook").inner_text())
    expect(page.locator(".outlook")).to_have_text(f"Renews on {renews}: next payment £490.00/year")
    assert item["price"]["recurring"]["interval"] == "year"


def _reload_until(page, shown, seconds: float = 45) -> None:
    import time

    deadline = time.monotonic() + seconds
    while not shown():
        assert time.monotonic() < deadline, "the page never showed it"
        page.wait_for_timeout(250)
        page.reload()
