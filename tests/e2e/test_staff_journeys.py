"""Staff journeys through the Django admin, watched from the customer's own browser."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.utils import timezone
from playwright.sync_api import Page, expect

from accounts.models import User
from backoffice.roles import roles_sync
from billing.models import PlanOverride
from tests.e2e.helpers import shot
from tests.helpers import PASSWORD, email_confirmed

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def support_agent(transactional_db) -> User:
    """A staff member in the Support group (not a superuser)."""
    # Transactional tests flush the groups the data migration made; make them again.
    roles_sync()
    agent = User.objects.create_user("agent@example.com", PASSWORD, is_staff=True)
    agent.groups.add(Group.objects.get(name="Support"))
    return agent


def _log_in(page: Page, site: str, email: str, path: str = "/login/") -> None:
    page.goto(f"{site}{path}")
    page.get_by_label(re.compile("^Email", re.I)).fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name=re.compile("Log in", re.I)).click()


def test_support_comps_launchpack_and_the_customers_dashboard_unlocks(
    live_server, new_page: Callable[[], Page], support_agent: User
):
    site = live_server.url
    admin = f"{site}/{settings.ADMIN_URL}"
    customer = email_confirmed(User.objects.create_user("pat@example.com", PASSWORD))

    # The customer is signed in on their own browser, on Starter.
    theirs = new_page()
    _log_in(theirs, site, customer.email)
    theirs.wait_for_url(f"{site}/")
    assert theirs.locator(".plan-name").get_attribute("data-plan") == "starter"
    concierge = theirs.locator('[data-feature="ai_concierge"]')
    assert concierge.get_attribute("data-allowed") == "false"

    # Staff log into the admin and find the customer by email.
    ours = new_page()
    _log_in(ours, site, support_agent.email, path=f"/{settings.ADMIN_URL}/login/")
    ours.wait_for_url(f"{admin}/")
    ours.goto(f"{admin}/accounts/user/")
    ours.locator("#searchbar").fill("PAT@example.com")
    ours.get_by_role("button", name="Search").click()
    ours.get_by_role("link", name=customer.email).click()
    ours.wait_for_url(re.compile(rf".*/accounts/user/{customer.pk}/change/"))
    shot(ours, "admin-user")

    # They comp LaunchPack for 30 days, with a reason.
    ours.get_by_role("link", name=re.compile("Grant a plan")).click()
    ours.get_by_label("Plan").select_option("launchpack")
    ours.get_by_label("For how many days").fill("30")
    ours.get_by_role("button", name="Grant").click()
    expect(ours.get_by_text("Give a reason: it is kept in the plan history.")).to_be_visible()
    ours.get_by_label("Reason").fill("Pilot partner: free LaunchPack for the trial month")
    ours.get_by_role("button", name="Grant").click()
    ours.wait_for_url(re.compile(rf".*/accounts/user/{customer.pk}/change/"))
    shot(ours, "admin-user-comped")
    expect(ours.get_by_text("Pilot partner: free LaunchPack").first).to_be_visible()

    # The customer's dashboard changes on their next page view.
    theirs.reload()
    assert theirs.locator(".plan-name").get_attribute("data-plan") == "launchpack"
    assert concierge.get_attribute("data-allowed") == "true"
    assert theirs.request.get(f"{site}/feature/ai_concierge/").status == 200
    shot(theirs, "dashboard-comped")

    # Every step is in the history: who, why and until when.
    change = customer.plan_changes.get()
    assert (change.old_plan, change.new_plan, change.actor) == (
        "starter",
        "launchpack",
        support_agent,
    )
    assert "Pilot partner" in change.reason
    grant = PlanOverride.objects.get(user=customer)
    expected_end = timezone.now() + timedelta(days=30)
    assert abs(grant.expires_at - expected_end) < timedelta(minutes=5)
    assert grant.granted_by == support_agent
