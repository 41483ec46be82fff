"""Helpers for the browser journeys: screenshots of key pages and the fit of a page on a
narrow screen."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page

SHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


def shot(page: Page, name: str) -> Path:
    """Save a screenshot of a key page (artifacts/screenshots/<name>.png)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{slug(name)}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def assert_fits(page: Page, width: int) -> None:
    """No horizontal overflow at `width`, and every button and link can be reached."""
    page.set_viewport_size({"width": width, "height": 900})
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"page is {overflow}px wider than a {width}px screen"
    offenders = page.evaluate(
        """(width) => [...document.querySelectorAll('button, a.button, input[type=submit]')]
            .filter(el => el.offsetParent !== null)
            .map(el => [el.textContent.trim(), el.getBoundingClientRect()])
            .filter(([, r]) => r.right > width + 1 || r.left < -1 || r.width === 0)
            .map(([t]) => t)""",
        width,
    )
    assert offenders == [], f"buttons out of reach at {width}px: {offenders}"


def sign_up(page: Page, site: str, email: str, password: str) -> None:
    """Sign up at `site` as a newcomer does, then open the confirmation link of the email
    queued for them (read from the outbox: no worker needed) and confirm: signed in, on
    the dashboard."""
    page.goto(f"{site}/signup/")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_label("Password confirmation").fill(password)
    page.get_by_role("button", name="Sign up").click()
    page.get_by_role("heading", name="Confirm your email address").wait_for()
    page.goto(f"{site}{confirmation_path(email)}")
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url(f"{site}/")


def confirmation_path(email: str) -> str:
    """The path of the newest confirmation link queued for `email`."""
    from onboarding.models import OnboardingMessage

    message = (
        OnboardingMessage.objects.filter(template="account", recipient=email)
        .filter(context__kind__startswith="email_confirmation")
        .latest("pk")
    )
    [path] = re.findall(r"https?://[^/\s]+(/confirm-email/\S+)", message.context["text"])
    return path
