"""What a user may buy: only what raises their plan.

One rule for the pricing page and for the checkout and switch views, so that what the page
offers and what the server accepts cannot drift apart:

- Starter is free: it is never sold.
- A purchase must rank above both the user's current plan (which may come from a staff
  override) and everything they already own (a live subscription, an unrefunded one-off).
- A subscriber buys a higher monthly plan by switching their subscription, never with a
  second one; a higher one-off ends the subscription at the end of its paid period.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from accounts.models import User
from billing.models import OneOffPurchase
from billing.plans import PLAN_INFO, Interval, Plan, highest_plan, plan_rank, price_plan
from billing.stripe_api import live_subscription
from billing.stripe_layout import subscription_period


class Kind(StrEnum):
    CHECKOUT = "checkout"  # a new Stripe Checkout Session
    SWITCH = "switch"  # the user's subscription moves to the plan's monthly price


@dataclass(frozen=True)
class Offer:
    plan: Plan
    interval: Interval
    kind: Kind
    # A one-off bought while subscribed: the subscription stops renewing at this moment
    # (the end of its paid period) once the one-off is paid.
    ends_subscription_at: datetime | None = None


class NotAnUpgrade(Exception):
    """The purchase would not raise the user's plan; the message says why, for the user."""


@dataclass(frozen=True)
class Holdings:
    """What the user already has, which a purchase must beat."""

    plan: Plan  # the stored plan (subscription, one-off or staff override)
    subscription: dict[str, Any] | None
    subscription_plan: Plan | None
    oneoff_plan: Plan | None

    @property
    def floor(self) -> Plan:
        owned = [p for p in (self.plan, self.subscription_plan, self.oneoff_plan) if p]
        return highest_plan(owned)


def subscription_plan(subscription: dict[str, Any]) -> Plan | None:
    """The highest plan a subscription's items sell, or None if they sell none we know."""
    plans = []
    for item in (subscription.get("items") or {}).get("data") or []:
        price = item.get("price") or {}
        sold = price_plan(price_id=price.get("id", ""), lookup_key=price.get("lookup_key"))
        if sold:
            plans.append(sold[0])
    return highest_plan(plans) if plans else None


def holdings_of(user: User) -> Holdings:
    subscription = live_subscription(user)
    oneoffs = OneOffPurchase.objects.filter(user=user, refunded_at__isnull=True)
    # A purchase disputed away (open or lost) is not something the user owns any more.
    oneoff_plans = [purchase.plan for purchase in oneoffs if purchase.counts]
    return Holdings(
        plan=Plan(user.plan),
        subscription=subscription,
        subscription_plan=subscription_plan(subscription) if subscription else None,
        oneoff_plan=highest_plan(oneoff_plans) if oneoff_plans else None,
    )


def offer_check(*, user: User, plan: str, interval: str, holdings: Holdings | None = None) -> Offer:
    """The offer that sells `plan` (`interval`) to `user`, or NotAnUpgrade."""
    if not PLAN_INFO[plan].sold:
        raise NotAnUpgrade(f"{Plan(plan).label} is our free plan: there is nothing to buy.")
    held = holdings or holdings_of(user)
    if plan_rank(plan) <= plan_rank(held.floor):
        have = held.floor.label
        if plan == held.floor:
            raise NotAnUpgrade(f"You already have {have}: buying it again would change nothing.")
        raise NotAnUpgrade(
            f"You already have {have}, which includes everything in {Plan(plan).label}. "
            "Only a higher plan can be bought."
        )
    if held.subscription is None:
        return Offer(Plan(plan), Interval(interval), Kind.CHECKOUT)
    if interval == Interval.MONTHLY:
        return Offer(Plan(plan), Interval(interval), Kind.SWITCH)
    end = subscription_period(held.subscription)[1]
    ends_at = datetime.fromtimestamp(int(end), tz=UTC) if end else None
    return Offer(Plan(plan), Interval(interval), Kind.CHECKOUT, ends_subscription_at=ends_at)


def offers_for(user: User) -> dict[tuple[str, str], Offer]:
    """Every offer open to `user`, by (plan, interval): what the pricing page shows."""
    held = holdings_of(user)
    offers: dict[tuple[str, str], Offer] = {}
    for plan in Plan:
        for interval in Interval:
            try:
                offers[(plan, interval)] = offer_check(
                    user=user, plan=plan, interval=interval, holdings=held
                )
            except NotAnUpgrade:
                continue
    return offers
