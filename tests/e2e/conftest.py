"""Browser tests: Playwright for Python driving Debian's Chromium against a live server.

Never downloads or installs a browser: `make browsers` (which `make test` runs first)
sees to /usr/bin/chromium. Without it these tests are skipped, or fail under CI=true or
REQUIRE_BROWSER=1, where a skipped journey must not pass for a tested one. Screenshots of
key pages go to artifacts/screenshots/ (git-ignored); a failing test saves one more and
names it in its report.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.e2e.helpers import SHOTS, slug

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def _require_chromium() -> None:
    if Path(CHROMIUM).exists():
        return
    reason = f"{CHROMIUM} is missing: run `make browsers` (Debian's chromium package)"
    if os.environ.get("CI") == "true" or os.environ.get("REQUIRE_BROWSER"):
        pytest.fail(f"{reason}; CI / REQUIRE_BROWSER needs the browser tests to run")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _stripe_delivery(stripe_delivery: int) -> None:
    """These journeys run with webhooks delivered as Stripe delivers them
    (tests/conftest.py: stripe_delivery; a failure prints the seed)."""


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    _require_chromium()
    # Playwright's sync API refuses to run inside a running event loop; Django's
    # async-unsafe checks would also trip on the loop it leaves behind.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        # launch() gives every run a fresh, empty profile.
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS
        )
        yield browser
        browser.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def new_page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Callable[[], Page]]:
    """Opens a page in a fresh browser context (its own cookies: one person each)."""
    opened: list[tuple[BrowserContext, Page]] = []

    def open_page() -> Page:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(15_000)
        page = context.new_page()
        opened.append((context, page))
        return page

    yield open_page
    failed = getattr(request.node, "rep_call", None)
    for number, (context, page) in enumerate(opened, start=1):
        if failed is not None and failed.failed:
            SHOTS.mkdir(parents=True, exist_ok=True)
            suffix = f"-{number}" if len(opened) > 1 else ""
            path = SHOTS / f"FAILED-{slug(request.node.nodeid)}{suffix}.png"
            page.screenshot(path=str(path), full_page=True)
            request.node.add_report_section("call", f"screenshot{suffix}", f"open {path}")
        context.close()


@pytest.fixture
def page(new_page: Callable[[], Page]) -> Page:
    return new_page()
