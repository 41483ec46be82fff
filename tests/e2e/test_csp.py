"""The Content-Security-Policy as Chromium enforces it: pages work and nothing is blocked."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from django.conf import settings
from playwright.sync_api import Page, expect

from accounts.models import User
from tests.helpers import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

# Playwright's init scripts run outside the page's policy, so this listener sees every
# violation the policy reports, in every document the page loads.
_WATCH = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
});
"""


def _violations(page: Page) -> list[str]:
    return page.evaluate("window.__csp")


def _watched(new_page: Callable[[], Page]) -> Page:
    page = new_page()
    page.add_init_script(_WATCH)
    return page


def test_customer_pages_load_with_nothing_blocked(live_server, new_page):
    page = _watched(new_page)
    blocked = {}
    for path in ["/login/", "/signup/", "/pricing/", "/password/reset/"]:
        page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("load")
        if found := _violations(page):
            blocked[path] = found

    assert blocked == {}
    # The stylesheet applied: the site header is laid out by static/css/app.css.
    assert page.evaluate("getComputedStyle(document.body).margin") != "8px"


def test_admin_scripts_run_with_nothing_blocked(live_server, new_page):
    User.objects.create_superuser("root@example.com", PASSWORD)
    customer = User.objects.create_user("pat@example.com", PASSWORD)
    admin = f"{live_server.url}/{settings.ADMIN_URL}"
    page = _watched(new_page)
    page.goto(f"{admin}/login/")
    page.get_by_label(re.compile("^Email", re.I)).fill("root@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name=re.compile("Log in", re.I)).click()
    page.wait_for_url(f"{admin}/")

    blocked = {}
    for path in [
        "/",
        "/accounts/user/",
        f"/accounts/user/{customer.pk}/change/",
        f"/accounts/user/{customer.pk}/override/grant/",
        "/accounts/user/add/",
        "/auth/group/add/",
        "/billing/planchange/",
    ]:
        page.goto(f"{admin}{path}")
        page.wait_for_load_state("load")
        if found := _violations(page):
            blocked[path] = found

    assert blocked == {}
    # The admin's own scripts ran: the group form's permission picker is built by
    # SelectFilter2.js, and the add-user form's password toggle by its own script.
    page.goto(f"{admin}/auth/group/add/")
    expect(page.locator("#id_permissions_filter")).to_be_visible()
    page.goto(f"{admin}/accounts/user/add/")
    page.locator('input[name="usable_password"][value="false"]').check()
    expect(page.locator("#id_password1")).to_be_hidden()
    assert _violations(page) == []
