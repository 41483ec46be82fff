"""A customer's account standing: what SmartFlow tells them about their money.

Every amount and date a page or message shows comes from Stripe's own numbers, kept
(the next charge: billing/next_charge.py), never from prices added up in a view or a
template. So far: a free trial under way (when it ends, what is charged then); the
access (`access_for`: the plan, why the customer has it and until when, and what they
keep after), read from the plan decision itself (billing.entitlements.plan_decide),
never a second plan rule; and what is pending (`pending_for`: a bank debit processing,
a change or a cancellation at the period end, from billing/outlook.py).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from accounts.models import User
from billing.entitlements import plan_compute
from billing.models import CheckoutOpened, OneOffPurchase
from billing.next_charge import next_charge_for
from billing.outlook import outlook_for
from billing.plans import Interval, Plan, highest_plan, recurring_interval
from billing.stripe_api import live_subscription
from billing.stripe_layout import subscription_period
from billing.subscriptions import subscription_sells

logger = logging.getLogger(__name__)


def _ts(value: Any) -> datetime:
    return datetime.fromtimestamp(int(value), tz=UTC)


@dataclass(frozen=True)
class Trial:
    """A free trial under way: when it ends and what Stripe will charge then."""

    ends_at: datetime
    amount: int | None  # Stripe's preview of the first charge; None until fetched
    currency: str


def trial_for(user: User) -> Trial | None:
    """The user's live subscription's free trial, if it is on one, from the synced rows."""
    subscription = live_subscription(user)
    if subscription is None or subscription.get("status") != "trialing":
        return None
    ends = subscription.get("trial_end") or subscription_period(subscription)[1]
    if not ends:
        return None
    charge = next_charge_for(subscription["id"])
    return Trial(
        ends_at=_ts(ends),
        amount=charge.amount_due if charge else None,
        currency=charge.currency if charge else subscription.get("currency") or "",
    )


# What a grant is, in the customer's words; the kinds of billing.entitlements.Grant.
SUBSCRIPTION_KINDS = frozenset({"subscription", "trial", "grace"})


@dataclass(frozen=True)
class Access:
    """What the customer holds: `plan`, why (`why`: "subscription", "trial", "grace",
    "oneoff", "comp", "kept" or "free"), until when (`until`: None while nothing ends it)
    and what they hold after that (`after`: None while nothing ends)."""

    plan: Plan
    why: str
    until: datetime | None = None
    after: Plan | None = None
    # A trial's first charge (Stripe's preview), for "then £49.00/month".
    amount: int | None = None
    currency: str = ""
    interval: Interval | None = None
    # A paid subscription beside a comp on a higher plan: what the customer pays for.
    paid_plan: Plan | None = None

    @property
    def plan_label(self) -> str:
        return self.plan.label

    @property
    def after_label(self) -> str:
        return self.after.label if self.after else ""

    @property
    def per(self) -> str:
        return "year" if self.interval == Interval.ANNUAL else "month"


def _cancels_at(subscription: Mapping[str, Any] | None) -> datetime | None:
    if not subscription:
        return None
    if cancel_at := subscription.get("cancel_at"):
        return _ts(cancel_at)
    if subscription.get("cancel_at_period_end"):
        end = subscription_period(subscription)[1]
        return _ts(end) if end else None
    return None


def access_for(user: User, *, now: datetime | None = None) -> Access:
    """Why `user` has the plan they have, until when, and what follows: from the plan
    decision's winning grant (billing.entitlements), the live subscription's trial end
    or cancellation date, and the grants that outlast it."""
    decision = plan_compute(user, now=now)
    if not decision.grants:
        return Access(plan=decision.plan, why="free")
    winner, others = decision.grants[0], decision.grants[1:]
    subscription = live_subscription(user)
    sold = subscription_sells(subscription) if subscription else None
    price = sold.item.get("price") if sold else None
    interval = recurring_interval(price) if isinstance(price, dict) else None
    until = winner.ends_at
    if winner.kind in SUBSCRIPTION_KINDS:
        # One subscription grants at a time: what follows it is the rest.
        others = [g for g in others if g.kind not in SUBSCRIPTION_KINDS]
        cancels = _cancels_at(subscription)
        if winner.kind == "trial":
            trial = trial_for(user)
            until = trial.ends_at if trial else None
            if cancels is None and trial is not None:
                # The trial goes on to be paid: the same plan, at Stripe's first charge.
                return Access(
                    plan=winner.plan,
                    why="trial",
                    until=until,
                    after=winner.plan,
                    amount=trial.amount,
                    currency=trial.currency,
                    interval=interval,
                )
        if winner.kind == "subscription":
            until = cancels
    after = None
    if until is not None:
        lasting = [g.plan for g in others if g.ends_at is None or g.ends_at > until]
        after = highest_plan(lasting)
    paid = next((g.plan for g in others if g.kind in SUBSCRIPTION_KINDS), None)
    return Access(
        plan=decision.plan,
        why=winner.kind or "kept",
        until=until,
        after=after,
        interval=interval,
        paid_plan=paid if winner.kind == "comp" else None,
    )


# A bank debit's answer usually comes in this many working days (Bacs: three).
BANK_DEBIT_DAYS = 3


@dataclass(frozen=True)
class PendingPayment:
    """A payment the bank is processing (a Bacs debit): what it buys and how much."""

    session_id: str
    plan: Plan
    interval: str
    amount: int | None
    currency: str
    since: datetime | None
    mode: str

    @property
    def method_words(self) -> str:
        # The delayed methods Checkout offers in GBP is Bacs Direct Debit; elsewhere
        # (SEPA, ACH) the generic name.
        return "Bacs Direct Debit" if self.currency.lower() == "gbp" else "bank debit"

    @property
    def days(self) -> int:
        return BANK_DEBIT_DAYS


@dataclass(frozen=True)
class Pending:
    """What is under way: payments processing, a change of plan or the end of the
    subscription at the period end (billing/period_end.py), with its date."""

    payments: list[PendingPayment]
    change_plan: Plan | None = None
    change_interval: Interval | None = None
    change_on: datetime | None = None
    cancels_on: datetime | None = None

    def __bool__(self) -> bool:
        return bool(self.payments or self.change_plan or self.cancels_on)


def pending_payments(user: User) -> list[PendingPayment]:
    """The user's checkouts paid by a bank debit still processing (CheckoutOpened).

    A debit whose subscription is already live, or whose one-off is recorded, is not
    shown: Stripe's events come in any order, and the subscription's may come before
    `checkout.session.async_payment_succeeded` (the plan live beside "processing")."""
    rows = list(CheckoutOpened.objects.filter(user=user, payment=CheckoutOpened.Payment.PROCESSING))
    if not rows:
        return []
    subscription = live_subscription(user)
    subscribed = subscription is not None and subscription.get("status") in ("active", "trialing")
    bought = set(
        OneOffPurchase.objects.filter(
            checkout_session_id__in=[row.session_id for row in rows]
        ).values_list("checkout_session_id", flat=True)
    )
    rows = [
        row
        for row in rows
        if not (row.mode == "subscription" and subscribed) and row.session_id not in bought
    ]
    return [
        PendingPayment(
            session_id=row.session_id,
            plan=Plan(row.plan),
            interval=row.interval,
            amount=row.amount,
            currency=row.currency,
            since=row.processing_since,
            mode=row.mode,
        )
        for row in rows
    ]


def pending_for(user: User) -> Pending:
    """What is pending for `user`, from the synced rows and the app's own: no Stripe
    call. The change and cancellation are the subscription's outlook's
    (billing/outlook.py), so the billing page and the dashboard say the same."""
    outlook = outlook_for(user)
    change = outlook if outlook is not None and outlook.kind == "changes" else None
    cancels = outlook.on if outlook is not None and outlook.kind == "cancels" else None
    return Pending(
        payments=pending_payments(user),
        change_plan=change.next_plan if change else None,
        change_interval=change.next_interval if change else None,
        change_on=change.on if change else None,
        cancels_on=cancels,
    )
