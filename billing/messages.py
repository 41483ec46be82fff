"""Which one message a change of plan tells the customer, and the facts it says.

The one home of that decision (issue 27: "every customer message is decided in one place
in billing, one message per transition"). `plan_change_message` reads the PlanChange
`plan_refresh` has just written and the state synced with it (the subscription, its
latest invoice, the kept NextCharge, the comps) and answers at most one message:

- welcome:        a first paid activation (Starter to a plan never reached by paying);
- plan_upgraded:  a paid plan raised by a payment: what Stripe charged (the paid
                  invoice's amount_paid, or the one-off's amount) and from when;
- plan_downgraded: a live subscription now selling a lower paid plan (a scheduled
                  downgrade taking effect at the renewal): from when, and Stripe's
                  preview of the next charge;
- comp_granted:   staff comped a higher plan and asked to tell the customer;
- comp_ended:     a comp ran out (not revoked: staff explain a revoke themselves);
- plan_ended:     a paid plan back to Starter because its subscription ended.

Anything else (a plan restored by a retried payment, reconcile, a refund, a dispute, a
staff change with "notify" unticked) tells nothing here: its own notice, if any, is sent
by billing.notices. Amounts are Stripe's; one not known yet is left out of the message,
never worked out from plan prices.

onboarding only queues what this answers (onboarding/receivers.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import stripe
from django.utils import timezone
from djstripe.models import Invoice

from billing.event_scope import synced_data
from billing.models import OneOffPurchase, PlanChange, PlanOverride
from billing.next_charge import next_charge_for
from billing.notices import plan_end_reason
from billing.plans import Plan, plan_rank
from billing.signals import Notice
from billing.stripe_api import api_kwargs, live_subscription
from billing.stripe_layout import subscription_period
from billing.subscriptions import subscription_sells

Source = PlanChange.Source

# The sources of a change that a payment (or its ending) made.
PAYMENT_SOURCES = frozenset({Source.CHECKOUT, Source.SUBSCRIPTION, Source.INVOICE})
# Stripe's billing_reason of the invoice an upgrade raises (proration, always_invoice).
_UPGRADE_REASONS = frozenset({"subscription_update"})


@dataclass(frozen=True)
class PlanMessage:
    """What to tell the customer about one PlanChange: a Notice kind, the key that makes
    it once per change, and the facts for its words (amounts in minor units with
    "currency", times as Unix seconds)."""

    kind: Notice
    key: str
    context: dict[str, Any] = field(default_factory=dict)


def plan_change_message(*, plan_change: PlanChange, notify: bool | None) -> PlanMessage | None:
    """The one message `plan_change` tells, or None.

    `notify` is what the writer of the change asked: None lets billing decide from the
    change (webhooks, the grace recheck, a comp running out); False is silence (staff
    with "notify the customer" unticked, reconcile); True is staff asking to tell the
    customer of a comp they granted.
    """
    if notify is False:
        return None
    old, new = Plan(plan_change.old_plan), Plan(plan_change.new_plan)
    key = f"plan_change:{plan_change.pk}"
    up = plan_rank(new) > plan_rank(old)
    if plan_change.source == Source.STAFF:
        return _comp_granted(plan_change, key) if notify and up else None
    if plan_change.source == Source.RECONCILE:
        return _comp_ended(plan_change, key) if not up else None
    if plan_change.source not in PAYMENT_SOURCES:
        return None  # a refund, a dispute: their own notices (or staff) explain
    if new == Plan.STARTER:
        return PlanMessage(
            Notice.PLAN_ENDED,
            key,
            {"old_plan": old.value, "reason": plan_end_reason(plan_change.user)},
        )
    if up and old == Plan.STARTER:
        if _reached_by_paying(plan_change):
            return None  # back after a failed payment or a cancellation: not new
        return PlanMessage(Notice.WELCOME, key)
    if up:
        return _upgraded(plan_change, key)
    return _downgraded(plan_change, key)


def _reached_by_paying(plan_change: PlanChange) -> bool:
    """Whether a payment put the user on the new plan once before this change."""
    return (
        PlanChange.objects.filter(
            user_id=plan_change.user_id,
            new_plan=plan_change.new_plan,
            source__in=PAYMENT_SOURCES,
        )
        .exclude(pk=plan_change.pk)
        .exists()
    )


def _invoice(invoice: Any) -> dict[str, Any] | None:
    invoice_id = invoice.get("id") if isinstance(invoice, dict) else invoice
    if not invoice_id:
        return None
    synced = synced_data(Invoice, invoice_id)
    # In the worker: the webhook's own transaction may not have synced it yet.
    return synced or stripe.Invoice.retrieve(invoice_id, **api_kwargs()).to_dict()


def _upgraded(plan_change: PlanChange, key: str) -> PlanMessage | None:
    """A paid plan raised: by the subscription's paid upgrade invoice, by a new
    subscription, or by a one-off, with what Stripe charged for it. A plan coming back
    with none of these new (a retried renewal paid after the grace) is the recovery's
    news, told by billing.notices."""
    context: dict[str, Any] = {
        "old_plan": plan_change.old_plan,
        "from": _ts(plan_change.created_at),
    }
    sub = live_subscription(plan_change.user)
    sold = subscription_sells(sub) if sub else None
    on_subscription = bool(sub and sold and sold.plan == plan_change.new_plan)
    invoice = _invoice(sub.get("latest_invoice")) if sub and on_subscription else None
    purchase = (
        None
        if on_subscription
        else OneOffPurchase.objects.filter(
            user_id=plan_change.user_id, plan=plan_change.new_plan, refunded_at__isnull=True
        )
        .order_by("-paid_at")
        .first()
    )
    upgrade_paid = bool(invoice and invoice.get("billing_reason") in _UPGRADE_REASONS)
    if not upgrade_paid and purchase is None and _reached_by_paying(plan_change):
        return None
    if purchase is not None:
        context |= {
            "amount_paid": purchase.amount,
            "currency": purchase.currency,
            "from": _ts(purchase.paid_at),
            "oneoff": True,
        }
        if sub and sold and plan_rank(sold.plan) <= plan_rank(purchase.plan):
            # The subscription it replaces stops at the end of the period paid for
            # (billing.checkout._subscriptions_end_after_oneoff): said here, in the one
            # message of this purchase, not in a second "cancellation scheduled".
            context["subscription_ends_at"] = subscription_period(sub)[1]
    elif invoice and invoice.get("status") == "paid":
        # Stripe's amount, VAT and discounts included (a trial's upgrade: 0).
        context["amount_paid"] = int(invoice.get("amount_paid") or 0)
        context["currency"] = invoice.get("currency") or ""
        if paid_at := (invoice.get("status_transitions") or {}).get("paid_at"):
            context["from"] = int(paid_at)
    return PlanMessage(Notice.PLAN_UPGRADED, key, context)


def _downgraded(plan_change: PlanChange, key: str) -> PlanMessage | None:
    """A live subscription now sells the lower plan (a scheduled downgrade at the
    renewal): from its new period's start, and Stripe's preview of the next charge. A
    lower plan left by something else (a subscription ended beside a one-off or a comp)
    tells nothing here."""
    sub = live_subscription(plan_change.user)
    sold = subscription_sells(sub) if sub else None
    if not sub or not sold or sold.plan != plan_change.new_plan:
        return None
    start = subscription_period(sub)[0]
    context: dict[str, Any] = {
        "old_plan": plan_change.old_plan,
        "subscription_id": sub["id"],
        "from": start or _ts(plan_change.created_at),
    }
    charge = next_charge_for(sub["id"])
    if charge is not None:
        context |= {
            "next_amount": charge.amount_due,
            "currency": charge.currency,
            "next_charge_at": _ts(charge.due_at),
        }
    return PlanMessage(Notice.PLAN_DOWNGRADED, key, context)


def _override_for(plan_change: PlanChange, *, active: bool) -> PlanOverride | None:
    overrides = PlanOverride.objects.filter(user_id=plan_change.user_id)
    if active:
        overrides = overrides.filter(PlanOverride.active_q(), plan=plan_change.new_plan)
    else:
        overrides = overrides.filter(
            plan=plan_change.old_plan,
            revoked_at__isnull=True,
            expires_at__lte=timezone.now(),
        )
    return overrides.order_by("-created_at").first()


def _comp_granted(plan_change: PlanChange, key: str) -> PlanMessage | None:
    override = _override_for(plan_change, active=True)
    if override is None:
        return None
    context: dict[str, Any] = {"old_plan": plan_change.old_plan}
    if override.expires_at is not None:
        context["until"] = _ts(override.expires_at)
    return PlanMessage(Notice.COMP_GRANTED, key, context)


def _comp_ended(plan_change: PlanChange, key: str) -> PlanMessage | None:
    """The plan went down because a comp of the old plan ran out (billing.tasks'
    override sweep). A revoke is staff's (source staff); reconcile's other changes are
    corrections, told by nobody."""
    override = _override_for(plan_change, active=False)
    if override is None or override.expires_at is None:
        return None
    return PlanMessage(
        Notice.COMP_ENDED,
        key,
        {"old_plan": plan_change.old_plan, "ended_at": _ts(override.expires_at)},
    )


def _ts(moment: datetime | int) -> int:
    return moment if isinstance(moment, int) else int(moment.timestamp())
