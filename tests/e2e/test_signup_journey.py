from __future__ import annotations

import pytest

from accounts.models import User
from onboarding.models import OnboardingMessage
from tests.e2e.helpers import assert_fits, confirmation_path, shot
from tests.helpers import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


# Long enough to overflow a phone's width unless the greeting wraps (as real ones do).
NEWCOMER = "newcomer.with.a.long.name@smartflow-bookings.example.com"


def test_newcomer_signs_up_confirms_and_sees_the_starter_dashboard(page, live_server):
    page.goto(f"{live_server.url}/signup/")
    page.get_by_label("Email address").fill(NEWCOMER)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password confirmation").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()

    page.get_by_role("heading", name="Confirm your email address").wait_for()
    shot(page, "signup-confirm-email")
    page.goto(f"{live_server.url}{confirmation_path(NEWCOMER)}")
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url(f"{live_server.url}/")
    assert "Starter" in page.locator(".plan-name").inner_text()
    assert page.locator('[data-feature="ai_concierge"]').get_attribute("data-allowed") == "false"
    shot(page, "dashboard-starter")
    assert User.objects.get().email == NEWCOMER
    for width in (375, 1280):
        assert_fits(page, width)


def test_a_taken_email_is_answered_like_a_new_one_and_its_owner_is_told(
    page, live_server, customer
):
    page.goto(f"{live_server.url}/signup/")
    page.get_by_label("Email address").fill("CUSTOMER@example.com")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password confirmation").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()

    page.get_by_role("heading", name="Confirm your email address").wait_for()
    assert "already exists" not in page.content()
    [told] = OnboardingMessage.objects.filter(template="account", recipient=customer.email)
    assert told.context["kind"] == "account_already_exists"
    assert User.objects.count() == 1
