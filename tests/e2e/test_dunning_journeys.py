"""Failed renewals as a customer lives them, on the sandbox with Stripe-like delivery:
the banner on every page, recovery by a new card in the portal, the plan ending when
Stripe gives up, a 3-D Secure renewal confirmed on the hosted invoice page, and the
402 page a person can read."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from io import StringIO

import pytest
from django.core.management import call_command
from djstripe.models import Customer
from playwright.sync_api import Page, expect

from accounts.models import User
from devtools.stripe_sandbox import collection, invoices, store
from tests.e2e.helpers import assert_fits, shot, sign_up
from tests.helpers import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

CARD_OK = "4242 4242 4242 4242"
CARD_RENEWAL_FAILS = "4000 0000 0000 0341"
CARD_3DS = "4000 0027 6000 3184"
DAY = 86400


@pytest.fixture
def shop(live_server, settings, task_worker):
    settings.SITE_URL = live_server.url
    call_command("stripe_catalog", stdout=StringIO())
    return live_server.url


def _sign_up(page: Page, site: str, email: str) -> None:
    sign_up(page, site, email, PASSWORD)  # and confirm the address


def _subscribe(page: Page, site: str, email: str, card: str) -> None:
    _sign_up(page, site, email)
    page.goto(f"{site}/pricing/")
    page.get_by_role("button", name="Buy FlowKit monthly").click()
    page.wait_for_url(re.compile(r".*/sandbox/checkout/cs_test_\w+/"))
    page.get_by_label(re.compile("card number", re.I)).fill(card)
    page.get_by_role("button", name=re.compile(r"^Pay ")).click()
    if card == CARD_3DS:
        page.get_by_role("button", name="Complete authentication").click()
    page.wait_for_url(re.compile(r".*/billing/success/.*"))
    _until(page, site, lambda: _plan(page) == "flowkit", "the FlowKit plan")


def _plan(page: Page) -> str | None:
    return page.locator(".plan-name").get_attribute("data-plan")


def _banner(page: Page):
    return page.locator(".dunning-banner")


def _until(page: Page, site: str, done: Callable[[], bool], what: str, seconds: float = 45):
    """Reload the dashboard until `done()`: webhooks arrive late, shuffled, some twice."""
    deadline = time.monotonic() + seconds
    while True:
        page.goto(f"{site}/")
        if done():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the dashboard never showed {what}")
        page.wait_for_timeout(250)


def _mails(mailoutbox, to: str, subject: str) -> list:
    return [m for m in mailoutbox if m.to == [to] and m.subject == subject]


def _mail_arrives(mailoutbox, to: str, subject: str, seconds: float = 30):
    """The one email with `subject` to `to`, once the worker has sent it."""
    deadline = time.monotonic() + seconds
    while not _mails(mailoutbox, to, subject):
        if time.monotonic() > deadline:
            sent = [(m.to, m.subject) for m in mailoutbox]
            raise AssertionError(f"no email {subject!r} to {to}; sent: {sent}")
        time.sleep(0.1)
    (mail,) = _mails(mailoutbox, to, subject)
    return mail


def _subscription(email: str) -> dict:
    customer = Customer.objects.get(subscriber=User.objects.get(email=email))
    (sub,) = [s for s in store.all_of("subscription") if s["customer"] == customer.id]
    return sub


def _renew(email: str) -> None:
    """Move the sandbox clock to just past the renewal's charge, an hour after its invoice."""
    renewal = invoices.items_period(_subscription(email))[1] + collection.FINALIZE_SECONDS
    collection.clock_advance(renewal - store.now() + 60)


def test_a_failed_renewal_shows_the_banner_and_a_new_card_in_the_portal_recovers_it(
    page, shop, mailoutbox
):
    email = "failing@example.com"
    _subscribe(page, shop, email, CARD_RENEWAL_FAILS)
    assert _banner(page).count() == 0

    _renew(email)

    _until(page, shop, lambda: _banner(page).count() == 1, "the failed-payment banner")
    banner = _banner(page)
    expect(banner).to_contain_text("Your payment of £49.00 failed.")
    expect(banner).to_contain_text(re.compile(r"We will try again on \d{1,2} \w+ \d{4}\."))
    assert _plan(page) == "flowkit"  # kept while Stripe retries
    failed = _mail_arrives(mailoutbox, email, "Your SmartFlow payment failed")
    assert "£49.00" in failed.body
    for width in (375, 1280):
        assert_fits(page, width)
    page.set_viewport_size({"width": 1280, "height": 900})
    shot(page, "dunning-banner")
    page.goto(f"{shop}/pricing/")
    expect(_banner(page)).to_be_visible()  # on every page

    _banner(page).get_by_role("button", name="Update card").click()
    page.wait_for_url(re.compile(r".*/sandbox/portal/bps_\w+/"))
    page.get_by_label(re.compile("card number", re.I)).fill(CARD_OK)
    page.get_by_role("button", name="Update card").click()
    page.get_by_role("link", name="Pay invoice").click()
    page.get_by_role("button", name="Pay with Visa ending 4242").click()
    expect(page.locator(".sandbox-invoice")).to_have_attribute("data-status", "paid")

    _until(page, shop, lambda: _banner(page).count() == 0, "the banner gone")
    assert _plan(page) == "flowkit"
    assert _subscription(email)["status"] == "active"
    _mail_arrives(mailoutbox, email, "Payment received: your SmartFlow plan is active")
    # Deliveries were late, shuffled and some twice: still one email per event.
    assert len(_mails(mailoutbox, email, "Your SmartFlow payment failed")) == 1
    assert len(_mails(mailoutbox, email, "Your SmartFlow plan has ended")) == 0


