"""Which plan a user has, and why.

The plan is always computed from the facts, never incremented: the highest of
  (a) a subscription that is active or trialing, or past_due within the grace period,
  (b) a paid, unrefunded one-off purchase (that plan for good),
  (c) an active staff override,
else starter. `plan_refresh` stores the result on the user and writes the history.

Subscriptions are read from dj-stripe's `stripe_data` (its convenience helpers are
broken on current API versions: see docs/djstripe.md).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from djstripe.models import Subscription

from accounts.models import User
from billing.models import BillingAlert, OneOffPurchase, PlanChange, PlanOverride
from billing.plans import Plan, plan_includes, plan_rank, price_plan
from billing.signals import plan_changed
from billing.stripe_layout import subscription_period

logger = logging.getLogger(__name__)

LIVE_STATUSES = {"active", "trialing"}


@dataclass(frozen=True)
class Grant:
    plan: Plan
    why: str


@dataclass
class Decision:
    plan: Plan
    why: str
    # Prices on live subscriptions that sell no known plan: the plan is then kept as it
    # is rather than guessed (and staff are told).
    unknown_prices: list[str] = field(default_factory=list)


@dataclass
class Facts:
    """Everything the decision reads, loaded in bulk by `facts_load`."""

    subscriptions: list[dict[str, Any]] = field(default_factory=list)
    oneoffs: list[OneOffPurchase] = field(default_factory=list)
    overrides: list[PlanOverride] = field(default_factory=list)


def _ts(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), tz=UTC) if value else None


def _subscription_grant(sub: dict[str, Any], now: datetime) -> tuple[Grant | None, list[str]]:
    status = sub.get("status")
    items = (sub.get("items") or {}).get("data") or []
    if status in LIVE_STATUSES:
        why_status = status
    elif status == "past_due":
        # A renewal is attempted when the new period starts, so the period start is
        # when the payment failed. Stripe's smart retries may take longer than our grace.
        started = _ts(subscription_period(sub)[0])
        grace_days = settings.BILLING_PAST_DUE_GRACE_DAYS
        if started is None or now > started + timedelta(days=grace_days):
            return None, []
        why_status = f"past_due, in the {grace_days}-day grace period"
    else:
        return None, []

    plans: list[Plan] = []
    unknown: list[str] = []
    for item in items:
        price = item.get("price") or {}
        if isinstance(price, str):
            price = {"id": price}
        sold = price_plan(price_id=price.get("id", ""), lookup_key=price.get("lookup_key"))
        if sold is None:
            unknown.append(price.get("id", "?"))
        else:
            plans.append(sold[0])
    if not plans:
        return None, unknown
    best = max(plans, key=plan_rank)
    return Grant(best, f"subscription {sub.get('id')} ({why_status})"), unknown


def plan_decide(*, facts: Facts, current: str, now: datetime | None = None) -> Decision:
    """The plan the facts entitle to. Pure: reads nothing, writes nothing."""
    now = now or timezone.now()
    grants: list[Grant] = []
    unknown: list[str] = []
    for sub in facts.subscriptions:
        grant, sub_unknown = _subscription_grant(sub, now)
        unknown += sub_unknown
        if grant:
            grants.append(grant)
    for purchase in facts.oneoffs:
        if purchase.refunded_at is None:
            grants.append(
                Grant(Plan(purchase.plan), f"one-off purchase {purchase.checkout_session_id}")
            )
    for override in facts.overrides:
        if override.revoked_at is None and (
            override.expires_at is None or override.expires_at > now
        ):
            until = (
                f" until {override.expires_at:%Y-%m-%d %H:%M} UTC" if override.expires_at else ""
            )
            grants.append(Grant(Plan(override.plan), f"staff override{until}: {override.reason}"))
    if unknown:
        grants.append(Grant(Plan(current), f"kept: unknown price {', '.join(unknown)}"))
    if not grants:
        return Decision(Plan.STARTER, "no active subscription, purchase or override")
    # Ties go to the first grant: subscriptions, then purchases, then overrides.
    best = max(grants, key=lambda g: plan_rank(g.plan))
    return Decision(best.plan, best.why, unknown)


def facts_load(user_ids: Iterable[int]) -> dict[int, Facts]:
    """Load the facts of many users in three queries, whatever their number."""
    ids = list(user_ids)
    facts: dict[int, Facts] = defaultdict(Facts)
    subscriptions = Subscription.objects.filter(customer__subscriber_id__in=ids).values_list(
        "customer__subscriber_id", "stripe_data"
    )
    for user_id, data in subscriptions:
        facts[user_id].subscriptions.append(data)
    for purchase in OneOffPurchase.objects.filter(user_id__in=ids, refunded_at__isnull=True):
        facts[purchase.user_id].oneoffs.append(purchase)
    for override in PlanOverride.objects.filter(PlanOverride.active_q(), user_id__in=ids):
        facts[override.user_id].overrides.append(override)
    return facts


def plan_compute(user: User, *, now: datetime | None = None) -> Decision:
    """Why `user` is on the plan they should be on (not necessarily the stored one)."""
    return plan_decide(facts=facts_load([user.pk])[user.pk], current=user.plan, now=now)


def unknown_prices_record(prices: list[str], *, stripe_event_id: str) -> None:
    for price_id in prices:
        logger.warning("Price %s sells no known plan; plan left unchanged", price_id)
        alert, created = BillingAlert.objects.get_or_create(
            kind=BillingAlert.Kind.UNKNOWN_PRICE,
            stripe_id=price_id,
            defaults={
                "detail": "A subscription uses a price that maps to no plan.",
                "stripe_event_id": stripe_event_id,
            },
        )
        if not created:
            BillingAlert.objects.filter(pk=alert.pk).update(
                seen_count=F("seen_count") + 1,
                last_seen_at=timezone.now(),
                stripe_event_id=stripe_event_id or alert.stripe_event_id,
            )


def plan_refresh(
    *,
    user: User,
    source: str,
    stripe_event_id: str = "",
    actor: User | None = None,
    reason: str = "",
    notify: bool | None = None,
) -> PlanChange | None:
    """Recompute `user`'s plan and store it; returns the PlanChange, or None if unchanged.

    Safe to run any number of times. The user row is locked so that concurrent webhooks
    for one customer decide one after the other. `notify` defaults to "an upgrade that a
    payment caused, to a plan the user never reached by paying before"; staff pass it
    explicitly.
    """
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        decision = plan_compute(locked)
        unknown_prices_record(decision.unknown_prices, stripe_event_id=stripe_event_id)
        user.plan = decision.plan
        if decision.plan == locked.plan:
            return None
        old_plan = locked.plan
        if notify is None:
            notify = (
                source in _PAYMENT_SOURCES
                and not plan_includes(old_plan, decision.plan)
                and not _reached_by_paying(locked, decision.plan)
            )
        locked.plan = decision.plan
        locked.save(update_fields=["plan", "updated_at"])
        change = PlanChange.objects.create(
            user=locked,
            old_plan=old_plan,
            new_plan=decision.plan,
            source=source,
            stripe_event_id=stripe_event_id,
            actor=actor,
            reason=reason or decision.why,
        )
        logger.info(
            "Plan of user %s: %s -> %s (%s, %s)",
            locked.pk,
            old_plan,
            decision.plan,
            source,
            change.reason,
        )
        plan_changed.send(sender=PlanChange, plan_change=change, notify=notify)
        return change


_PAYMENT_SOURCES = {
    PlanChange.Source.CHECKOUT,
    PlanChange.Source.SUBSCRIPTION,
    PlanChange.Source.INVOICE,
}


def _reached_by_paying(user: User, plan: str) -> bool:
    """Whether a payment already put `user` on `plan` once: the plan coming back (a
    retried renewal after a failed-payment downgrade, a new subscription after a
    cancellation) is not a new activation, so it is not welcomed again."""
    return PlanChange.objects.filter(user=user, new_plan=plan, source__in=_PAYMENT_SOURCES).exists()
