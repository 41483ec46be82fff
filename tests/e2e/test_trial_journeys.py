"""A free trial in a browser against the sandbox, webhooks through the task worker: the
plan is live at once, the pages say when the trial ends and what follows, the customer
is emailed after `stripe_sandbox advance --days 11`, and charged when the trial ends."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from io import StringIO

import pytest
import stripe
from django.core import mail
from django.core.management import call_command
from playwright.sync_api import Page, expect

from accounts.models import User
from billing.stripe_api import api_kwargs, live_subscription
from billing.templatetags.billing import long_date
from tests.e2e.helpers import shot
from tests.e2e.test_billing_journeys import _sign_up, _wait_plan

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def shop(live_server, settings, task_worker):
    settings.SITE_URL = live_server.url
    settings.BILLING_TRIAL_DAYS = 14
    call_command("stripe_catalog", stdout=StringIO())
    return live_server.url


def _until(condition, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.2)


def test_a_trial_is_live_warns_before_its_end_and_then_charges(page: Page, shop):
    email = "trial@example.com"
    _sign_up(page, shop, email)
    page.goto(f"{shop}/pricing/")
    page.get_by_role("button", name="Buy FlowKit monthly").click()
    page.wait_for_url(re.compile(r".*/sandbox/checkout/cs_test_\w+/"))
    page.get_by_label(re.compile("card number", re.I)).fill("4242 4242 4242 4242")
    page.get_by_role("button", name=re.compile(r"^(Pay|Start|Subscribe)")).click()
    page.wait_for_url(re.compile(r".*/billing/success/.*"))
    _wait_plan(page, shop, "flowkit")

    user = User.objects.get(email=email)
    sub = live_subscription(user)
    assert sub["status"] == "trialing"
    ends = long_date(datetime.fromtimestamp(sub["trial_end"], tz=UTC))
    # What is charged then is Stripe's preview of the first invoice, which the worker
    # fetches as the subscription's webhooks arrive (late, as Stripe sends them).
    deadline = time.monotonic() + 45
    while page.get_by_text(f"Trial ends on {ends}, then £49.00/month").count() == 0:
        assert time.monotonic() < deadline, "the dashboard never showed the trial's charge"
        page.wait_for_timeout(250)
        page.reload()
    expect(page.get_by_text(f"Trial ends on {ends}, then £49.00/month")).to_be_visible()
    page.goto(f"{shop}/billing/")
    shot(page, "billing-trialing")
    expect(page.get_by_text(f"Trial ends on {ends}, then £49.00/month")).to_be_visible()

    subject = f"Your SmartFlow trial ends on {ends}"
    call_command("stripe_sandbox", "advance", "--days", "11", stdout=StringIO())
    _until(lambda: any(m.subject == subject for m in mail.outbox), "the trial-ending email")
    assert [m.to for m in mail.outbox if m.subject == subject] == [[email]]

    call_command("stripe_sandbox", "advance", "--days", "4", stdout=StringIO())
    _until(
        lambda: (live_subscription(user) or {}).get("status") == "active",
        "the subscription is active after the trial",
    )
    _wait_plan(page, shop, "flowkit")
    # Charged at the end: the first real invoice, paid, and (once its webhook is
    # processed) on the billing page.
    invoice = stripe.Invoice.retrieve(live_subscription(user)["latest_invoice"], **api_kwargs())
    assert (invoice["status"], invoice["amount_paid"]) == ("paid", 4900)

    def listed() -> bool:
        page.goto(f"{shop}/billing/")
        return invoice["number"] in page.locator("body").inner_text()

    _until(listed, "the billing page lists the paid invoice")
    shot(page, "billing-after-trial")
    assert [m.subject for m in mail.outbox].count(subject) == 1
