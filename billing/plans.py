"""Plans and the feature matrix, as data.

Adding a plan or a feature is a one-line change here; nothing else in the code base
names a plan in an `if`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import models


class Plan(models.TextChoices):
    # Declaration order is tier order: a later plan includes everything before it.
    STARTER = "starter", "Starter"
    FLOWKIT = "flowkit", "FlowKit"
    LAUNCHPACK = "launchpack", "LaunchPack"


class Interval(models.TextChoices):
    MONTHLY = "monthly", "Monthly"
    ONEOFF = "oneoff", "One-off"
    ANNUAL = "annual", "Annual"


# TextChoices' `.values` builds a new list on every read; reconcile_plans asks once per
# subscription item.
_PLAN_VALUES = frozenset(Plan.values)
_INTERVAL_VALUES = frozenset(Interval.values)

# The intervals a subscription bills at, and Stripe's `recurring.interval` for each.
RECURRING: dict[str, str] = {Interval.MONTHLY: "month", Interval.ANNUAL: "year"}
# A year costs ten months: two months free against paying monthly.
ANNUAL_MONTHS = 10
# Paying once keeps the plan for good, so it costs well above a year (30 months): priced
# at a year or less, nobody who compares the two would ever subscribe yearly.
ONEOFF_MONTHS = 30


@dataclass(frozen=True)
class PlanInfo:
    plan: Plan
    description: str
    # What `stripe_catalog` creates, in the currency's minor unit (pence). Customers see
    # the amounts read back from Stripe, so a price changed in the dashboard shows on
    # the pricing page after a sync. None: the plan is free and not sold.
    monthly_amount: int | None

    @property
    def sold(self) -> bool:
        return self.monthly_amount is not None

    @property
    def annual_amount(self) -> int | None:
        return self.monthly_amount * ANNUAL_MONTHS if self.monthly_amount is not None else None

    @property
    def oneoff_amount(self) -> int | None:
        return self.monthly_amount * ONEOFF_MONTHS if self.monthly_amount is not None else None

    def amount(self, interval: str) -> int | None:
        """What `stripe_catalog` creates for `interval`, in minor units."""
        return {
            Interval.MONTHLY: self.monthly_amount,
            Interval.ANNUAL: self.annual_amount,
            Interval.ONEOFF: self.oneoff_amount,
        }[Interval(interval)]


PLAN_INFO: dict[str, PlanInfo] = {
    # Every account starts on Starter for free. Prices that sell it (STRIPE_PRICE_STARTER_*,
    # starter_*) may still exist in a Stripe account and keep mapping to it (price_plan).
    Plan.STARTER: PlanInfo(Plan.STARTER, "Online booking with calendar sync and your brand.", None),
    # £49.00 a month, £490.00 a year, £1,470.00 once.
    Plan.FLOWKIT: PlanInfo(
        Plan.FLOWKIT, "Everything in Starter, plus SMS reminders and client import.", 4900
    ),
    # £99.00 a month, £990.00 a year, £2,970.00 once.
    Plan.LAUNCHPACK: PlanInfo(
        Plan.LAUNCHPACK, "Everything in FlowKit, plus the AI concierge.", 9900
    ),
}

# feature -> the lowest plan that has it
FEATURES: dict[str, Plan] = {
    "calendar_sync": Plan.STARTER,
    "brand_kit": Plan.STARTER,
    "sms_reminders": Plan.FLOWKIT,
    "client_import": Plan.FLOWKIT,
    "ai_concierge": Plan.LAUNCHPACK,
}

FEATURE_LABELS: dict[str, str] = {
    "calendar_sync": "Calendar sync",
    "brand_kit": "Brand kit",
    "sms_reminders": "SMS reminders",
    "client_import": "Client import",
    "ai_concierge": "AI concierge",
}

_RANK: dict[str, int] = {plan.value: rank for rank, plan in enumerate(Plan)}


def plan_rank(plan: str) -> int:
    """Position of `plan` in the tier order (starter is 0)."""
    return _RANK[plan]


def plan_includes(plan: str, required: str) -> bool:
    """Whether `plan` is at or above `required`."""
    return _RANK[plan] >= _RANK[required]


def highest_plan(plans: Iterable[str]) -> Plan:
    """The highest of `plans`, or starter when there are none."""
    return Plan(max(plans, key=_RANK.__getitem__, default=Plan.STARTER))


def plan_allows(plan: str, feature: str) -> bool:
    """Whether `plan` has `feature`. Raises KeyError for an unknown feature."""
    return plan_includes(plan, FEATURES[feature])


def recurring_interval(price: dict[str, Any] | None) -> Interval | None:
    """The interval a Stripe Price (or its `recurring`) bills at: monthly, annual, or None
    for a one-time price or one we do not sell (every three months, say)."""
    recurring = (price or {}).get("recurring") or {}
    if int(recurring.get("interval_count") or 1) != 1:
        return None
    by_stripe = {stripe: Interval(ours) for ours, stripe in RECURRING.items()}
    return by_stripe.get(recurring.get("interval") or "")


def lookup_key(plan: str, interval: str) -> str:
    """The Stripe Price lookup_key of a plan's price, e.g. `flowkit_monthly`."""
    return f"{plan}_{interval}"


def price_plan(*, price_id: str, lookup_key: str | None) -> tuple[Plan, Interval] | None:
    """Which plan and interval a Stripe Price sells, or None when it sells no plan.

    A Price id configured through STRIPE_PRICE_<PLAN>_<INTERVAL> wins over its lookup_key.
    """
    for (plan, interval), configured_id in settings.STRIPE_PRICE_IDS.items():
        if configured_id == price_id:
            return Plan(plan), Interval(interval)
    plan, _, interval = (lookup_key or "").rpartition("_")
    if plan in _PLAN_VALUES and interval in _INTERVAL_VALUES:
        return Plan(plan), Interval(interval)
    return None
