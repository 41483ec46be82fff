"""What a user may buy: only what raises their plan.

One rule for the pricing page and for the checkout and switch views, so that what the page
offers and what the server accepts cannot drift apart:

- Starter is free: it is never sold.
- A purchase must rank above both the user's current plan (which may come from a staff
  override) and everything they already own (a live subscription, an unrefunded one-off).
- A subscriber buys a higher monthly plan by switching their subscription, never with a
  second one; a higher one-off ends the subscription at the end of its paid period.
- Between recurring prices (`change_timing`, also the rule of billing/period_end.py): a
  higher plan, or monthly to annual on the same plan, is an upgrade charged now; annual to
  monthly, or a lower plan, waits for the end of the period already paid for.
- A customer's first subscription starts with BILLING_TRIAL_DAYS free days, once ever
  (`trial_days`).
- Whatever is not for sale says why in the customer's words (`choices_for`,
  `refusal_reason`): never "included" for something the customer does not hold.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.urls import reverse
from djstripe.models import Subscription

from accounts.models import User
from billing.dunning import dunning_for
from billing.models import CheckoutOpened, OneOffPurchase, PlanOverride
from billing.money import money
from billing.plans import (
    PLAN_INFO,
    RECURRING,
    Interval,
    Plan,
    highest_plan,
    plan_rank,
    recurring_interval,
)
from billing.stripe_api import live_subscription
from billing.stripe_layout import subscription_period
from billing.subscriptions import DUNNING_STATUSES, subscription_sells


class Kind(StrEnum):
    CHECKOUT = "checkout"  # a new Stripe Checkout Session
    SWITCH = "switch"  # the user's subscription moves to the plan's price now (an upgrade)


class Timing(StrEnum):
    NOW = "now"  # an upgrade: charged now, prorated (billing/checkout.py)
    PERIOD_END = "period_end"  # at the end of the paid period (billing/period_end.py)


@dataclass(frozen=True)
class Offer:
    plan: Plan
    interval: Interval
    kind: Kind
    # A one-off bought while subscribed: the subscription stops renewing at this moment
    # (the end of its paid period) once the one-off is paid.
    ends_subscription_at: datetime | None = None
    # Bought during a staff comp that ends then (for good: never None here, a comp for
    # good refuses what it covers): what the customer has free until that date.
    comp_plan: Plan | None = None
    comp_until: datetime | None = None


class NotAnUpgrade(Exception):
    """The purchase would not raise the user's plan; the message says why, for the user."""


@dataclass(frozen=True)
class Refusal:
    """Why `plan` (`interval`) is not for sale to the user, in their words: what the
    pricing page says in place of a button."""

    plan: Plan
    interval: Interval
    reason: str
    # What the customer can do about it instead, where the app has a page for it:
    # (words on the button, the page's path).
    action: tuple[str, str] | None = None


@dataclass(frozen=True)
class Holdings:
    """What the user already has, which a purchase must beat."""

    plan: Plan  # the stored plan (subscription, one-off or staff override)
    subscription: dict[str, Any] | None
    subscription_plan: Plan | None
    oneoff_plan: Plan | None
    subscription_interval: Interval | None = None
    # A staff comp that ends (the highest, and when it ends): held now, but not a reason
    # to refuse what the customer would not hold once it ends.
    comp_plan: Plan | None = None
    comp_until: datetime | None = None
    # Comps for good: they stay.
    lasting_comp_plan: Plan | None = None
    # Checkouts paid by a bank debit still processing (plan, mode).
    processing: tuple[tuple[Plan, str, int | None, str], ...] = ()

    @property
    def floor(self) -> Plan:
        """What the customer holds and will go on holding: a comp that ends does not
        count (they may buy now what they will not have after it)."""
        stored = self.plan
        if self.comp_plan == stored and self.comp_until is not None:
            stored = highest_plan(
                p for p in (self.subscription_plan, self.oneoff_plan, self.lasting_comp_plan) if p
            )
        owned = [p for p in (stored, self.subscription_plan, self.oneoff_plan) if p]
        return highest_plan(owned)