def test_without_a_new_card_the_plan_ends_when_stripe_gives_up(page, shop, settings, mailoutbox):
    # A grace longer than Stripe's retries (3 + 5 + 7 days): what ends the plan here is
    # Stripe cancelling the subscription after its last retry.
    settings.BILLING_PAST_DUE_GRACE_DAYS = 30
    email = "lapsing@example.com"
    _subscribe(page, shop, email, CARD_RENEWAL_FAILS)
    _renew(email)
    _until(page, shop, lambda: _banner(page).count() == 1, "the failed-payment banner")
    # The clock moves days in seconds here; a customer has the email long before the
    # next retry, so the journey waits for it too.
    _mail_arrives(mailoutbox, email, "Your SmartFlow payment failed")

    collection.clock_advance(4 * DAY)  # the first retry fails too: told again
    _until(
        page,
        shop,
        lambda: len(_mails(mailoutbox, email, "Your SmartFlow payment failed")) == 2,
        "the second failed-payment email",
    )
    assert "We will try again on" in (_banner(page).text_content() or "")
    assert _plan(page) == "flowkit"

    collection.clock_advance(12 * DAY)  # the last retry fails: Stripe cancels

    _until(page, shop, lambda: _plan(page) == "starter", "the plan back on Starter")
    assert _subscription(email)["status"] == "canceled"
    assert _banner(page).count() == 0
    ended = _mail_arrives(mailoutbox, email, "Your SmartFlow plan has ended")
    assert "because the renewal payment of £49.00 was not paid" in ended.body
    assert "Nothing more will be taken" in ended.body
    # The last attempt's failure is not told as "we will try again": the end is.
    assert len(_mails(mailoutbox, email, "Your SmartFlow payment failed")) == 2


def test_the_plan_ends_at_the_grace_end_on_stripes_clock(page, shop, mailoutbox):
    # The default 7 days: Stripe's second retry (day 8 on its clock, far ahead of ours)
    # comes after the grace, so the plan ends then although Stripe still retries.
    email = "graceful@example.com"
    _subscribe(page, shop, email, CARD_RENEWAL_FAILS)
    _renew(email)
    _until(page, shop, lambda: _banner(page).count() == 1, "the failed-payment banner")

    collection.clock_advance(9 * DAY)

    _until(page, shop, lambda: _plan(page) == "starter", "the plan back on Starter")
    assert _subscription(email)["status"] == "past_due"
    # The plan is lost: the banner says so and asks for no money (issue 27, defect 3).
    expect(_banner(page)).to_contain_text("Your plan ended on")
    assert "£49.00" not in (_banner(page).text_content() or "")
    ended = _mail_arrives(mailoutbox, email, "Your SmartFlow plan has ended")
    assert "because the renewal payment of £49.00 was not paid" in ended.body


def test_a_3d_secure_renewal_is_confirmed_on_the_hosted_invoice_page(page, shop, mailoutbox):
    email = "secure@example.com"
    _subscribe(page, shop, email, CARD_3DS)

    _renew(email)

    _until(
        page,
        shop,
        lambda: _banner(page).get_by_role("link", name="Confirm payment").count() == 1,
        "the confirm-payment banner",
    )
    banner = _banner(page)
    expect(banner).to_contain_text("Your bank asks you to confirm your payment of £49.00.")
    assert banner.get_by_role("button").count() == 0  # one action: the link
    confirm = _mail_arrives(mailoutbox, email, "Please confirm your SmartFlow payment")
    link = banner.get_by_role("link", name="Confirm payment").get_attribute("href")
    assert link
    assert link in confirm.body  # the same hosted invoice page
    shot(page, "dunning-banner-3ds")
    banner.get_by_role("link", name="Confirm payment").click()
    page.wait_for_url(re.compile(r".*/sandbox/invoice/in_\w+/"))
    expect(page.get_by_role("heading", name="Authenticate this payment")).to_be_visible()
    page.get_by_role("button", name="Complete authentication").click()
    expect(page.get_by_text("Payment received: the invoice is paid.")).to_be_visible()

    _until(page, shop, lambda: _banner(page).count() == 0, "the banner gone")
    assert _plan(page) == "flowkit"
    # Stripe also sent invoice.payment_failed for that attempt: one message, the confirm.
    assert _mails(mailoutbox, email, "Your SmartFlow payment failed") == []
    assert len(_mails(mailoutbox, email, "Please confirm your SmartFlow payment")) == 1


def test_the_402_page_reads_well_at_375px(page, shop):
    _sign_up(page, shop, "curious@example.com")

    response = page.goto(f"{shop}/feature/ai_concierge/")

    assert response is not None
    assert response.status == 402
    expect(page.get_by_role("heading", name="AI concierge is part of LaunchPack")).to_be_visible()
    for width in (375, 1280):
        assert_fits(page, width)
    page.set_viewport_size({"width": 375, "height": 900})
    shot(page, "payment-required-375")
    page.get_by_role("link", name="Upgrade to LaunchPack").click()
    page.wait_for_url(f"{shop}/pricing/")
    json_answer = page.request.get(
        f"{shop}/feature/ai_concierge/", headers={"Accept": "application/json"}
    )
    assert json_answer.status == 402
    assert json_answer.json()["required_plan"] == "launchpack"
