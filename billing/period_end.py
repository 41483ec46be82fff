"""Changes that take effect at the end of the paid period: a downgrade to a lower paid
plan, annual to monthly (billing.offers.change_timing is the rule of which changes wait),
and cancellation (with resume until then).

A downgrade is done as Stripe recommends: a Subscription Schedule made from the
subscription, whose phases are the current price until `current_period_end`, then the
lower price. The customer keeps what they paid for; the renewal bills the lower price and
the plan follows the synced subscription (`customer.subscription.updated`). Cancelling a
pending downgrade releases the schedule. Stripe refuses `cancel_at_period_end` on a
subscription a schedule manages, so a cancellation releases the schedule first.

Each workflow writes Stripe first, then syncs what Stripe answered into dj-stripe's rows
at once, so the page the customer lands on already says what will happen; the webhooks
that follow sync the same objects again (safe to run twice).
"""

from __future__ import annotations

import logging
from typing import Any

import stripe
from django.db import transaction
from djstripe.models import Subscription, SubscriptionSchedule
from djstripe.settings import djstripe_settings

from accounts.models import User
from billing.offers import Timing, change_timing
from billing.outlook import Outlook
from billing.plans import RECURRING, Interval, Plan
from billing.stripe_api import api_kwargs, price_find
from billing.subscriptions import LIVE_STATUSES

logger = logging.getLogger(__name__)


class ChangeRefused(Exception):
    """The change makes no sense for this subscription now (answered 409/400)."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def downgrade_choices(outlook: Outlook | None) -> list[tuple[Plan, str]]:
    """The (plan, interval) prices the subscription could move to at the period end now:
    lower paid plans at its own interval, and its plan monthly when it pays yearly."""
    if outlook is None or outlook.plan is None or outlook.kind != "renews":
        return []
    if outlook.status not in LIVE_STATUSES:
        return []
    current = outlook.interval or Interval.MONTHLY
    return [
        (plan, interval)
        for plan in Plan
        for interval in RECURRING
        if plan != Plan.STARTER
        and (interval == current or plan == outlook.plan)
        and change_timing(plan=outlook.plan, interval=current, to_plan=plan, to_interval=interval)
        == Timing.PERIOD_END
    ]


def downgrade_check(
    *, outlook: Outlook, plan: str, interval: str = Interval.MONTHLY
) -> tuple[Plan, Interval]:
    """The price (a lower paid plan, or monthly instead of yearly) the subscription may
    move to at the period end, or refused."""
    if plan not in Plan.values or interval not in RECURRING:
        raise ChangeRefused("Choose one of our plans.", status=400)
    target = Plan(plan)
    if target == Plan.STARTER:
        raise ChangeRefused(
            "Starter is our free plan: to move to it, cancel at the end of the period."
        )
    current = outlook.interval or Interval.MONTHLY
    timing = (
        change_timing(plan=outlook.plan, interval=current, to_plan=target, to_interval=interval)
        if outlook.plan
        else None
    )
    if timing != Timing.PERIOD_END:
        raise ChangeRefused(
            f"{target.label} is not lower than your plan: see the pricing page to upgrade."
        )
    if outlook.kind == "cancels":
        raise ChangeRefused("Your subscription is set to end at the period end: resume it first.")
    if outlook.kind == "changes":
        raise ChangeRefused(
            f"A change to {outlook.next_plan_label} is already planned: cancel it first."
        )
    if outlook.status not in LIVE_STATUSES:
        raise ChangeRefused("Your subscription cannot be changed until its payment is settled.")
    return target, Interval(interval)


def downgrade_schedule(
    *, user: User, outlook: Outlook, plan: str, interval: str = Interval.MONTHLY
) -> stripe.SubscriptionSchedule:
    """Move `user`'s subscription to `plan` (lower, or the same plan monthly instead of
    yearly) at the end of the current period."""
    target, interval = downgrade_check(outlook=outlook, plan=plan, interval=interval)
    price = price_find(target, interval)
    if outlook.schedule_id:
        # A schedule with nothing planned (say, an earlier attempt that failed halfway):
        # Stripe allows one per subscription, so it is the one to plan with.
        schedule = stripe.SubscriptionSchedule.retrieve(outlook.schedule_id, **api_kwargs())
    else:
        schedule = stripe.SubscriptionSchedule.create(
            from_subscription=outlook.subscription_id, **api_kwargs()
        )
    current = schedule["phases"][0]
    schedule = stripe.SubscriptionSchedule.modify(
        schedule["id"],
        end_behavior="release",
        proration_behavior="none",
        phases=[
            {
                "items": [
                    {"price": _id(item["price"]), "quantity": item.get("quantity") or 1}
                    for item in current["items"]
                ],
                "start_date": current["start_date"],
                "end_date": current["end_date"],
            },
            {
                "items": [{"price": price.id, "quantity": 1}],
                "duration": {"interval": RECURRING[interval], "interval_count": 1},
                "proration_behavior": "none",
            },
        ],
        **api_kwargs(),
    )
    logger.info(
        "User %s: %s -> %s %s at the period end (schedule %s)",
        user.pk,
        outlook.plan,
        target,
        interval,
        schedule["id"],
    )
    _sync(outlook.subscription_id, schedule)
    return schedule


def downgrade_cancel(*, user: User, outlook: Outlook) -> None:
    """Drop the planned downgrade: the schedule is released, the plan renews as it is."""
    if outlook.kind != "changes" or not outlook.schedule_id:
        raise ChangeRefused("There is no planned change to cancel.")
    schedule = stripe.SubscriptionSchedule.release(outlook.schedule_id, **api_kwargs())
    logger.info("User %s: planned change released (schedule %s)", user.pk, schedule["id"])
    _sync(outlook.subscription_id, schedule)


def cancellation_set(*, user: User, outlook: Outlook, cancel: bool) -> None:
    """Cancel `user`'s subscription at the end of the period (`cancel`), or resume it."""
    if cancel and outlook.kind == "cancels":
        raise ChangeRefused("Your subscription is already set to end at the period end.")
    if not cancel and outlook.kind != "cancels":
        raise ChangeRefused("Your subscription is not set to end: there is nothing to resume.")
    if cancel and outlook.schedule_id:
        # Stripe refuses cancel_at_period_end while a schedule manages the subscription.
        schedule = stripe.SubscriptionSchedule.release(outlook.schedule_id, **api_kwargs())
        _sync(outlook.subscription_id, schedule)
    updated = stripe.Subscription.modify(
        outlook.subscription_id, cancel_at_period_end=cancel, **api_kwargs()
    )
    logger.info("User %s: cancel_at_period_end=%s on %s", user.pk, cancel, updated["id"])
    with transaction.atomic():
        Subscription.sync_from_stripe_data(updated, api_key=djstripe_settings.STRIPE_SECRET_KEY)


def _sync(subscription_id: str, schedule: Any) -> None:
    subscription = stripe.Subscription.retrieve(subscription_id, **api_kwargs())
    with transaction.atomic():
        Subscription.sync_from_stripe_data(
            subscription, api_key=djstripe_settings.STRIPE_SECRET_KEY
        )
        SubscriptionSchedule.sync_from_stripe_data(
            schedule, api_key=djstripe_settings.STRIPE_SECRET_KEY
        )


def _id(value: Any) -> str:
    return value if isinstance(value, str) else value["id"]
