"""What each plan costs: the synced Prices that sell it, for the pricing and landing pages."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from djstripe.models import Price

from billing.offers import Offer
from billing.plans import FEATURES, PLAN_INFO, Interval, Plan, lookup_key, price_plan


def price_table() -> dict[tuple[str, str], Price]:
    """The synced Prices that sell each plan, by (plan, interval), in one query."""
    keys = [lookup_key(p, i) for p in Plan.values for i in Interval.values]
    configured = list(settings.STRIPE_PRICE_IDS.values())
    table: dict[tuple[str, str], Price] = {}
    for price in Price.objects.filter(active=True, lookup_key__in=keys) | Price.objects.filter(
        id__in=configured
    ):
        sold = price_plan(price_id=price.id, lookup_key=price.lookup_key)
        if sold and (sold not in table or price.id in configured):
            table[sold] = price
    return table


def plan_rows(offers: dict[tuple[str, str], Offer] | None = None) -> list[dict[str, Any]]:
    """One row per plan, lowest first: its info, its (interval, Price or None, Offer or
    None) triples and the features it is the first plan to include. A free plan has no
    prices (Starter is not sold, even where a Stripe account still has Prices for it).
    `offers` (billing.offers.offers_for) are what a signed-in user may buy."""
    prices = price_table()
    offers = offers or {}
    return [
        {
            "info": info,
            "prices": [
                (i.value, prices.get((plan, i)), offers.get((plan, i.value)))
                for i in Interval
                if info.sold
            ],
            "features": [f for f, lowest in FEATURES.items() if lowest == plan],
        }
        for plan, info in PLAN_INFO.items()
    ]
