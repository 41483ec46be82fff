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
        "flowkit_oneoff",
        "launchpack_monthly",
        "launchpack_oneoff",
    }
    assert "4 prices synced: 4 created, 0 differ." in out.getvalue()
    call_command("stripe_catalog", stdout=out)  # safe twice
    assert len(_lookup_keys()) == 4


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
