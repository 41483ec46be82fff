"""Disputes (chargebacks) on one-off purchases: whether a purchase still counts, and the
staff alert.

Decided from the dispute as dj-stripe last synced it from Stripe (it re-reads the dispute
for every `charge.dispute.*` event before our receiver runs), never from the event's
type or order: a late `charge.dispute.created` arriving after `charge.dispute.closed`
finds the dispute already `won` and leaves the purchase counting. While a dispute is
open, or once it is lost, the purchase grants nothing (the money is with the bank or
gone); won, it counts again (OneOffPurchase.counts).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import stripe
from django.db import connection
from django.db.models.fields.json import KT
from django.utils import timezone
from djstripe.models import Charge, Dispute

from billing.alerts import alert_record
from billing.models import BillingAlert, OneOffPurchase
from billing.money import money
from billing.stripe_api import api_kwargs

logger = logging.getLogger(__name__)

DISPUTE_EVENTS = [
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
]
# Stripe's open statuses (warning_*: an inquiry, no chargeback yet; still unsettled).
OPEN_STATUSES = {"needs_response", "under_review", "warning_needs_response", "warning_under_review"}


def _id(value: Any) -> str:
    return value.get("id", "") if isinstance(value, dict) else (value or "")


def dispute_current(dispute_id: str) -> dict[str, Any]:
    """The dispute as synced by dj-stripe, else as Stripe says now."""
    synced = Dispute.objects.filter(id=dispute_id).values_list("stripe_data", flat=True).first()
    return synced or stripe.Dispute.retrieve(dispute_id, **api_kwargs()).to_dict()


def dispute_payment_intent(dispute: dict[str, Any]) -> str:
    """The PaymentIntent of the disputed charge (the dispute names it; older charges
    only through the charge)."""
    if payment_intent := _id(dispute.get("payment_intent")):
        return payment_intent
    charge_id = _id(dispute.get("charge"))
    if not charge_id:
        return ""
    charge = (
        Charge.objects.filter(id=charge_id).values_list("stripe_data", flat=True).first()
        or stripe.Charge.retrieve(charge_id, **api_kwargs()).to_dict()
    )
    return _id(charge.get("payment_intent"))


def disputes_load(payment_intent_ids: Iterable[str]) -> dict[str, str]:
    """The status of the newest synced dispute of each PaymentIntent, in one query."""
    ids = sorted(set(payment_intent_ids))
    if not ids:
        return {}
    newest: dict[str, tuple[int, str]] = {}
    disputes = Dispute.objects.all()
    if connection.vendor == "postgresql":
        # Compared as text (KT): a JSON `__in` lookup casts every id to JSON, which cost
        # reconcile_plans more than the query itself.
        disputes = disputes.annotate(stripe_payment_intent=KT("stripe_data__payment_intent"))
        disputes = disputes.filter(stripe_payment_intent__in=ids)
    else:
        disputes = disputes.filter(stripe_data__payment_intent__in=ids)
    rows = disputes.values_list("stripe_data", flat=True)
    for data in rows:
        key = _id(data.get("payment_intent"))
        created = int(data.get("created") or 0)
        if key not in newest or created >= newest[key][0]:
            newest[key] = (created, data.get("status") or "")
    return {key: status for key, (_, status) in newest.items()}


def purchase_dispute_apply(purchase: OneOffPurchase, dispute: dict[str, Any]) -> None:
    """Record on `purchase` the state of its newest dispute (a charge may be disputed
    again after a dispute closed; the newest decides)."""
    newest = dispute
    if purchase.dispute_id and purchase.dispute_id != dispute["id"]:
        recorded = Dispute.objects.filter(id=purchase.dispute_id).values_list(
            "stripe_data", flat=True
        )
        other = recorded.first()
        if other and int(other.get("created") or 0) > int(dispute.get("created") or 0):
            newest = other
    OneOffPurchase.objects.filter(pk=purchase.pk).update(
        dispute_id=newest["id"],
        dispute_status=newest.get("status") or "",
        disputed_at=purchase.disputed_at or _ts(newest.get("created")) or timezone.now(),
    )


def _ts(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), tz=UTC) if value else None


def dispute_alert_record(
    dispute: dict[str, Any], *, who: str, purchase: OneOffPurchase | None, stripe_event_id: str
) -> BillingAlert:
    """One alert per dispute, raised when staff first hear of it, its text kept current
    (status, outcome) by the later events; a repeat delivery adds nothing."""
    what = f"one-off purchase of {purchase.get_plan_display()}" if purchase else "a payment"
    due = _ts((dispute.get("evidence_details") or {}).get("due_by"))
    status = dispute.get("status") or "?"
    detail = (
        f"{money(dispute.get('amount'), dispute.get('currency') or '')} disputed on {what} "
        f"by {who} (charge {_id(dispute.get('charge'))}), reason: "
        f"{(dispute.get('reason') or 'unknown').replace('_', ' ')}. Status: "
        f"{status.replace('_', ' ')}"
        + (f"; evidence due by {due:%Y-%m-%d}" if due and status in OPEN_STATUSES else "")
        + "."
    )
    alert, created = alert_record(
        kind=BillingAlert.Kind.DISPUTE,
        stripe_id=dispute["id"],
        detail=detail,
        stripe_event_id=stripe_event_id,
    )
    if not created and alert.detail != detail:
        BillingAlert.objects.filter(pk=alert.pk).update(
            detail=detail, last_seen_at=timezone.now(), stripe_event_id=stripe_event_id
        )
    if created:
        logger.warning("Dispute %s opened: %s", dispute["id"], detail)
    return alert
