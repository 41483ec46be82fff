"""Paying by Bacs Direct Debit in the sandbox's checkout page: the order is confirmed at
once, the plan goes live only when the bank answers (three days later on the sandbox
clock), and never if the debit fails. Webhooks go through the task worker, delivered as
Stripe delivers them."""

from __future__ import annotations

import re
import time
from io import StringIO

import pytest
from django.core.management import call_command
from playwright.sync_api import Page, expect

from accounts.models import User
from devtools.stripe_sandbox.models import Delivery
from tests.e2e.helpers import shot
from tests.e2e.test_billing_journeys import _sign_up, _wait_plan

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def shop(live_server, settings, task_worker):
    settings.SITE_URL = live_server.url
    call_command("stripe_catalog", stdout=StringIO())
    return live_server.url


def _debit(page: Page, site: str, account: str) -> None:
    page.goto(f"{site}/pricing/")
    page.get_by_role("button", name="Buy FlowKit monthly").click()
    page.wait_for_url(re.compile(r".*/sandbox/checkout/cs_test_\w+/"))
    expect(page.get_by_text("Or pay by Bacs Direct Debit")).to_be_visible()
    page.get_by_label("Sort code").fill("10-88-00")
    page.get_by_label("Account number").fill(account)
    shot(page, "checkout-bank-debit")
    page.get_by_role("button", name=re.compile(r"^Set up Direct Debit")).click()
    page.wait_for_url(re.compile(r".*/billing/success/\?session_id=cs_test_\w+"))
    expect(page.get_by_role("heading", name="Your bank is processing the payment")).to_be_visible()


def _all_delivered(seconds: float = 45) -> None:
    """Wait until the worker has delivered every webhook so far."""
    deadline = time.monotonic() + seconds
    while Delivery.objects.exclude(state=Delivery.State.SUCCEEDED).exists():
        assert time.monotonic() < deadline, list(
            Delivery.objects.exclude(state=Delivery.State.SUCCEEDED).values_list(
                "event_id", "state", "last_error"
            )
        )
        time.sleep(0.2)


def test_bank_debit_goes_live_when_the_bank_confirms(page, shop):
    _sign_up(page, shop, "debit@example.com")

    _debit(page, shop, "00012345")
    shot(page, "success-bank-debit")
    _all_delivered()  # the webhooks of the completed, unpaid session
    _wait_plan(page, shop, "starter", seconds=1)

    call_command("stripe_sandbox", "advance", "--days", "3", stdout=StringIO())

    _wait_plan(page, shop, "flowkit")
    user = User.objects.get(email="debit@example.com")
    assert list(user.plan_changes.values_list("old_plan", "new_plan")) == [("starter", "flowkit")]


def test_failed_bank_debit_leaves_the_plan(page, shop):
    _sign_up(page, shop, "bounced@example.com")
    _debit(page, shop, "33333335")

    call_command("stripe_sandbox", "advance", "--days", "3", stdout=StringIO())

    _all_delivered()  # the failure's webhooks
    _wait_plan(page, shop, "starter", seconds=1)
    assert not User.objects.get(email="bounced@example.com").plan_changes.exists()
