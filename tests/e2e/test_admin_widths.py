"""Issue 16, "Staff who use it every day": the plan-history table fits at 1280 px and the
admin index fits a 375 px phone, with the long ids, reasons and emails real data has."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone
from playwright.sync_api import Page

from accounts.models import User
from billing.models import BillingAlert, PlanChange, WebhookDelivery
from smartflow.models import WorkerHeartbeat
from tests.billing.test_dunning_banner import failing  # noqa: F401
from tests.e2e.helpers import shot
from tests.helpers import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

# Ids and text of the lengths Stripe and staff produce: ids with no break in them, and
# reasons that are a paragraph, not a word.
EVENT_ID = "evt_1QyZx9AbCdEfGhIjKlMnOpQr{n:02d}StUvWxYz"
REASON = (
    "Customer wrote to support on 2026-01-{n:02d}: the renewal charged twice after the card "
    "update, refunded the duplicate in Stripe and comped the plan for the month while the "
    "bank reverses it; see ticket SUP-{n:04d} and the finance thread"
)
ACTOR = "support.agent.with.a.long.name.{n}@smartflowsystems.com"

# The text that runs past the viewport's right edge, with the element holding it (and
# the nearest id above) and its white-space: this names the cause of an overflow (an id
# with no break, a nowrap cell), where the table or the page only shows the symptom.
WIDEST = """() => {
    const found = [];
    const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let node = walk.nextNode(); node; node = walk.nextNode()) {
        if (!node.textContent.trim()) continue;
        const range = document.createRange();
        range.selectNodeContents(node);
        const right = range.getBoundingClientRect().right;
        if (right <= window.innerWidth + 0.5) continue;
        const el = node.parentElement;
        const home = el.closest('[id]');
        found.push([right, `${el.tagName.toLowerCase()} in #${home ? home.id : '?'}`
            + ` (white-space: ${getComputedStyle(el).whiteSpace}, ends at`
            + ` ${Math.round(right)}px): ${node.textContent.trim().slice(0, 50)}`]);
    }
    return found.sort((a, b) => b[0] - a[0]).slice(0, 6).map(([, text]) => text);
}"""


def _log_in(page: Page, site: str, email: str) -> None:
    page.goto(f"{site}/{settings.ADMIN_URL}/login/")
    page.get_by_label(re.compile("^Email", re.I)).fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name=re.compile("Log in", re.I)).click()
    page.wait_for_url(f"{site}/{settings.ADMIN_URL}/")


def _overflow(page: Page) -> tuple[int, list[Any]]:
    """How far the page is wider than the viewport, and the elements that stick out."""
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    return overflow, page.evaluate(WIDEST)


def _history(customer: User, rows: int = 6) -> None:
    plans = ["starter", "flowkit", "launchpack"]
    for n in range(1, rows + 1):
        actor = User.objects.create_user(ACTOR.format(n=n), PASSWORD, is_staff=True)
        PlanChange.objects.create(
            user=customer,
            old_plan=plans[n % 3],
            new_plan=plans[(n + 1) % 3],
            source="staff" if n % 2 else "invoice",
            actor=actor,
            reason=REASON.format(n=n),
            stripe_event_id=EVENT_ID.format(n=n),
            created_at=timezone.now() - timedelta(days=n),
        )


def test_the_plan_history_fits_a_1280px_screen(live_server, page: Page, staff_user, customer):
    _history(customer)
    _log_in(page, live_server.url, staff_user.email)

    page.goto(f"{live_server.url}/{settings.ADMIN_URL}/accounts/user/{customer.pk}/change/")
    shot(page, "admin-user-plan-history-1280")

    table = page.locator("#plan_changes-group table")
    assert table.locator("tbody tr.has_original").count() == 6
    overflow, widest = _overflow(page)
    assert overflow <= 0, f"page is {overflow}px wider than 1280px; widest: {widest}"
    # The table itself fits: not merely scrolled inside its box, nor clipped by it.
    box = table.bounding_box()
    container = page.locator("#plan_changes-group fieldset").bounding_box()
    assert box is not None
    assert container is not None
    right = box["x"] + box["width"]
    assert right <= min(1280, container["x"] + container["width"]), (
        f"plan history ends at {right}px; widest: {widest}"
    )


def test_the_admin_index_fits_a_375px_phone(
    live_server,
    page: Page,
    staff_user,
    customer,
    failing,  # noqa: F811  (a customer in dunning)
):
    _history(customer)
    BillingAlert.objects.create(
        kind="unknown_price", stripe_id="price_1QyZx9AbCdEfGhIjKlMnOpQrStUvWxYz"
    )
    WebhookDelivery.objects.create(
        event_id=EVENT_ID.format(n=99),
        event_type="customer.subscription.updated",
        state="failed",
        last_error="KeyError: 'djstripe_subscriber' in metadata of cus_QyZx9AbCdEfGhIjKlMnOp",
    )
    WorkerHeartbeat.objects.create(
        worker_id="worker-9f8e7d6c5b4a39281706f5e4d3c2b1a0",
        hostname="ip-10-0-12-34.eu-west-2.compute.internal",
        pid=123456,
    )
    _log_in(page, live_server.url, staff_user.email)

    page.set_viewport_size({"width": 375, "height": 800})
    page.goto(f"{live_server.url}/{settings.ADMIN_URL}/")
    shot(page, "admin-index-375")

    for panel in ("#needs-attention", "#dunning-count", "#recent-changes", "#mrr"):
        assert page.locator(panel).count() == 1, f"{panel} is not on the index"
    assert page.locator(".worker-row").count() == 1
    overflow, widest = _overflow(page)
    assert overflow <= 0, f"page is {overflow}px wider than 375px; widest: {widest}"
