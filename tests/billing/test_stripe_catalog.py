from __future__ import annotations

from io import StringIO

import pytest
import stripe
from django.core.management import call_command

from billing.plans import price_plan
from billing.stripe_api import api_kwargs
from tests.billing import stripe_fakes as sf

pytestmark = pytest.mark.django_db


def _lookup_keys() -> set[str]:
    prices = stripe.Price.list(active=True, limit=100, **api_kwargs()).auto_paging_iter()
    return {p["lookup_key"] for p in prices}


def test_the_catalog_sells_flowkit_and_launchpack_but_not_free_starter(fake_stripe):
    out = StringIO()

    call_command("stripe_catalog", stdout=out)

    assert _lookup_keys() == {
        "flowkit_monthly",
        "flowkit_annual",
        "flowkit_oneoff",
        "launchpack_monthly",
        "launchpack_annual",
        "launchpack_oneoff",
    }
    assert "6 prices synced: 6 created, 0 differ." in out.getvalue()
    call_command("stripe_catalog", stdout=out)  # safe twice
    assert len(_lookup_keys()) == 6


def test_the_annual_price_bills_yearly_at_ten_months(fake_stripe):
    call_command("stripe_catalog", stdout=StringIO())

    found = stripe.Price.list(lookup_keys=["flowkit_annual"], **api_kwargs()).data
    out = StringIO()
    call_command("stripe_catalog", "--check", stdout=out)

    assert [(p["unit_amount"], p["recurring"]["interval"]) for p in found] == [(49000, "year")]
    assert "0 differ" in out.getvalue()


def test_paying_once_costs_thirty_months_well_above_a_year(fake_stripe):
    call_command("stripe_catalog", stdout=StringIO())

    keys = ["flowkit_annual", "flowkit_oneoff", "launchpack_annual", "launchpack_oneoff"]
    found = stripe.Price.list(lookup_keys=keys, **api_kwargs()).data
    amounts = {p["lookup_key"]: p["unit_amount"] for p in found}

    # A year is ten months; "yours for good" is thirty, so the two never read alike.
    assert amounts == {
        "flowkit_annual": 49000,
        "flowkit_oneoff": 147000,
        "launchpack_annual": 99000,
        "launchpack_oneoff": 297000,
    }


def test_a_configured_annual_price_id_maps_to_the_plan(fake_stripe, settings):
    prod = sf.product(metadata={"plan": "flowkit"})
    configured = sf.price(prod=prod, lookup_key=None, amount=45000)
    settings.STRIPE_PRICE_IDS = {("flowkit", "annual"): configured["id"]}

    assert price_plan(price_id=configured["id"], lookup_key=None) == ("flowkit", "annual")


def test_existing_starter_prices_still_map_to_starter(fake_stripe, settings):
    prod = sf.product(metadata={"plan": "starter"})
    by_key = sf.price(prod=prod, lookup_key="starter_monthly", amount=1900)
    configured = sf.price(prod=prod, lookup_key=None, amount=1900)
    settings.STRIPE_PRICE_IDS = {("starter", "monthly"): configured["id"]}

    assert price_plan(price_id=by_key["id"], lookup_key="starter_monthly") == (
        "starter",
        "monthly",
    )
    assert price_plan(price_id=configured["id"], lookup_key=None) == ("starter", "monthly")
