"""The next charge: Stripe's preview of a subscription's next invoice, kept.

Stripe's own numbers (`Invoice.create_preview`: tax and discounts as Stripe will apply
them), fetched when the subscription syncs (in the worker, never in a page request) and
kept as a `NextCharge` row, which the pages, the outlook (billing/outlook.py), the
standing (billing/standing.py) and the messages read, never Stripe.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import stripe
from django.utils import timezone
from djstripe.models import Subscription

from accounts.models import User
from billing.event_scope import synced_data
from billing.models import NextCharge
from billing.stripe_api import api_kwargs
from billing.stripe_layout import subscription_period
from billing.subscriptions import PLAN_STATUSES


def _charges_again(subscription: Mapping[str, Any]) -> bool:
    """Whether Stripe will invoice the subscription again (past_due: its next renewal; the
    overdue invoice itself is owed now, not next)."""
    if subscription.get("status") not in PLAN_STATUSES:
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


def next_charge_refresh(*, user: User, subscription_id: str) -> None:
    """Ask Stripe what the subscription will charge next and keep the answer; forget it
    when the subscription will not charge again. Called by the webhook receivers after
    dj-stripe has synced the subscription. A Stripe error raises: the worker retries."""
    synced = synced_data(Subscription, subscription_id)
    if not synced or not _charges_again(synced):
        NextCharge.objects.filter(subscription_id=subscription_id).delete()
        return
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
        return
    values = {"user": user, **next_charge_values(preview.to_dict()), "fetched_at": timezone.now()}
    # One INSERT ... ON CONFLICT DO UPDATE, new or kept since the subscription's last event
    # (update_or_create takes two savepoints, a SELECT ... FOR UPDATE and then the write).
    NextCharge.objects.bulk_create(
        [NextCharge(subscription_id=subscription_id, **values)],
        update_conflicts=True,
        unique_fields=["subscription_id"],
        update_fields=list(values),
    )


def next_charge_for(subscription_id: str) -> NextCharge | None:
    """The kept preview of the subscription's next invoice: a page reads this, never
    Stripe."""
    return NextCharge.objects.filter(subscription_id=subscription_id).first()
