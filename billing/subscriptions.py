"""Reading a subscription's Stripe JSON (dj-stripe's `stripe_data`): its statuses and
what it sells.

Every set of subscription statuses billing decides by is here, and nowhere else; so is
the reading of which plan a subscription's items sell. Pure: reads no database, calls
no Stripe, and imports nothing from billing but the plan catalogue (billing/plans.py),
so that every rule, message and view can import it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from billing.plans import Interval, Plan, plan_rank, price_plan

# The subscription statuses that grant the plan at once (billing/entitlements.py).
LIVE_STATUSES = frozenset({"active", "trialing"})
# Statuses in which Stripe is still collecting a renewal (retrying, or waiting for the
# customer): the plan is kept within the grace (billing/dunning.py). `unpaid` and
# `canceled` are Stripe giving up.
DUNNING_STATUSES = frozenset({"past_due"})
# Every status in which a subscription may still hold its plan, and still bills: the one
# a customer switches or cancels, never a second one beside it. Also those Stripe will
# invoice again (past_due: the next renewal; the overdue invoice itself is owed now).
PLAN_STATUSES = LIVE_STATUSES | DUNNING_STATUSES
# Statuses of a subscription that still bills in the customer's eyes: a failed payment
# can still be fixed (billing/notices.py).
STILL_BILLING_STATUSES = PLAN_STATUSES | {"unpaid", "incomplete"}
# Statuses of a subscription that is over at Stripe: nothing left to cancel, and a
# payment for it buys nothing.
ENDED_STATUSES = frozenset({"canceled", "incomplete_expired"})


class Sold(NamedTuple):
    """What a subscription sells: a plan, at an interval, through one of its items."""

    plan: Plan
    interval: Interval
    item: dict[str, Any]


def items_sold(sub: dict[str, Any]) -> tuple[list[Sold], list[str]]:
    """What each of the subscription's items sells, and the prices that sell no plan
    (an add-on, a tax line, a price from before our catalogue)."""
    sold: list[Sold] = []
    unknown: list[str] = []
    for item in (sub.get("items") or {}).get("data") or []:
        price = item.get("price") or {}
        if isinstance(price, str):
            price = {"id": price}
        found = price_plan(price_id=price.get("id", ""), lookup_key=price.get("lookup_key"))
        if found is None:
            unknown.append(price.get("id", "?"))
        else:
            sold.append(Sold(found[0], found[1], item))
    return sold, unknown


def subscription_sells(sub: dict[str, Any]) -> Sold | None:
    """The highest plan a subscription (its Stripe JSON) sells among all its items, with
    the interval and the item selling it; None when no item sells a plan we know.

    Whatever its status: whether the plan counts is `plan_decide`'s business
    (billing/entitlements.py). Every item is read, never only the first: Stripe keeps
    items in the order they were added, so an add-on or a tax item may come before the
    plan.
    """
    sold, _unknown = items_sold(sub)
    # Ties (two items on one plan) go to the first.
    return max(sold, key=lambda s: plan_rank(s.plan)) if sold else None