def _subscription_holding(subscription: dict[str, Any]) -> tuple[Plan | None, Interval | None]:
    """The plan a subscription sells (billing.subscriptions.subscription_sells) and the
    interval its plan's item bills at, monthly or annual (None: none we sell)."""
    sold = subscription_sells(subscription)
    if sold is None:
        return None, None
    return sold.plan, recurring_interval(sold.item.get("price"))


def change_timing(*, plan: str, interval: str, to_plan: str, to_interval: str) -> Timing | None:
    """When a subscription on `plan` (`interval`) may move to `to_plan` (`to_interval`),
    both recurring: now (an upgrade, charged at once) or at the end of the paid period;
    None when it would change nothing.

    A higher plan is an upgrade, except from annual to monthly: a paid year is never
    cut short (Stripe would credit the unused months as balance, not money back), so
    that waits for the year's end like annual to monthly on the same plan. Monthly to
    annual on the same plan is an upgrade: the year is charged now, the unused month
    credited. A lower plan waits for the period end."""
    if (plan, interval) == (to_plan, to_interval):
        return None
    if interval == Interval.ANNUAL and to_interval == Interval.MONTHLY:
        return Timing.PERIOD_END
    if plan_rank(to_plan) > plan_rank(plan):
        return Timing.NOW
    if plan_rank(to_plan) == plan_rank(plan):
        return Timing.NOW  # monthly -> annual (annual -> monthly is handled above)
    return Timing.PERIOD_END


def trial_days(user: User) -> int:
    """The free days a Checkout subscription of `user` starts with: BILLING_TRIAL_DAYS
    for a customer's first subscription, else 0. Decided from the subscriptions dj-stripe
    has synced (every one Stripe ever made for the customer, whatever its status), so a
    customer who cancelled during or after a trial never gets a second one; a
    subscription that never started (its first payment failed: incomplete_expired) had
    no trial and does not count. A trial session the app opened that completed counts
    too, before its subscription is synced."""
    if settings.BILLING_TRIAL_DAYS <= 0:
        return 0
    if CheckoutOpened.objects.filter(
        user=user, trial_days__gt=0, status=CheckoutOpened.Status.COMPLETE
    ).exists():
        return 0
    subscriptions = Subscription.objects.filter(customer__subscriber=user).values_list(
        "stripe_data", flat=True
    )
    had = any(
        data.get("trial_start") or data.get("status") != "incomplete_expired"
        for data in subscriptions
    )
    return 0 if had else settings.BILLING_TRIAL_DAYS


def holdings_of(user: User) -> Holdings:
    subscription = live_subscription(user)
    oneoffs = OneOffPurchase.objects.filter(user=user, refunded_at__isnull=True)
    # A purchase disputed away (open or lost) is not something the user owns any more.
    oneoff_plans = [purchase.plan for purchase in oneoffs if purchase.counts]
    sub_plan, sub_interval = _subscription_holding(subscription) if subscription else (None, None)
    comps = list(PlanOverride.objects.filter(PlanOverride.active_q(), user=user))
    ending = [c for c in comps if c.expires_at is not None]
    lasting = [c.plan for c in comps if c.expires_at is None]
    comp = max(ending, key=lambda c: (plan_rank(c.plan), c.expires_at)) if ending else None
    processing = CheckoutOpened.objects.filter(
        user=user, payment=CheckoutOpened.Payment.PROCESSING
    ).values_list("plan", "mode", "amount", "currency")
    return Holdings(
        plan=Plan(user.plan),
        subscription=subscription,
        subscription_plan=sub_plan,
        oneoff_plan=highest_plan(oneoff_plans) if oneoff_plans else None,
        subscription_interval=sub_interval,
        comp_plan=Plan(comp.plan) if comp else None,
        comp_until=comp.expires_at if comp else None,
        lasting_comp_plan=highest_plan(lasting) if lasting else None,
        processing=tuple((Plan(p), m, a, c) for p, m, a, c in processing),
    )


