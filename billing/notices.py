"""Which Stripe events the customer is told about, and whether that is still true.

Called from the event handlers (billing/handlers.py), inside dj-stripe's transaction,
after dj-stripe has re-read the event's object from Stripe and stored it. Each function
decides from that synced copy, not from the payload alone: Stripe delivers late, twice and
out of order, so a `invoice.payment_failed` may arrive after the invoice was paid, and
must then tell nobody anything. What is told goes out as `billing.signals.customer_notice`
(the outbox in `onboarding` listens), keyed so that a duplicate delivery tells it once.

`notice_stale_reason` asks the same question again when the message is about to be sent
(the worker may run minutes later): a payment failure paid meanwhile is not sent.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import stripe
from django.utils import timezone
from djstripe.models import Event, Invoice, Subscription

from accounts.models import User
from billing.dunning import (
    RENEWAL_REASONS,
    decision_now,
    grace_ends_at,
    renewal_invoices_load,
    still_retrying,
    stripe_now_load,
)
from billing.dunning_end import PAID_AFTER_END_REFUND_KEY
from billing.event_scope import synced_data
from billing.next_charge import next_charge_for
from billing.signals import Notice, customer_notice
from billing.stripe_api import (
    ENDED_BY_ONEOFF,
    api_kwargs,
    invoice_asked_for_authentication,
)
from billing.stripe_layout import invoice_subscription_id, subscription_period
from billing.subscriptions import (
    ENDED_STATUSES,
    LIVE_STATUSES,
    STILL_BILLING_STATUSES,
    subscription_sells,
)

logger = logging.getLogger(__name__)

_TROUBLE_EVENTS = ["invoice.payment_failed", "invoice.payment_action_required"]
# The metadata key of a refund billing.duplicates made (the cancelled subscription's id).
DUPLICATE_REFUND_KEY = "duplicate_subscription"


def _invoice_current(invoice_id: str) -> dict[str, Any]:
    synced = synced_data(Invoice, invoice_id)
    return synced or stripe.Invoice.retrieve(invoice_id, **api_kwargs()).to_dict()


def _subscription_current(subscription_id: str) -> dict[str, Any] | None:
    if not subscription_id:
        return None
    data: dict[str, Any] | None = synced_data(Subscription, subscription_id)
    return data


def _notify(*, user: User, kind: Notice, key: str, event: Event, context: dict[str, Any]) -> None:
    logger.info("Notice %s (%s) for user %s from %s", kind, key, user.pk, event.id)
    customer_notice.send(
        sender=Notice,
        user=user,
        kind=kind,
        key=key,
        stripe_event_id=event.id,
        context=context,
    )


def _skip(event: Event, why: str) -> None:
    logger.info("Event %s (%s): nobody told: %s", event.id, event.type, why)


def invoice_trouble_notify(*, user: User, event: Event) -> None:
    """`invoice.payment_failed` / `invoice.payment_action_required` of a subscription
    invoice with an amount: tell the customer, once per attempt, while the invoice is
    still open and that attempt is still the latest.

    An attempt stopped by 3-D Secure gets both events, in any order: each is told as
    "please confirm" (the same notice, so the outbox keeps one), never "failed"."""
    payload = event.data["object"]
    invoice = _invoice_current(payload["id"])
    subscription_id = invoice_subscription_id(invoice)
    if not subscription_id or not invoice.get("amount_due"):
        return _skip(event, "not a subscription invoice with an amount")
    if invoice.get("status") != "open":
        return _skip(event, f"the invoice is {invoice.get('status')} now")
    attempt = int(payload.get("attempt_count") or 0)
    if int(invoice.get("attempt_count") or 0) > attempt:
        return _skip(event, f"attempt {attempt} is not the latest; the later one is told")
    sub = _subscription_current(subscription_id)
    if sub is not None and sub.get("status") not in STILL_BILLING_STATUSES - {"unpaid"}:
        return _skip(event, f"the subscription is {sub.get('status')}: the plan has ended")
    if (sub or {}).get("status") == "incomplete" and invoice.get("billing_reason") == (
        "subscription_create"
    ):
        # A first payment by bank debit that the bank refused: told once, as the
        # checkout's own "bank debit failed" (bank_debit_failed_notify), never "we will
        # try again".
        return _skip(event, "a first payment by bank debit: told by its checkout")
    kind = (
        Notice.PAYMENT_ACTION_REQUIRED
        if event.type == "invoice.payment_action_required"
        or invoice_asked_for_authentication(invoice)
        else Notice.PAYMENT_FAILED
    )
    renewal = invoice.get("billing_reason") in RENEWAL_REASONS
    retrying = still_retrying(invoice)
    if renewal and not retrying and (kind == Notice.PAYMENT_FAILED or attempt > 1):
        # Stripe's last attempt: the plan ends with it, and "your plan has ended" (from
        # the plan change) is the one message; never also "payment failed".
        return _skip(event, "Stripe no longer retries the renewal: the plan-ended message tells")
    ends = grace_ends_at(invoice) if renewal else None
    if ends is not None and event.created >= ends:
        return _skip(event, "an attempt after the grace ended: the plan has ended already")
    next_attempt = invoice.get("next_payment_attempt")
    # A retry is promised only while it can still keep the plan (the grace) or the
    # change it pays for (a pending upgrade lapses when its update expires).
    until = ends or _pending_update_expires(sub)
    if next_attempt and until and _ts(next_attempt) >= until:
        next_attempt = None
    context = {
        "invoice_id": invoice["id"],
        "subscription_id": subscription_id,
        "attempt_count": attempt,
        "amount_due": invoice.get("amount_remaining") or invoice["amount_due"],
        "currency": invoice.get("currency") or "",
        "next_payment_attempt": next_attempt,
        "hosted_invoice_url": invoice.get("hosted_invoice_url") or "",
        # When the plan's features stop unless this is paid (a renewal's grace end).
        "plan_ends_at": int(ends.timestamp()) if ends else None,
        "renewal": renewal,
    }
    if kind == Notice.PAYMENT_FAILED and (pending := _upgrade_pending(invoice, sub)):
        # A declined upgrade (pending_if_incomplete): nothing changed, and no retry can
        # be promised past the pending update's expiry, when Stripe voids the invoice.
        kind = Notice.UPGRADE_DECLINED
        context |= pending
        context["next_payment_attempt"] = None
    _notify(user=user, kind=kind, key=f"{invoice['id']}:{attempt}", event=event, context=context)


def _upgrade_pending(invoice: dict[str, Any], sub: dict[str, Any] | None) -> dict[str, Any]:
    """The plan an unpaid upgrade invoice would give and until when it can still be paid
    (the subscription's `pending_update` it was raised for), or {} for any other invoice."""
    if invoice.get("billing_reason") != "subscription_update" or sub is None:
        return {}
    pending = sub.get("pending_update") or {}
    latest = sub.get("latest_invoice")
    latest_id = latest.get("id") if isinstance(latest, dict) else latest
    if not pending or latest_id != invoice["id"]:
        return {}
    sold = subscription_sells({"items": {"data": pending.get("subscription_items") or []}})
    return {
        "to_plan": sold.plan.value if sold else "",
        "expires_at": pending.get("expires_at"),
    }


def _ts(value: Any) -> datetime:
    return datetime.fromtimestamp(int(value), tz=UTC)


def _pending_update_expires(sub: dict[str, Any] | None) -> datetime | None:
    expires = ((sub or {}).get("pending_update") or {}).get("expires_at")
    return _ts(expires) if expires else None


def invoice_paid_notify(*, user: User, event: Event) -> None:
    """`invoice.paid` after an earlier failed or unauthenticated attempt, with the
    subscription active again: "payment received", once per invoice."""
    invoice = _invoice_current(event.data["object"]["id"])
    subscription_id = invoice_subscription_id(invoice)
    if not subscription_id or invoice.get("status") != "paid":
        return
    # Stripe counts only automatic retries in attempt_count, so a customer who paid on
    # the hosted page after one failure still has 1: the stored failure events say it.
    failed_before = (
        int(invoice.get("attempt_count") or 0) > 1
        or Event.objects.filter(type__in=_TROUBLE_EVENTS, data__object__id=invoice["id"]).exists()
    )
    if not failed_before:
        return
    if invoice.get("billing_reason") == "subscription_update":
        # An upgrade paid after a decline: its plan change is the message
        # (billing.messages: "you're now on ..."), not a second "payment received".
        return _skip(event, "an upgrade's invoice: the upgrade itself is told")
    sub = _subscription_current(subscription_id)
    if sub is None or sub.get("status") not in LIVE_STATUSES:
        return _skip(event, "paid, but the subscription is not active")
    context = {
        "invoice_id": invoice["id"],
        "subscription_id": subscription_id,
        "amount_paid": invoice.get("amount_paid") or 0,
        "currency": invoice.get("currency") or "",
    }
    _notify(
        user=user, kind=Notice.PAYMENT_RECOVERED, key=invoice["id"], event=event, context=context
    )


def _cancel_scheduled(sub: dict[str, Any]) -> bool:
    return bool(sub.get("cancel_at_period_end") or sub.get("cancel_at"))


def _ends_at(sub: dict[str, Any]) -> int | None:
    return sub.get("cancel_at") or subscription_period(sub)[1]


def subscription_updated_notify(*, user: User, event: Event) -> None:
    """`customer.subscription.updated` that turned a cancellation on (at period end or at
    a date): "your plan will end on", once per such event, if it is still scheduled; one
    that turned it off: "your cancellation is undone", if it still is."""
    previous = event.data.get("previous_attributes") or {}
    payload = event.data["object"]
    was_scheduled = bool(previous.get("cancel_at_period_end") or previous.get("cancel_at"))
    turned_on = (
        "cancel_at_period_end" in previous or "cancel_at" in previous
    ) and not was_scheduled
    if was_scheduled and not _cancel_scheduled(payload):
        return _resumed_notify(user=user, event=event)
    if not (turned_on and _cancel_scheduled(payload)):
        return
    sub = _subscription_current(payload["id"])
    if sub is None or not _cancel_scheduled(sub) or sub.get("status") not in LIVE_STATUSES:
        return _skip(event, "the cancellation is no longer scheduled")
    if (sub.get("metadata") or {}).get(ENDED_BY_ONEOFF):
        return _skip(event, "a one-off replaces the subscription: its own message says so")
    context = {"subscription_id": sub["id"], "ends_at": _ends_at(sub)}
    _notify(
        user=user, kind=Notice.CANCELLATION_SCHEDULED, key=event.id, event=event, context=context
    )


def _resumed_notify(*, user: User, event: Event) -> None:
    """A cancellation undone: "your cancellation is undone; it renews on <date> for
    <Stripe's preview>", once per such event, if the subscription still goes on."""
    sub = _subscription_current(event.data["object"]["id"])
    if sub is None or _cancel_scheduled(sub) or sub.get("status") not in LIVE_STATUSES:
        return _skip(event, "the subscription is not going on (cancelled again, or ended)")
    charge = next_charge_for(sub["id"])
    context: dict[str, Any] = {
        "subscription_id": sub["id"],
        "currency": charge.currency if charge else sub.get("currency") or "",
    }
    if charge is not None:  # else the renewal's amount is not known yet: not guessed
        context["amount"] = charge.amount_due
        context["renews_at"] = int(charge.due_at.timestamp())
    else:
        context["renews_at"] = subscription_period(sub)[1]
    _notify(user=user, kind=Notice.SUBSCRIPTION_RESUMED, key=event.id, event=event, context=context)


def _trial_ending(sub: dict[str, Any] | None) -> bool:
    return bool(sub and sub.get("status") == "trialing" and not _cancel_scheduled(sub))


def trial_will_end_notify(*, user: User, event: Event) -> None:
    """`customer.subscription.trial_will_end` (three days before): "your trial ends on",
    with what is charged then, once per trial, while the subscription is still on that
    trial and not set to end (a customer who cancelled is charged nothing)."""
    sub = _subscription_current(event.data["object"]["id"])
    if sub is None or not _trial_ending(sub):
        return _skip(event, "the subscription is not on a trial that goes on to be paid")
    # The plan's item says how often the trial goes on to be charged, not an add-on.
    sold = subscription_sells(sub)
    item = sold.item if sold else ((sub.get("items") or {}).get("data") or [{}])[0]
    price = item.get("price") or {}
    context = {
        "subscription_id": sub["id"],
        "trial_end": sub.get("trial_end"),
        # What Stripe will charge when the trial ends (its preview: tax and discounts).
        "amount": charge.amount_due if (charge := next_charge_for(sub["id"])) else None,
        "currency": sub.get("currency") or "",
        "interval": (price.get("recurring") or {}).get("interval") or "month",
    }
    _notify(
        user=user,
        kind=Notice.TRIAL_ENDING,
        key=f"{sub['id']}:{sub.get('trial_end')}",
        event=event,
        context=context,
    )


def charge_refunded_notify(*, user: User, event: Event) -> None:
    """`charge.refunded`: "your refund", once per event, with the amount of this refund
    (the event's amount_refunded less the one before it: partial refunds add up)."""
    payload = event.data["object"]
    previous = event.data.get("previous_attributes") or {}
    total = int(payload.get("amount_refunded") or 0)
    amount = total - int(previous.get("amount_refunded") or 0)
    if amount <= 0:
        return _skip(event, "no amount refunded by this event")
    if _duplicate_refund(payload):
        return _skip(
            event,
            "a refund whose own message says so (a second subscription's, "
            "or a payment made after the plan ended)",
        )
    user.refresh_from_db(fields=["plan"])
    context = {
        "charge_id": payload["id"],
        "amount_refunded": amount,
        "total_refunded": total,
        "charge_amount": int(payload.get("amount") or 0),
        "currency": payload.get("currency") or "",
        "full": bool(payload.get("refunded")),
        "plan_after": user.plan,
    }
    _notify(user=user, kind=Notice.REFUND, key=event.id, event=event, context=context)


def _duplicate_refund(charge: dict[str, Any]) -> bool:
    """Whether the charge was refunded because it paid a second subscription
    (billing.duplicates), which duplicate_subscription_notify has told already."""
    intent = charge.get("payment_intent")
    intent_id = intent.get("id") if isinstance(intent, dict) else intent
    if not intent_id:
        return False
    refunds = stripe.Refund.list(payment_intent=intent_id, limit=10, **api_kwargs())
    # (And a refund of a payment made after the plan ended: billing/dunning_end.py.)
    return any(
        (metadata := refund.to_dict().get("metadata") or {}).get(DUPLICATE_REFUND_KEY)
        or metadata.get(PAID_AFTER_END_REFUND_KEY)
        for refund in refunds.data
    )


def duplicate_subscription_notify(
    *,
    user: User,
    subscription_id: str,
    kept_subscription_id: str,
    kept_plan: str | None,
    amount_refunded: int,
    currency: str,
    stripe_event_id: str = "",
) -> None:
    """A second live subscription was cancelled at once and its payment refunded
    (billing.duplicates): told once per cancelled subscription, with Stripe's refunded
    amount (0: it had charged nothing, a trial)."""
    context: dict[str, Any] = {
        "subscription_id": subscription_id,
        "kept_subscription_id": kept_subscription_id,
        "kept_plan": kept_plan,
        "currency": currency,
    }
    if amount_refunded:  # absent: the message says nothing was charged
        context["amount_refunded"] = amount_refunded
    logger.info(
        "Notice %s (%s) for user %s", Notice.DUPLICATE_SUBSCRIPTION, subscription_id, user.pk
    )
    customer_notice.send(
        sender=Notice,
        user=user,
        kind=Notice.DUPLICATE_SUBSCRIPTION,
        key=subscription_id,
        stripe_event_id=stripe_event_id,
        context=context,
    )


def plan_end_reason(user: User) -> str:
    """Why `user`'s subscription plan ended, as far as the synced subscriptions say:
    "payment_failed" (Stripe gave up collecting), "cancelled", or "" (not known)."""
    sub = (
        Subscription.objects.filter(customer__subscriber=user)
        .order_by("-created")
        .values_list("stripe_data", flat=True)
        .first()
    )
    if not sub:
        return ""
    status = sub.get("status")
    details = sub.get("cancellation_details") or {}
    if status in ("past_due", "unpaid", "incomplete_expired") or (
        status == "canceled" and details.get("reason") == "payment_failed"
    ):
        return "payment_failed"
    return "cancelled" if status == "canceled" else ""


def plan_end_details(user: User) -> dict[str, Any]:
    """What "your plan has ended" says of a plan that ended for a failed payment, from the
    synced rows: the day it ended on Stripe's clock (when Stripe ended the subscription,
    else the grace's end) and the renewal left unpaid. Empty when it was not a failed
    payment (plan_end_reason)."""
    sub = (
        Subscription.objects.filter(customer__subscriber=user)
        .order_by("-created")
        .values_list("stripe_data", flat=True)
        .first()
    )
    if not sub or plan_end_reason(user) != "payment_failed":
        return {}
    invoice = renewal_invoices_load([sub]).get(sub.get("id") or "")
    if invoice is None or invoice.get("billing_reason") not in RENEWAL_REASONS:
        invoice = None
    grace_end = grace_ends_at(invoice) if invoice else None
    ended = sub.get("ended_at") or (int(grace_end.timestamp()) if grace_end else None)
    # Stripe gave up (the subscription ended, or it no longer retries): nothing more is
    # taken. Else a late retry may still pay it, and the plan comes back.
    details: dict[str, Any] = {
        "ended_at": ended,
        "collection_over": sub.get("status") in ("canceled", "unpaid")
        or not still_retrying(invoice),
    }
    if invoice is not None:
        details["amount_unpaid"] = int(
            invoice.get("amount_remaining") or invoice.get("amount_due") or 0
        )
        details["currency"] = invoice.get("currency") or ""
    return details


def notice_stale_reason(*, kind: str, context: dict[str, Any]) -> str:
    """Why a queued notice is no longer true and must not be sent, or "".

    Reads dj-stripe's synced rows only (the outbox's worker calls it before sending).
    """
    if kind in (Notice.PAYMENT_FAILED, Notice.PAYMENT_ACTION_REQUIRED, Notice.UPGRADE_DECLINED):
        invoice = (
            Invoice.objects.filter(id=context.get("invoice_id", ""))
            .values_list("stripe_data", flat=True)
            .first()
        )
        if invoice and invoice.get("status") != "open":
            return f"the invoice is {invoice.get('status')} now"
        if invoice and int(invoice.get("attempt_count") or 0) > int(
            context.get("attempt_count") or 0
        ):
            return "a later payment attempt replaced this one"
        sub = _subscription_current(context.get("subscription_id", ""))
        if sub and (sub.get("status") in ENDED_STATUSES or sub.get("status") == "unpaid"):
            # Its invoices are voided: no link to pay for a plan that has ended.
            return f"the subscription is {sub.get('status')}: the plan has ended"
        if invoice and (ends_at := context.get("plan_ends_at")):
            # The grace ran out before the worker got to it (a clock that moved days at
            # once, a backlog): "your plan ends on" is past, and the plan-ended message
            # tells what happened instead.
            customer = invoice.get("customer") or ""
            stripe_now = stripe_now_load([customer]).get(customer)
            if decision_now(now=timezone.now(), stripe_now=stripe_now) >= _ts(ends_at):
                return "the grace ended before it was sent: the plan-ended message tells"
    if kind == Notice.TRIAL_ENDING:
        sub = _subscription_current(context.get("subscription_id", ""))
        if sub and not _trial_ending(sub):
            return "the trial ended or was cancelled meanwhile"
    if kind == Notice.SUBSCRIPTION_RESUMED:
        sub = _subscription_current(context.get("subscription_id", ""))
        if sub and (_cancel_scheduled(sub) or sub.get("status") not in LIVE_STATUSES):
            return "the subscription was cancelled again, or has ended"
    if kind == Notice.CANCELLATION_SCHEDULED:
        sub = _subscription_current(context.get("subscription_id", ""))
        # Ended already (cancelled at once, or Stripe gave up): not "undone".
        if sub and sub.get("status") in ("canceled", "incomplete_expired"):
            return "the subscription has ended already, before the planned date"
        if sub and not _cancel_scheduled(sub):
            return "the cancellation was undone (the subscription was resumed)"
    return ""


def bank_debit_failed_notify(*, user: User, event: Event, plan: str, amount: int | None) -> None:
    """`checkout.session.async_payment_failed`: the bank refused the debit that paid the
    checkout; nothing was taken and the plan did not change. Told once per session."""
    session = event.data["object"]
    context = {
        "session_id": session["id"],
        "amount": amount if amount is not None else session.get("amount_total"),
        "currency": session.get("currency") or "",
        "bought_plan": plan,
    }
    _notify(
        user=user, kind=Notice.BANK_DEBIT_FAILED, key=session["id"], event=event, context=context
    )
