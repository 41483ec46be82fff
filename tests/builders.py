"""Builders of test subscriptions: one way to say "a customer subscribed to FlowKit
monthly, on a trial, set to cancel", shared by the whole suite.

`subscription(...)` builds the Stripe JSON only (no database, no fake Stripe: the table
tests of the pure rules use it); the `subscribe` fixture (tests/conftest.py) stores what
it builds in the fake Stripe and delivers its `customer.subscription.created`, as Stripe
would.
"""

from __future__ import annotations

from typing import Any

from tests.billing import stripe_fakes as sf

DAY = 86400


def plan_price(plan: str = "flowkit", interval: str = "monthly", **values: Any) -> dict[str, Any]:
    """A Stripe Price selling `plan` at `interval` by its lookup key (as `stripe_catalog`
    makes them): recurring monthly or yearly, or one-time for a one-off."""
    recurring = interval != "oneoff"
    return sf.price(
        prod=sf.product(),
        lookup_key=values.pop("lookup_key", f"{plan}_{interval}"),
        recurring=recurring,
        interval="year" if interval == "annual" else "month",
        **values,
    )


def subscription(
    *,
    plan: str = "flowkit",
    interval: str = "monthly",
    price: dict[str, Any] | None = None,
    customer: dict[str, Any] | None = None,
    status: str | None = None,
    trial_days: int = 0,
    cancel_at_period_end: bool = False,
    period_start: int = sf.NOW,
    card: str | None = None,
    **values: Any,
) -> dict[str, Any]:
    """A Stripe subscription's JSON: `customer` (a Stripe customer; a new one when None)
    subscribed to `price` (by default a new Price of `plan` at `interval`).

    `trial_days`: on a free trial from `period_start` for that many days (status
    "trialing" unless `status` says otherwise). `card`: the sandbox's record of the card
    its payments use (a test card number). `values`: any other key of Stripe's JSON
    (`id`, `metadata`, `cancel_at`, `schedule`...), set as given.
    """
    if status is None:
        status = "trialing" if trial_days else "active"
    sub = sf.subscription(
        cus=customer or sf.customer(),
        prc=price or plan_price(plan, interval),
        status=status,
        period_start=period_start,
        id=values.pop("id", None),
        metadata=values.pop("metadata", None),
    )
    if trial_days:
        sub.update(trial_start=period_start, trial_end=period_start + trial_days * DAY)
    sub["cancel_at_period_end"] = cancel_at_period_end
    if card:
        sub["_card"] = card  # the sandbox's record of the subscription's card
    sub.update(values)
    return sub
