"""Every page a customer opens reads the account standing kept in our database (the synced
rows and Stripe's stored preview), never Stripe itself: a page view makes no Stripe call,
whatever state the customer's money is in (issue 27). The upgrade page is the one page
that asks Stripe, on purpose: it quotes the proration for this moment."""

from __future__ import annotations

import logging
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from djstripe.models import Subscription

from devtools.stripe_sandbox import collection, invoices, store
from devtools.stripe_sandbox.delivery import deliver_pending
from tests.sandbox_app import app_transport

pytestmark = pytest.mark.django_db

CARD_OK = "4242 4242 4242 4242"
CARD_RENEWAL_FAILS = "4000 0000 0000 0341"

# Every page a signed-in customer can open with a GET, but the upgrade quote.
PAGES = ["/", "/pricing/", "/billing/", "/billing/cancel/", "/profile/"]


def _path(url: str) -> str:
    return url.removeprefix("http://testserver")


def _deliver(client: Any) -> None:
    assert deliver_pending(transport=app_transport(client)).failed == 0


@pytest.fixture
def shopper(client, customer, settings) -> Any:
    settings.SITE_URL = "http://testserver"
    call_command("stripe_catalog", stdout=StringIO())
    client.force_login(customer)
    return client


def _subscribe(client: Any, card: str) -> None:
    started = client.post("/billing/checkout/", {"plan": "flowkit", "interval": "monthly"})
    client.post(_path(started["Location"]), {"card_number": card})
    _deliver(client)


def _stripe_calls(client: Any, caplog: pytest.LogCaptureFixture) -> dict[str, list[str]]:
    """The Stripe requests each page made (the sandbox logs one line per request)."""
    made: dict[str, list[str]] = {}
    for page in PAGES:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="devtools.stripe_sandbox.client"):
            response = client.get(page)
        assert response.status_code in (200, 409), page  # 409: cancel when nothing to cancel
        made[page] = [r.getMessage() for r in caplog.records if "Stripe sandbox: " in r.message]
    return made


def test_no_page_asks_stripe_while_subscribed(shopper, caplog):
    _subscribe(shopper, CARD_OK)

    assert _stripe_calls(shopper, caplog) == {page: [] for page in PAGES}


def test_no_page_asks_stripe_while_a_renewal_is_overdue(shopper, customer, caplog):
    _subscribe(shopper, CARD_RENEWAL_FAILS)
    sub = Subscription.objects.get(customer__subscriber=customer).stripe_data
    period_end = invoices.items_period(store.get(sub["id"], "subscription"))[1]
    collection.clock_advance(period_end - store.now())
    collection.clock_advance(2 * 3600)  # past the renewal's finalization and attempt
    _deliver(shopper)
    assert Subscription.objects.get(id=sub["id"]).stripe_data["status"] == "past_due"

    assert _stripe_calls(shopper, caplog) == {page: [] for page in PAGES}


def test_no_page_asks_stripe_with_a_cancellation_scheduled(shopper, caplog):
    _subscribe(shopper, CARD_OK)
    shopper.post("/billing/cancel/")
    _deliver(shopper)

    assert _stripe_calls(shopper, caplog) == {page: [] for page in PAGES}
