"""A customer's account standing: what SmartFlow tells them about their money.

Every amount and date a page or message shows comes from Stripe's own numbers, kept here,
never from prices added up in a view or a template. So far: the next charge, Stripe's
preview of the subscription's next invoice (`Invoice.create_preview`), with tax and
discounts as Stripe will apply them, fetched when the subscription syncs (in the worker,
never in a page request) and kept as a `NextCharge` row; and a free trial under way (when
it ends, what is charged then).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import stripe
from djstripe.models import Subscription

from accounts.models import User
from billing.models import NextCharge
from billing.stripe_api import api_kwargs, live_subscription
from billing.stripe_layout import subscription_period

logger = logging.getLogger(__name__)

# Statuses whose subscription Stripe will invoice again. (past_due: the next renewal; the
# overdue invoice itself is owed now, not next.)
CHARGING_STATUSES = frozenset({"active", "trialing", "past_due"})


def _charges_again(subscription: Mapping[str, Any]) -> bool:
    if subscription.get("status") not in CHARGING_STATUSES:
        return False
    if subscription.get("cancel_at_period_end"):
        return False
    cancel_at = subscription.get("cancel_at")
    period_end = subscription_period(subscription)[1]
    return not (cancel_at and period_end and int(cancel_at) <= int(period_end))


def _ts(value: Any) -> datetime:
    return datetime.fromtimestamp(int(value), tz=UTC)


def next_charge_values(preview: Mapping[str, Any]) -> dict[str, Any]:
    """A NextCharge's fields from Stripe's invoice preview (the 2025+ shape: `total_taxes`,
    `total_discount_amounts`; `next_payment_attempt`, else the period's end)."""
    taxes = preview.get("total_taxes") or []
    lines = (preview.get("lines") or {}).get("data") or []
    return {
        "amount_due": int(preview["amount_due"]),
        "subtotal": int(preview.get("subtotal") or 0),
        "discount": sum(
            int(d.get("amount") or 0) for d in preview.get("total_discount_amounts") or []
        ),
        "tax": sum(int(t.get("amount") or 0) for t in taxes),
        "tax_inclusive": any(t.get("tax_behavior") == "inclusive" for t in taxes),
        "currency": preview.get("currency") or "",
        "due_at": _ts(preview.get("next_payment_attempt") or preview["period_end"]),
        "lines": [
            {"description": line.get("description") or "", "amount": int(line.get("amount") or 0)}
            for line in lines
        ],
    }


def next_charge_refresh(*, user: User, subscription_id: str) -> NextCharge | None:
    """Ask Stripe what the subscription will charge next and keep the answer; forget it
    when the subscription will not charge again. Called by the webhook receivers after
    dj-stripe has synced the subscription. A Stripe error raises: the worker retries."""
    synced = (
        Subscription.objects.filter(id=subscription_id)
        .values_list("stripe_data", flat=True)
        .first()
    )
    if not synced or not _charges_again(synced):
        NextCharge.objects.filter(subscription_id=subscription_id).delete()
        return None
    try:
        preview = stripe.Invoice.create_preview(
            customer=synced["customer"]
            if isinstance(synced["customer"], str)
            else synced["customer"]["id"],
            subscription=subscription_id,
            **api_kwargs(),
        )
    except stripe.InvalidRequestError as exc:
        if exc.code != "invoice_upcoming_none":
            raise
        NextCharge.objects.filter(subscription_id=subscription_id).delete()
        return None
    charge, _ = NextCharge.objects.update_or_create(
        subscription_id=subscription_id,
        defaults={"user": user, **next_charge_values(preview.to_dict())},
    )
    return charge


def next_charge_for(subscription_id: str) -> NextCharge | None:
    """The kept preview of the subscription's next invoice: a page reads this, never
    Stripe."""
    return NextCharge.objects.filter(subscription_id=subscription_id).first()


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
