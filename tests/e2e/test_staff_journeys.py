"""Staff journeys through the Django admin, watched from the customer's own browser, with
two-factor login on as in production (backoffice/staff_2fa.py)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import (
    TOTP,
    format_hotp_value,
    generate_totp_secret,
    hotp_value,
)
from django.conf import settings
from django.contrib.auth.models import Group
from django.utils import timezone
from playwright.sync_api import Page, expect

from accounts.models import User
from backoffice.roles import roles_sync
from billing.models import PlanOverride
from tests.e2e.helpers import assert_fits, shot
from tests.helpers import PASSWORD, email_confirmed

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def support_agent(transactional_db) -> User:
    """A staff member in the Support group (not a superuser)."""
    # Transactional tests flush the groups the data migration made; make them again.
    roles_sync()
    agent = email_confirmed(User.objects.create_user("agent@example.com", PASSWORD, is_staff=True))
    agent.groups.add(Group.objects.get(name="Support"))
    return agent


def _log_in(page: Page, site: str, email: str, path: str = "/login/") -> None:
    page.goto(f"{site}{path}")
    page.get_by_label(re.compile("^Email", re.I)).fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name=re.compile("Log in|Sign in", re.I)).click()


def _code(secret: str, step: int = 0) -> str:
    """What the staff member's authenticator app shows now (`step` periods later: each
    code is accepted once, and the next one is accepted already)."""
    return format_hotp_value(hotp_value(secret, int(time.time()) // 30 + step))


def _enter_code(page: Page, code: str) -> None:
    page.locator("input[name=code]").fill(code)
    page.get_by_role("button", name=re.compile("Sign in|Confirm|Activate", re.I)).click()


@pytest.fixture
def staff_2fa_required(settings) -> None:
    # The suite runs with it off (pyproject.toml); production has it on.
    settings.STAFF_2FA_REQUIRED = True


def test_support_comps_launchpack_and_the_customers_dashboard_unlocks(
    live_server, new_page: Callable[[], Page], support_agent: User, staff_2fa_required: None
):
    site = live_server.url
    admin = f"{site}/{settings.ADMIN_URL}"
    customer = email_confirmed(User.objects.create_user("pat@example.com", PASSWORD))
    secret = generate_totp_secret()
    TOTP.activate(support_agent, secret)

    # The customer is signed in on their own browser, on Starter.
    theirs = new_page()
    _log_in(theirs, site, customer.email)
    theirs.wait_for_url(f"{site}/")
    assert theirs.locator(".plan-name").get_attribute("data-plan") == "starter"
    concierge = theirs.locator('[data-feature="ai_concierge"]')
    assert concierge.get_attribute("data-allowed") == "false"

    # Staff log into the admin, with the code from their authenticator app, and find the
    # customer by email.
    ours = new_page()
    _log_in(ours, site, support_agent.email, path=f"/{settings.ADMIN_URL}/login/")
    ours.wait_for_url(f"{site}/account/2fa/authenticate/")
    _enter_code(ours, _code(secret))
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


def _fits_both(page: Page, name: str) -> None:
    """The page fits a 1280 px screen and a 375 px phone (a screenshot of each); the
    journey goes on at 375 px."""
    for width in (1280, 375):
        assert_fits(page, width)
        shot(page, f"{name}-{width}")


def test_first_admin_sign_in_sets_up_the_authenticator_app(
    live_server, new_page: Callable[[], Page], support_agent: User, staff_2fa_required
):
    # Taken on a phone, each page checked at both widths: one journey, not one per width.
    site = live_server.url
    page = new_page()
    page.set_viewport_size({"width": 375, "height": 900})

    # The admin sends staff to the site's sign-in page; the password alone opens nothing.
    page.goto(f"{site}/{settings.ADMIN_URL}/")
    page.wait_for_url(re.compile(r".*/login/\?next=.*"))
    _fits_both(page, "staff-2fa-login")
    _log_in(page, site, support_agent.email, path=page.url.removeprefix(site))
    page.wait_for_url(re.compile(r".*/reauthenticate/.*"))
    expect(page.get_by_text("set up an authenticator app to continue")).to_be_visible()

    # allauth asks for the password again before an authenticator is added.
    page.locator("input[name=password]").fill(PASSWORD)
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url(f"{site}/account/2fa/totp/activate/")
    expect(page.locator(".totp-qr svg")).to_be_visible()
    _fits_both(page, "staff-2fa-activate")

    # The app's first code turns two-factor login on, and recovery codes are shown. The
    # phone reads the secret from the QR code; the page shows it as text too.
    secret = page.locator("#authenticator_secret").input_value()
    _enter_code(page, _code(secret))
    page.wait_for_url(f"{site}/account/2fa/recovery-codes/")
    _fits_both(page, "staff-2fa-recovery-codes")
    page.get_by_role("link", name="Continue to the back-office").click()
    page.wait_for_url(f"{site}/{settings.ADMIN_URL}/")
    expect(page.get_by_role("heading", name="At a glance")).to_be_visible()
    assert Authenticator.objects.filter(user=support_agent, type="totp").exists()

    # Next time, on another browser: password, then the app's code.
    again = new_page()
    again.set_viewport_size({"width": 375, "height": 900})
    _log_in(again, site, support_agent.email, path=f"/{settings.ADMIN_URL}/login/")
    again.wait_for_url(f"{site}/account/2fa/authenticate/")
    _fits_both(again, "staff-2fa-code")
    _enter_code(again, _code(secret, step=1))
    again.wait_for_url(f"{site}/{settings.ADMIN_URL}/")
    expect(again.get_by_role("heading", name="At a glance")).to_be_visible()
