"""Which plan a subscription sells: every item read, the highest plan wins, whatever the
order Stripe lists the items in (billing.subscriptions.subscription_sells). Pure: no
database (no django_db mark)."""

from __future__ import annotations

import copy

import pytest

from billing.outlook import subscription_outlook
from billing.plans import Interval, Plan
from billing.subscriptions import subscription_sells
from tests import builders
from tests.billing import stripe_fakes as sf


def _price(lookup_key: str | None, **values) -> dict:
    return sf.price(prod=sf.product(), lookup_key=lookup_key, **values)


def with_items(*prices: dict) -> dict:
    """A subscription whose items sell `prices`, in that order."""
    sub = sf.subscription(cus=sf.customer(), prc=prices[0])
    first = sub["items"]["data"][0]
    for price in prices[1:]:
        item = copy.deepcopy(first)
        item.update(id=sf.new_id("si"), price=price)
        sub["items"]["data"].append(item)
    return sub


def test_an_add_on_item_before_the_plan_does_not_hide_the_plan():
    addon = _price("sms_bundle_monthly", amount=500)
    sub = with_items(addon, _price("flowkit_monthly"))

    sold = subscription_sells(sub)

    assert (sold.plan, sold.interval) == (Plan.FLOWKIT, Interval.MONTHLY)
    assert sold.item is sub["items"]["data"][1]


def test_the_highest_plan_among_the_items_is_the_one_sold():
    sub = with_items(_price("flowkit_monthly"), _price("launchpack_annual", interval="year"))

    sold = subscription_sells(sub)

    assert (sold.plan, sold.interval) == (Plan.LAUNCHPACK, Interval.ANNUAL)
    assert sold.item["id"] == sub["items"]["data"][1]["id"]


def test_a_configured_price_id_sells_its_plan_even_as_a_bare_id(settings):
    settings.STRIPE_PRICE_IDS = {("launchpack", "monthly"): "price_legacy_lp"}
    sub = with_items(_price(None, id="price_legacy_lp"))
    sub["items"]["data"][0]["price"] = "price_legacy_lp"  # not expanded

    assert subscription_sells(sub).plan == Plan.LAUNCHPACK


def test_a_subscription_selling_no_plan_sells_none():
    assert subscription_sells(with_items(_price("sms_bundle_monthly"))) is None
    assert subscription_sells({"id": "sub_empty", "items": {"data": []}}) is None
    assert subscription_sells({"id": "sub_no_items"}) is None


def test_the_outlook_names_the_plan_and_its_interval_not_the_add_ons():
    addon = _price("sms_bundle_monthly", amount=500)
    sub = with_items(addon, _price("launchpack_annual", interval="year"))

    outlook = subscription_outlook(sub)

    assert (outlook.plan, outlook.interval) == (Plan.LAUNCHPACK, Interval.ANNUAL)


@pytest.mark.parametrize("interval", ["monthly", "annual", "oneoff"])
@pytest.mark.parametrize("plan", ["starter", "flowkit", "launchpack"])
def test_each_catalogue_price_sells_its_plan_and_interval(settings, plan, interval):
    settings.STRIPE_PRICE_IDS = {}
    sub = builders.subscription(plan=plan, interval=interval)

    assert subscription_sells(sub)[:2] == (plan, interval)


@pytest.mark.parametrize(
    "lookup_key",
    [
        pytest.param(None, id="no-lookup-key"),
        pytest.param("flowkit", id="plan-without-interval"),
        pytest.param("flowkit_weekly", id="interval-we-do-not-sell"),
        pytest.param("enterprise_monthly", id="plan-we-do-not-have"),
        pytest.param("sms_bundle_monthly", id="an-add-on"),
    ],
)
def test_a_price_outside_the_catalogue_sells_nothing(settings, lookup_key):
    settings.STRIPE_PRICE_IDS = {}
    sub = builders.subscription(price=builders.plan_price(lookup_key=lookup_key))

    assert subscription_sells(sub) is None
