"""What each plan costs: the synced Prices that sell it, for the pricing and landing pages."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest
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


def pricing_interval(request: HttpRequest | None) -> Interval:
    """The recurring interval the pricing page shows: `?interval=annual`, else monthly."""
    asked = request.GET.get("interval", "") if request is not None else ""
    return Interval.ANNUAL if asked == Interval.ANNUAL else Interval.MONTHLY


def annual_saving(prices: dict[tuple[str, str], Price], plan: str) -> int | None:
    """What a year at the annual price saves against twelve monthly payments, in minor
    units (FlowKit: 12 × £49.00 − £490.00 = £98.00), from the synced Prices; None when
    either is missing, in another currency, or the year saves nothing."""
    monthly, annual = prices.get((plan, Interval.MONTHLY)), prices.get((plan, Interval.ANNUAL))
    if monthly is None or annual is None or monthly.currency != annual.currency:
        return None
    if monthly.unit_amount is None or annual.unit_amount is None:
        return None
    saving = 12 * monthly.unit_amount - annual.unit_amount
    return saving if saving > 0 else None


def plan_rows(
    offers: dict[tuple[str, str], Offer] | None = None,
    *,
    recurring: Interval = Interval.MONTHLY,
) -> list[dict[str, Any]]:
    """One row per plan, lowest first: its info, its (interval, Price or None, Offer or
    None) triples (the `recurring` interval, monthly or annual, then one-off), what a
    year saves against twelve months, and the features it is the first plan to include.
    A free plan has no prices (Starter is not sold, even where a Stripe account still has
    Prices for it). `offers` (billing.offers.offers_for) are what a signed-in user may
    buy."""
    prices = price_table()
    offers = offers or {}
    return [
        {
            "info": info,
            "prices": [
                (i.value, prices.get((plan, i)), offers.get((plan, i.value)))
                for i in (recurring, Interval.ONEOFF)
                if info.sold
            ],
            "annual_saving": annual_saving(prices, plan) if info.sold else None,
            "features": [f for f, lowest in FEATURES.items() if lowest == plan],
        }
        for plan, info in PLAN_INFO.items()
    ]