def offer_check(*, user: User, plan: str, interval: str, holdings: Holdings | None = None) -> Offer:
    """The offer that sells `plan` (`interval`) to `user`, or NotAnUpgrade."""
    if not PLAN_INFO[plan].sold:
        raise NotAnUpgrade(f"{Plan(plan).label} is our free plan: there is nothing to buy.")
    held = holdings or holdings_of(user)
    _not_while_processing(held, Plan(plan), Interval(interval))
    if held.subscription is not None:
        _not_while_overdue(user, held)
    if _interval_upgrade(held, plan, interval):
        _not_while_trialing(held)
        return Offer(Plan(plan), Interval(interval), Kind.SWITCH)
    if plan_rank(plan) <= plan_rank(held.floor):
        have = held.floor.label
        if plan == held.floor:
            raise NotAnUpgrade(f"You already have {have}: buying it again would change nothing.")
        raise NotAnUpgrade(
            f"You already have {have}, which includes everything in {Plan(plan).label}. "
            "Only a higher plan can be bought."
        )
    if held.subscription is None:
        return _comp_noted(held, Offer(Plan(plan), Interval(interval), Kind.CHECKOUT))
    if interval in RECURRING:
        return _switch_offer(held, Plan(plan), Interval(interval))
    end = subscription_period(held.subscription)[1]
    ends_at = datetime.fromtimestamp(int(end), tz=UTC) if end else None
    return Offer(Plan(plan), Interval(interval), Kind.CHECKOUT, ends_subscription_at=ends_at)


def _comp_noted(held: Holdings, offer: Offer) -> Offer:
    """An offer made during a comp that ends says so: what is free until when."""
    if held.comp_plan is None or held.comp_until is None or held.comp_plan != held.plan:
        return offer
    if plan_rank(offer.plan) > plan_rank(held.comp_plan):
        return offer  # an upgrade from the comp's plan: nothing to explain
    return replace(offer, comp_plan=held.comp_plan, comp_until=held.comp_until)


def _not_while_processing(held: Holdings, plan: Plan, interval: Interval) -> None:
    # A bank debit still processing will give its plan in a few days: buying it (or
    # anything it includes) again would pay twice; a second subscription beside the
    # one the debit starts would bill twice.
    for pending_plan, mode, amount, currency in held.processing:
        if plan_rank(plan) <= plan_rank(pending_plan) or (
            mode == "subscription" and interval in RECURRING
        ):
            paid = f"{money(amount, currency)} " if amount is not None else ""
            raise NotAnUpgrade(
                f"Your {paid}payment for {pending_plan.label} by bank debit is processing "
                "(usually 3 working days): you have nothing more to pay for it now."
            )


def _interval_upgrade(held: Holdings, plan: str, interval: str) -> bool:
    """Monthly to annual on the plan the subscription sells (and nothing higher owned)."""
    return (
        held.subscription is not None
        and held.subscription_plan == plan == held.floor
        and held.subscription_interval is not None
        and interval in RECURRING
        and change_timing(
            plan=plan, interval=held.subscription_interval, to_plan=plan, to_interval=interval
        )
        == Timing.NOW
    )


def _switch_offer(held: Holdings, plan: Plan, interval: Interval) -> Offer:
    current_plan = held.subscription_plan or held.plan
    current_interval = held.subscription_interval or Interval.MONTHLY
    timing = change_timing(
        plan=current_plan, interval=current_interval, to_plan=plan, to_interval=interval
    )
    if timing != Timing.NOW:
        # A paid year is never cut short for a monthly price; the billing page moves a
        # yearly subscription only to its own plan monthly or to a lower plan.
        raise NotAnUpgrade(
            f"You pay yearly for {current_plan.label}: switch to {plan.label} yearly now "
            "(the unused part of your year is credited)."
        )
    _not_while_trialing(held)
    return _comp_noted(held, Offer(plan, interval, Kind.SWITCH))


def _not_while_overdue(user: User, held: Holdings) -> None:
    # An upgrade while a renewal is unpaid would charge the upgrade's invoice on top, hide
    # the overdue one behind it and end the grace the renewal has; a one-off would leave
    # the overdue renewal to be retried for a plan it replaces: settle it first.
    if (held.subscription or {}).get("status") not in DUNNING_STATUSES:
        return
    overdue = dunning_for(user)
    amount = f"the overdue {overdue.amount_display}" if overdue else "the overdue renewal"
    raise NotAnUpgrade(
        f"Your renewal is overdue: pay {amount} first (the banner at the top of the page "
        "says how), then you can change plan."
    )


