"""Annual prices through the app's own pages and webhooks, with the sandbox as Stripe:
the pricing page's monthly, yearly and once side by side, buying a year, monthly to annual as an
upgrade charged now, and annual to monthly at the end of the paid year."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from io import StringIO

import pytest
import stripe
from django.core.management import call_command

from billing.stripe_api import live_subscription
from devtools.stripe_sandbox import store
from devtools.stripe_sandbox.delivery import deliver_pending
from tests.sandbox_app import app_transport

CARD_OK = "4242 4242 4242 4242"


@pytest.fixture(autouse=True)
def catalog(db):
    call_command("stripe_catalog", stdout=StringIO())


def _path(url: str) -> str:
    return url.removeprefix("http://testserver")


def _deliver(client) -> None:
    assert deliver_pending(transport=app_transport(client)).failed == 0


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html))


def _long(ts: int) -> str:
    moment = datetime.fromtimestamp(ts, tz=UTC)
    return f"{moment.day} {moment:%B %Y}"


def _buy(client, plan: str, interval: str) -> None:
    checkout = client.post("/billing/checkout/", {"plan": plan, "interval": interval})
    paid = client.post(_path(checkout["Location"]), {"card_number": CARD_OK})
    _deliver(client)
    client.get(_path(paid["Location"]))


def _item(customer) -> dict:
    return live_subscription(customer)["items"]["data"][0]


def test_the_pricing_page_shows_yearly_prices_and_the_saving_without_javascript(client):
    # Monthly, yearly and once on one page (no toggle), from the catalogue's Prices.
    page = _text(client.get("/pricing/").content.decode())

    assert "£49.00 per month" in page
    assert "£490.00 per year" in page
    assert "Save £98.00 a year" in page  # 12 × £49.00 − £490.00
    assert "Save £198.00 a year" in page  # LaunchPack: 12 × £99.00 − £990.00
    assert "£1,470.00 once" in page
    assert "£2,970.00 once" in page  # thirty months


def test_buying_a_year_shows_the_yearly_renewal(client, customer):
    client.force_login(customer)

    _buy(client, "flowkit", "annual")
    customer.refresh_from_db()
    item = _item(customer)
    billing = _text(client.get("/billing/").content.decode())
    dashboard = _text(client.get("/").content.decode())

    assert customer.plan == "flowkit"
    assert item["price"]["recurring"]["interval"] == "year"
    assert item["current_period_end"] == store.month_add(item["current_period_start"], "year")
    renews = f"Renews on {_long(item['current_period_end'])}: next payment £490.00/year"
    assert renews in billing
    assert renews in dashboard
    assert "FlowKit yearly" in billing


def test_monthly_to_annual_is_an_upgrade_charged_now(client, customer):
    client.force_login(customer)
    _buy(client, "flowkit", "monthly")
    pricing = client.get("/pricing/").content.decode()

    redirect = client.post("/billing/checkout/", {"plan": "flowkit", "interval": "annual"})
    page = client.get(redirect["Location"]).content.decode()
    amount = int(re.search(r'data-amount-due="(\d+)"', page).group(1))
    token = re.search(r'name="quote" value="([^"]+)"', page).group(1)
    done = client.post(
        "/billing/switch/", {"plan": "flowkit", "interval": "annual", "quote": token}
    )
    _deliver(client)
    sub = stripe.Subscription.retrieve(live_subscription(customer)["id"], expand=["latest_invoice"])

    assert "Switch to FlowKit yearly" in pricing
    assert redirect["Location"] == "/billing/switch/?plan=flowkit&interval=annual"
    # Bought a moment ago: almost the whole month is credited against the year.
    assert 49000 - 4900 <= amount < 49000
    assert done["Location"] == "/"
    assert sub["items"].data[0].price.lookup_key == "flowkit_annual"
    assert sub.latest_invoice.amount_paid == amount
    assert sub.billing_cycle_anchor == sub["items"].data[0].current_period_start


def test_annual_to_monthly_waits_for_the_end_of_the_paid_year(client, customer):
    client.force_login(customer)
    _buy(client, "flowkit", "annual")
    year_end = _item(customer)["current_period_end"]
    refused = client.post("/billing/checkout/", {"plan": "launchpack", "interval": "monthly"})
    billing = client.get("/billing/").content.decode()

    confirm = client.get("/billing/downgrade/?plan=flowkit")
    client.post("/billing/downgrade/", {"plan": "flowkit", "interval": "monthly"})
    _deliver(client)
    planned = _text(client.get("/billing/").content.decode())
    call_command("stripe_sandbox", "advance", "--days", "366", stdout=StringIO())
    _deliver(client)
    customer.refresh_from_db()
    item = _item(customer)

    assert refused.status_code == 409
    assert "Move to FlowKit monthly at the period end" in _text(billing)
    assert confirm.status_code == 200
    assert f"Changes to FlowKit monthly on {_long(year_end)}, then £49.00 a month" in planned
    assert item["price"]["lookup_key"] == "flowkit_monthly"
    assert item["current_period_start"] == year_end
    assert customer.plan == "flowkit"


def test_a_oneoff_bought_beside_a_planned_change_ends_the_subscription(client, customer):
    # A schedule manages a subscription with a planned change, and Stripe refuses
    # cancel_at_period_end on it: the one-off must still stop the subscription billing.
    client.force_login(customer)
    _buy(client, "flowkit", "annual")
    sub_id = live_subscription(customer)["id"]
    client.post("/billing/downgrade/", {"plan": "flowkit", "interval": "monthly"})
    _deliver(client)

    _buy(client, "launchpack", "oneoff")
    ending = stripe.Subscription.retrieve(sub_id)
    call_command("stripe_sandbox", "advance", "--days", "400", stdout=StringIO())
    _deliver(client)
    customer.refresh_from_db()
    invoices = stripe.Invoice.list(subscription=sub_id).data

    assert ending.cancel_at_period_end is True
    assert ending.schedule is None
    assert stripe.Subscription.retrieve(sub_id).status == "canceled"
    assert [i.amount_paid for i in invoices if i.amount_paid] == [49000]
    assert customer.plan == "launchpack"
