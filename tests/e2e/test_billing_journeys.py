"""Customer journeys through pricing, the sandbox's checkout and portal, and the
dashboard, against a live server with the task worker delivering Stripe's webhooks."""

from __future__ import annotations

import re
import time
from io import StringIO

import pytest
from django.core.management import call_command
from playwright.sync_api import Page, expect

from accounts.models import User
from billing.models import PlanChange
from devtools.stripe_sandbox import collection, invoices, store
from tests.e2e.helpers import assert_fits, shot, sign_up
from tests.helpers import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

CARD_OK = "4242 4242 4242 4242"
CARD_DECLINED = "4000 0000 0000 0002"


@pytest.fixture
def shop(live_server, settings, task_worker):
    """A live site whose Stripe is the sandbox, with the catalog in place."""
    settings.SITE_URL = live_server.url
    call_command("stripe_catalog", stdout=StringIO())
    return live_server.url


def _sign_up(page: Page, site: str, email: str) -> None:
    sign_up(page, site, email, PASSWORD)  # and confirm the address


def _buy(page: Page, site: str, plan_label: str, *, monthly: bool, card: str) -> None:
    page.goto(f"{site}/pricing/")
    name = f"Buy {plan_label} {'monthly' if monthly else 'once'}"
    page.get_by_role("button", name=name).click()
    page.wait_for_url(re.compile(r".*/sandbox/checkout/cs_test_\w+/"))
    shot(page, "checkout")
    page.get_by_label(re.compile("card number", re.I)).fill(card)
    page.get_by_role("button", name=re.compile(r"^Pay ")).click()


def _feature_status(page: Page, site: str, name: str) -> int:
    return page.request.get(f"{site}/feature/{name}/").status


def _wait_plan(page: Page, site: str, expected: str, *, seconds: float = 45) -> None:
    # Generous: webhooks go through the worker, and CI machines have two busy cores.
    deadline = time.monotonic() + seconds
    while True:
        page.goto(f"{site}/")
        if page.locator(".plan-name").get_attribute("data-plan") == expected:
            return
        if time.monotonic() > deadline:
            history = list(PlanChange.objects.values_list("old_plan", "new_plan", "source"))
            raise AssertionError(
                f"the dashboard never showed {expected!r}; plan changes so far: {history}"
            )
        page.wait_for_timeout(200)


def test_newcomer_subscribes_to_flowkit_then_upgrades_to_launchpack_on_the_upgrade_page(page, shop):
    _sign_up(page, shop, "newcomer@example.com")
    page.goto(f"{shop}/pricing/")
    shot(page, "pricing")
    for width in (375, 1280):
        assert_fits(page, width)
    page.set_viewport_size({"width": 1280, "height": 900})

    _buy(page, shop, "FlowKit", monthly=True, card=CARD_OK)
    page.wait_for_url(re.compile(r".*/billing/success/\?session_id=cs_test_\w+"))
    expect(
        page.get_by_role("heading", name=re.compile("Your FlowKit plan is live"))
    ).to_be_visible()
    shot(page, "success")

    _wait_plan(page, shop, "flowkit")
    shot(page, "dashboard-flowkit")
    for width in (375, 1280):
        assert_fits(page, width)
    page.set_viewport_size({"width": 1280, "height": 900})
    assert page.locator('[data-feature="ai_concierge"]').get_attribute("data-allowed") == "false"
    assert _feature_status(page, shop, "ai_concierge") == 402

    # The portal (under the app's configuration) switches no plan: the app's page does,
    # with the amount shown before it is charged.
    page.goto(f"{shop}/pricing/")
    page.get_by_role("button", name="Manage billing").click()
    page.wait_for_url(re.compile(r".*/sandbox/portal/bps_\w+/"))
    expect(page.get_by_label("Switch to")).to_have_count(0)
    page.goto(f"{shop}/pricing/")
    page.get_by_role("link", name="Switch your subscription to LaunchPack", exact=True).click()
    page.get_by_role("button", name=re.compile(r"^Pay £.* and upgrade$")).click()

    _wait_plan(page, shop, "launchpack")
    assert page.locator('[data-feature="ai_concierge"]').get_attribute("data-allowed") == "true"
    assert _feature_status(page, shop, "ai_concierge") == 200
    user = User.objects.get(email="newcomer@example.com")
    history = list(user.plan_changes.order_by("id").values_list("old_plan", "new_plan"))
    assert history == [("starter", "flowkit"), ("flowkit", "launchpack")]


def test_cancelling_in_the_portal_returns_to_starter_at_the_period_end(page, shop):
    _sign_up(page, shop, "leaver@example.com")
    _buy(page, shop, "FlowKit", monthly=True, card=CARD_OK)
    _wait_plan(page, shop, "flowkit")

    page.goto(f"{shop}/pricing/")
    page.get_by_role("button", name="Manage billing").click()
    # The app's configuration cancels at the period end, with a reason, never at once.
    expect(page.get_by_role("button", name="Cancel now")).to_have_count(0)
    page.get_by_label("Why are you cancelling?").select_option("too_expensive")
    page.get_by_role("button", name="Cancel at period end").click()

    page.wait_for_url(f"{shop}/")
    [sub] = [s for s in store.all_of("subscription") if s["status"] == "active"]
    assert sub["cancel_at_period_end"] is True
    assert sub["cancellation_details"]["feedback"] == "too_expensive"
    _wait_plan(page, shop, "flowkit", seconds=2)
    collection.clock_advance(invoices.items_period(sub)[1] - store.now() + 60)

    _wait_plan(page, shop, "starter")
    # Which event records the change depends on delivery order (a late checkout event
    # recomputes from Stripe too); the change itself must be there.
    change = PlanChange.objects.latest("id")
    assert (change.old_plan, change.new_plan) == ("flowkit", "starter")
    assert User.objects.get(email="leaver@example.com").plan == "starter"


def test_a_declined_card_shows_the_error_and_leaves_starter(page, shop):
    _sign_up(page, shop, "declined@example.com")

    _buy(page, shop, "LaunchPack", monthly=True, card=CARD_DECLINED)

    expect(page.get_by_text(re.compile("declined", re.I)).first).to_be_visible()
    assert "/sandbox/checkout/" in page.url
    _wait_plan(page, shop, "starter", seconds=1)
    assert not PlanChange.objects.exists()


def test_a_oneoff_purchase_unlocks_the_plan_for_good(page, shop):
    _sign_up(page, shop, "once@example.com")

    _buy(page, shop, "LaunchPack", monthly=False, card=CARD_OK)

    page.wait_for_url(re.compile(r".*/billing/success/.*"))
    _wait_plan(page, shop, "launchpack")
    assert _feature_status(page, shop, "ai_concierge") == 200
    assert User.objects.get(email="once@example.com").oneoff_purchases.get().plan == "launchpack"
