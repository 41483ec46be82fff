"""When dunning ends with the subscription ended unpaid: its open invoices are closed, and
money that arrives for one anyway is given back.

Stripe, on cancelling a subscription, only stops the automatic collection of its open
invoices: they stay open, with a hosted page that still takes a card. A customer who
confirms an old "please confirm your payment" link after the plan has ended would pay
£49 for nothing. So, in the worker, when a subscription has ended unpaid (cancelled by
dunning, or `unpaid`), each of its open invoices is voided, or marked uncollectible when
`BILLING_UNPAID_INVOICES` says so (mirror the Stripe account's "if all retries for a
payment fail" invoice setting). An uncollectible invoice can still be paid at Stripe, and
a payment can race the voiding: an `invoice.paid` for a subscription that has ended is
refunded at once, staff get a BillingAlert and the customer a message saying so.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import stripe
from django.conf import settings
from django.db.models import F
from django.utils import timezone
from djstripe.models import Invoice, Subscription
from djstripe.settings import djstripe_settings

from accounts.models import User
from billing.alerts import alert_record
from billing.event_scope import synced_data
from billing.models import BillingAlert
from billing.signals import Notice, customer_notice
from billing.stripe_api import api_kwargs, invoice_payments_refund
from billing.stripe_layout import invoice_subscription_id
from billing.subscriptions import ENDED_STATUSES

logger = logging.getLogger(__name__)

# The metadata key of a refund made here (the ended subscription's id): the refund's own
# charge.refunded is then not told again as a plain refund (billing/notices.py).
PAID_AFTER_END_REFUND_KEY = "paid_after_subscription_ended"
# dj-stripe's invoice sync wants the discounts as objects (billing/checkout.py).
_INVOICE_EXPAND = ["discounts", "lines.data.discounts"]


def ended_unpaid(sub: Mapping[str, Any]) -> bool:
    """Whether Stripe gave up collecting the subscription: `unpaid`, or cancelled for a
    failed payment (dunning's end)."""
    status = sub.get("status")
    reason = (sub.get("cancellation_details") or {}).get("reason")
    return status == "unpaid" or (status == "canceled" and reason == "payment_failed")


def unpaid_invoices_close(*, subscription_id: str) -> list[str]:
    """Void (or mark uncollectible) the open invoices of a subscription that ended unpaid,
    as Stripe's synced copy says; returns their ids. Safe to run twice: only open
    invoices are closed, each with an idempotency key. A Stripe error raises (the worker
    retries the event)."""
    sub = synced_data(Subscription, subscription_id)
    if not sub or not ended_unpaid(sub):
        return []
    how = settings.BILLING_UNPAID_INVOICES
    closed = []
    found = stripe.Invoice.list(subscription=subscription_id, status="open", **api_kwargs())
    for invoice in found.auto_paging_iter():
        key = f"unpaid-invoice-{how}:{invoice['id']}"
        if how == "uncollectible":
            done = stripe.Invoice.mark_uncollectible(
                invoice["id"], idempotency_key=key, **api_kwargs()
            )
        else:
            done = stripe.Invoice.void_invoice(invoice["id"], idempotency_key=key, **api_kwargs())
        # Synced now: the billing page and queued messages stop offering it at once.
        current = stripe.Invoice.retrieve(done["id"], expand=_INVOICE_EXPAND, **api_kwargs())
        Invoice.sync_from_stripe_data(current, api_key=djstripe_settings.STRIPE_SECRET_KEY)
        logger.info(
            "Invoice %s of ended subscription %s (%s): %s",
            invoice["id"],
            subscription_id,
            sub.get("status"),
            current["status"],
        )
        closed.append(invoice["id"])
    return closed


def paid_after_end_refund(*, user: User, invoice_id: str, stripe_event_id: str) -> int:
    """`invoice.paid` for an invoice whose subscription has ended: refund the payment in
    full at once, raise a BillingAlert and tell the customer. Returns the amount refunded
    (0: nothing to do). Safe to run twice: the refund's idempotency key, the alert's
    uniqueness and the notice's key each make a repeat a no-op."""
    synced = synced_data(Invoice, invoice_id)
    subscription_id = invoice_subscription_id(synced or {})
    sub = synced_data(Subscription, subscription_id)
    # The synced copies first (the receiver has just re-read the subscription): nearly
    # every invoice.paid is for a live subscription and asks Stripe nothing more.
    if not sub or sub.get("status") not in ENDED_STATUSES:
        return 0
    invoice = stripe.Invoice.retrieve(invoice_id, **api_kwargs()).to_dict()
    if invoice.get("status") != "paid" or not invoice.get("amount_paid"):
        return 0
    refunded, currency = invoice_payments_refund(
        invoice_id,
        key="paid-after-end-refund",
        metadata={PAID_AFTER_END_REFUND_KEY: subscription_id, "invoice": invoice_id},
    )
    currency = currency or invoice.get("currency") or ""
    if not refunded:
        return 0
    logger.warning(
        "Invoice %s paid after subscription %s ended (%s): %s refunded",
        invoice_id,
        subscription_id,
        sub.get("status"),
        refunded,
    )
    alert, created = alert_record(
        kind=BillingAlert.Kind.PAID_AFTER_END,
        stripe_id=invoice_id,
        detail=(
            f"{user.email} paid invoice {invoice_id} after subscription "
            f"{subscription_id} had ended; the payment was refunded in full."
        ),
        stripe_event_id=stripe_event_id,
    )
    if not created:
        BillingAlert.objects.filter(pk=alert.pk).update(
            seen_count=F("seen_count") + 1, last_seen_at=timezone.now()
        )
    customer_notice.send(
        sender=Notice,
        user=user,
        kind=Notice.PAID_AFTER_END_REFUNDED,
        key=invoice_id,
        stripe_event_id=stripe_event_id,
        context={
            "invoice_id": invoice_id,
            "subscription_id": subscription_id,
            "amount_refunded": refunded,
            "currency": currency,
        },
    )
    return refunded
