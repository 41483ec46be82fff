"""The README's "first ten minutes" tour, step by step, as a newcomer takes it.

If a step here changes, the README's tour changes with it: this test is its proof.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from playwright.sync_api import Page, expect

from accounts.models import User
from tests.e2e.helpers import assert_fits, shot
from tests.helpers import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def site(live_server, settings, task_worker) -> str:
    """What `make run` serves: the sandbox catalogue in place, the worker running."""
    settings.SITE_URL = live_server.url
    call_command("stripe_catalog", "--sandbox-only", stdout=StringIO())
    return live_server.url


def test_the_readme_tour_works_step_by_step(page: Page, site: str, mailoutbox):
    email = "newcomer@example.com"

    # 1. The landing page, with the three plans and their prices; it fits a phone.
    page.goto(f"{site}/")
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    for plan, price in (("Starter", "Free"), ("FlowKit", "£49.00"), ("LaunchPack", "£99.00")):
        expect(page.get_by_role("heading", name=plan)).to_be_visible()
        expect(page.get_by_text(price).first).to_be_visible()
    shot(page, "landing")
    for width in (375, 1280):
        assert_fits(page, width)
        shot(page, f"landing-{width}")
    page.set_viewport_size({"width": 1280, "height": 900})

    # 2. Sign up: the dashboard, on Starter, AI concierge locked.
    page.get_by_role("main").get_by_role("link", name="Sign up", exact=True).click()
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password confirmation").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url(f"{site}/")
    assert page.locator(".plan-name").get_attribute("data-plan") == "starter"
    concierge = page.locator('[data-feature="ai_concierge"]')
    expect(concierge.get_by_text("Locked")).to_be_visible()

    # 3. Pricing, Subscribe monthly under FlowKit, pay with 4242 on the sandbox's page.
    page.get_by_role("navigation").get_by_role("link", name="Pricing").click()
    page.get_by_role("button", name="Buy FlowKit monthly").click()
    page.wait_for_url(re.compile(r".*/sandbox/checkout/cs_test_\w+/"))
    page.get_by_label(re.compile("card number", re.I)).fill("4242 4242 4242 4242")
    page.get_by_role("button", name="Pay £49.00").click()

    # 4. Live at once; the dashboard unlocks FlowKit's features; the welcome is sent.
    expect(
        page.get_by_role("heading", name=re.compile("Your FlowKit plan is live"))
    ).to_be_visible()
    page.get_by_role("link", name="Go to your dashboard").click()
    assert page.locator(".plan-name").get_attribute("data-plan") == "flowkit"
    for feature in ("sms_reminders", "client_import"):
        expect(page.locator(f'[data-feature="{feature}"]').get_by_text("Available")).to_be_visible()
    # The worker sends it (console email under make run; the test outbox here).
    _wait_for(lambda: any(m.subject == "Your SmartFlow plan is live" for m in mailoutbox))

    # 5. AI concierge needs LaunchPack: 402; SMS reminders are FlowKit's: 200.
    assert page.request.get(f"{site}/feature/ai_concierge/").status == 402
    assert page.request.get(f"{site}/feature/sms_reminders/").status == 200

    # 6. A declined card: Pay once under LaunchPack with 0002; nothing changes.
    page.goto(f"{site}/pricing/")
    page.get_by_role("button", name="Buy LaunchPack once").click()
    page.wait_for_url(re.compile(r".*/sandbox/checkout/cs_test_\w+/"))
    page.get_by_label(re.compile("card number", re.I)).fill("4000 0000 0000 0002")
    page.get_by_role("button", name=re.compile(r"^Pay ")).click()
    expect(page.get_by_text("Your card was declined")).to_be_visible()
    assert User.objects.get(email=email).plan == "flowkit"

    # 7. A staff login with the README's exact command (in a process of its own, against
    #    the test database).
    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DJANGO_SUPERUSER_EMAIL": "staff@example.com",
        "DJANGO_SUPERUSER_PASSWORD": "pick-a-long-one",
        "DATABASE_URL": _database_url(db),
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "createsuperuser", "--noinput"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert User.objects.get(email="staff@example.com").is_superuser

    # 8. The admin: log in, Users, search for the customer, open them.
    admin = f"{site}/{settings.ADMIN_URL}/"
    page.goto(admin)
    page.get_by_label(re.compile("^Email", re.I)).fill("staff@example.com")
    page.get_by_label("Password").fill("pick-a-long-one")
    page.get_by_role("button", name=re.compile("Log in", re.I)).click()
    page.get_by_role("link", name="Users", exact=True).filter(visible=True).first.click()
    page.locator("#searchbar").fill(email)
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name=email).click()
    history = page.locator("#plan_changes-group, .inline-group").filter(has_text="Plan history")
    expect(history.get_by_text("FlowKit").first).to_be_visible()
    expect(history.get_by_text("Starter").first).to_be_visible()
    shot(page, "tour-admin-user")


def _database_url(db: dict) -> str:
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def _wait_for(condition, seconds: float = 45) -> None:
    import time

    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the worker")
        time.sleep(0.2)