def _not_while_trialing(held: Holdings) -> None:
    # An upgrade charges the prorated difference now; during a free trial there is
    # nothing to prorate against, and charging would end the trial the customer chose.
    if (held.subscription or {}).get("status") == "trialing":
        raise NotAnUpgrade(
            "Your free trial is still running: you can change plan once it has ended, "
            "or cancel it from the billing page."
        )


def offers_for(user: User) -> dict[tuple[str, str], Offer]:
    """Every offer open to `user`, by (plan, interval)."""
    return {key: c for key, c in choices_for(user).items() if isinstance(c, Offer)}


def choices_for(user: User) -> dict[tuple[str, str], Offer | Refusal]:
    """For every paid plan and interval, by (plan, interval): the offer open to `user`,
    or why not in their words. What the pricing page shows: a button or the reason, never
    "included" for something the customer does not hold."""
    held = holdings_of(user)
    choices: dict[tuple[str, str], Offer | Refusal] = {}
    for plan in Plan:
        if not PLAN_INFO[plan].sold:
            continue
        for interval in Interval:
            try:
                choices[(plan, interval)] = offer_check(
                    user=user, plan=plan, interval=interval, holdings=held
                )
            except NotAnUpgrade as refused:
                reason = refusal_reason(held=held, plan=plan, interval=interval) or str(refused)
                choices[(plan, interval)] = Refusal(
                    plan, interval, reason, action=_refusal_action(held)
                )
    return choices


def _refusal_action(held: Holdings) -> tuple[str, str] | None:
    """A renewal overdue: the billing page, whose banner pays it, is the way on."""
    if (held.subscription or {}).get("status") in DUNNING_STATUSES:
        return ("Pay the overdue renewal", reverse("billing:account"))
    return None


_PAYS = {Interval.MONTHLY: "monthly", Interval.ANNUAL: "yearly"}


def refusal_reason(*, held: Holdings, plan: Plan, interval: Interval) -> str | None:
    """What the customer holds that stops them buying `plan` (`interval`), in their words,
    from what they hold rather than from their plan's rank alone; None where offer_check's
    own refusal already says it (a trial running, a paid year to finish)."""
    sub_plan, sub_interval = held.subscription_plan, held.subscription_interval
    status = (held.subscription or {}).get("status")
    if (
        sub_plan is not None
        and status in DUNNING_STATUSES
        and plan_rank(held.plan) < plan_rank(sub_plan)
        and plan_rank(plan) <= plan_rank(sub_plan)
    ):
        # The plan was cut in dunning: the subscription is still there, the access is not.
        return (
            f"Your {sub_plan.label} subscription has a payment overdue: pay it from the "
            f"billing page to have {sub_plan.label} again."
        )
    if sub_plan == plan and sub_interval is not None:
        pays = _PAYS.get(sub_interval, "")
        if interval == sub_interval and status == "trialing":
            return f"You are trying {plan.label} free, then pay {pays}: this is your plan."
        if interval == sub_interval:
            return f"You pay {pays} for {plan.label}: this is your plan."
        if interval == Interval.ONEOFF:
            return (
                f"You pay {pays} for {plan.label}. While you subscribe, only a higher "
                "plan can be bought once."
            )
        if interval == Interval.MONTHLY:
            return (
                f"You pay yearly for {plan.label}: monthly {plan.label} can start when "
                "your paid year ends (from the billing page)."
            )
    if held.oneoff_plan == plan:
        return f"You own {plan.label} for good: there is nothing more to pay."
    if held.lasting_comp_plan == plan == held.floor:
        return f"{plan.label} is complimentary on your account, for good: there is nothing to pay."
    if plan_rank(plan) < plan_rank(held.floor) and plan_rank(held.plan) >= plan_rank(held.floor):
        return f"Your {held.floor.label} includes everything in {plan.label}."
    return None
