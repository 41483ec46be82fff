"""What SmartFlow does on each Stripe event: `HANDLERS`, one function per event type.

billing/webhooks.py calls `HANDLERS[event.type](event)` after dj-stripe has stored the
event and re-read and synced its object, inside the worker's transaction
(billing/webhook_queue.py), under the customer's lock. Each handler, in this order:
finds the user once (billing/payers.py), syncs what the plan rule reads, refreshes the
plan (billing.entitlements.plan_refresh, which sends `plan_changed`), then decides what
the customer is told (billing.notices, which send `customer_notice`: the notice reads
the state just synced and refreshed).

A payload is a trigger, not the truth: each handler re-reads the authoritative state and
asks entitlements for the plan. All are safe to run twice, in any order. Unknown objects
are logged and recorded for staff; Stripe errors raise, so the worker retries the event
(or, for an object deleted at Stripe, records it for staff).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import stripe
from django.utils import timezone
from djstripe.models import Charge, Event, Session, Subscription

from accounts.models import User
from billing.alerts import alert_record
from billing.checkout import (
    _subscription_sync,
    checkout_fulfil,
    pending_payment_failed,
    retried_invoice_sync,
)
from billing.disputes import (
    dispute_alert_record,
    dispute_current,
    dispute_payment_intent,
    purchase_dispute_apply,
)
from billing.dunning_end import paid_after_end_refund, unpaid_invoices_close
from billing.duplicates import duplicate_subscriptions_resolve
from billing.entitlements import plan_refresh
from billing.event_scope import synced_data
from billing.models import BillingAlert, OneOffPurchase, PlanChange
from billing.next_charge import next_charge_refresh
from billing.notices import (
    bank_debit_failed_notify,
    charge_refunded_notify,
    invoice_paid_notify,
    invoice_trouble_notify,
    subscription_updated_notify,
    trial_will_end_notify,
)
from billing.payers import (
    charge_purchase_and_user,
    dispute_purchase_and_user,
    invoice_user,
    subscription_user,
    user_find,
)
from billing.stripe_api import api_kwargs
from billing.stripe_layout import invoice_subscription_id
from billing.subscriptions import DUNNING_STATUSES

logger = logging.getLogger(__name__)


# --- Checkout ----------------------------------------------------------------------------


def checkout_session_completed(event: Event) -> None:
    """checkout.session.completed and .async_payment_succeeded: fulfil (a payer with no
    account gets one; checkout_fulfil refreshes the plan)."""
    if found := _checkout_session_fulfil(event):
        _new_subscription_next_charge(*found)


def checkout_session_async_payment_failed(event: Event) -> None:
    """The bank refused the debit that paid the checkout: fulfil as above (nothing was
    bought), then tell the payer if the session's payment is still the one that failed."""
    if not (found := _checkout_session_fulfil(event)):
        return
    session, user = found
    _new_subscription_next_charge(session, user)
    if pending_payment_failed(session=session, user=user):
        plan = (session.get("metadata") or {}).get("plan") or ""
        bank_debit_failed_notify(user=user, event=event, plan=plan, amount=None)


def _checkout_session_fulfil(event: Event) -> tuple[dict[str, Any], User] | None:
    payload = event.data["object"]
    synced = Session.objects.filter(id=payload["id"]).values_list("stripe_data", flat=True).first()
    session = synced or payload
    user = user_find(
        customer_id=_id(session.get("customer")),
        metadata=session.get("metadata"),
        email=(session.get("customer_details") or {}).get("email"),
        create=True,
    )
    if user is None:
        _no_user(event, payload["id"])
        return None
    checkout_fulfil(session=session, user=user, stripe_event_id=event.id)
    return session, user


def _new_subscription_next_charge(session: dict[str, Any], user: User) -> None:
    if subscription_id := _id(session.get("subscription")):
        # The new subscription's next charge, without waiting for its own events.
        next_charge_refresh(user=user, subscription_id=subscription_id)


# --- Subscriptions -----------------------------------------------------------------------


def subscription_created_or_deleted(event: Event) -> None:
    """customer.subscription.created and .deleted."""
    subscription = event.data["object"]
    if (user := subscription_user(subscription)) is None:
        return _no_user(event, subscription["id"])
    _subscription_follow(user=user, subscription_id=subscription["id"], event=event)


def subscription_updated(event: Event) -> None:
    subscription = event.data["object"]
    if (user := subscription_user(subscription)) is None:
        return _no_user(event, subscription["id"])
    _subscription_follow(user=user, subscription_id=subscription["id"], event=event)
    # A cancellation scheduled or undone.
    subscription_updated_notify(user=user, event=event)


def _subscription_follow(*, user: User, subscription_id: str, event: Event) -> None:
    """What a subscription's own event changes. dj-stripe has already re-read the
    subscription from Stripe, so its row is current even when this event is older than
    one already processed."""
    # The invoice Stripe is retrying (see checkout.retried_invoice_sync).
    synced = synced_data(Subscription, subscription_id)
    if synced:
        retried_invoice_sync(synced)
    # A second live subscription (raced checkouts, or made in Stripe's dashboard) is
    # undone before the plan is decided.
    duplicate_subscriptions_resolve(user=user, stripe_event_id=event.id)
    # Before the plan: a change's message quotes Stripe's next charge (billing.messages).
    next_charge_refresh(user=user, subscription_id=subscription_id)
    plan_refresh(user=user, source=PlanChange.Source.SUBSCRIPTION, stripe_event_id=event.id)
    # Ended unpaid (dunning gave up): its open invoices can no longer be paid.
    unpaid_invoices_close(subscription_id=subscription_id)


def subscription_trial_will_end(event: Event) -> None:
    subscription = event.data["object"]
    if (user := subscription_user(subscription)) is None:
        return _no_user(event, subscription["id"])
    # dj-stripe has re-read the subscription: the notice reads that copy.
    trial_will_end_notify(user=user, event=event)


# --- Invoices ----------------------------------------------------------------------------


def invoice_paid(event: Event) -> None:
    invoice = event.data["object"]
    if (user := invoice_user(invoice)) is None:
        return _no_user(event, invoice["id"])
    subscription_id = _invoice_subscription_follow(user=user, invoice=invoice)
    plan_refresh(user=user, source=PlanChange.Source.INVOICE, stripe_event_id=event.id)
    if subscription_id:
        unpaid_invoices_close(subscription_id=subscription_id)
        # Paid after its subscription ended (a hosted page left open, an uncollectible
        # invoice): it buys nothing, so it is given back.
        paid_after_end_refund(user=user, invoice_id=invoice["id"], stripe_event_id=event.id)
    # "Payment recovered", if an earlier attempt failed.
    invoice_paid_notify(user=user, event=event)


def invoice_payment_failed(event: Event) -> None:
    invoice = event.data["object"]
    if (user := invoice_user(invoice)) is None:
        return _no_user(event, invoice["id"])
    subscription_id = _invoice_subscription_follow(user=user, invoice=invoice)
    plan_refresh(user=user, source=PlanChange.Source.INVOICE, stripe_event_id=event.id)
    if subscription_id:
        unpaid_invoices_close(subscription_id=subscription_id)
    invoice_trouble_notify(user=user, event=event)


def invoice_payment_action_required(event: Event) -> None:
    """The card asks for authentication: nothing to sync, the plan is unchanged."""
    invoice = event.data["object"]
    if (user := invoice_user(invoice)) is None:
        return _no_user(event, invoice["id"])
    invoice_trouble_notify(user=user, event=event)


def _invoice_subscription_follow(*, user: User, invoice: dict[str, Any]) -> str:
    """The invoice's subscription id ("" for an invoice of none), synced. The invoice
    changes the subscription's status; read it now rather than wait for
    customer.subscription.updated, which may arrive later or not at all. (A late event of
    an older invoice, say the first one's invoice.paid, can find the subscription
    past_due on a renewal whose own events have not come yet: _subscription_sync reads
    that renewal's invoice too.)"""
    subscription_id = invoice_subscription_id(invoice)
    if subscription_id:
        _subscription_sync(subscription_id)
        # Before the plan: a change's message quotes Stripe's next charge.
        next_charge_refresh(user=user, subscription_id=subscription_id)
    return subscription_id


# --- Charges and disputes ----------------------------------------------------------------


def charge_refunded(event: Event) -> None:
    payload = event.data["object"]
    # Whether it was refunded is Stripe's word, not the payload's: dj-stripe has just
    # re-read the charge and stored it.
    charge = (
        Charge.objects.filter(id=payload["id"]).values_list("stripe_data", flat=True).first()
        or stripe.Charge.retrieve(payload["id"], **api_kwargs()).to_dict()
    )
    purchase, user = charge_purchase_and_user(charge)
    if user is None:
        return _no_user(event, charge["id"])
    if purchase and charge.get("refunded") and purchase.refunded_at is None:
        # Only a full refund takes the plan away; a partial one is goodwill.
        OneOffPurchase.objects.filter(pk=purchase.pk).update(refunded_at=timezone.now())
    plan_refresh(user=user, source=PlanChange.Source.REFUND, stripe_event_id=event.id)
    charge_refunded_notify(user=user, event=event)


def charge_dispute(event: Event) -> None:
    """Any dispute event: record the dispute's current state (dj-stripe has just re-read
    it) on its one-off purchase, recompute the plan and tell staff. The same for every
    event type, so duplicates and any order end in the state Stripe holds."""
    payload = event.data["object"]
    if payload.get("object") != "dispute":
        return
    dispute = dispute_current(payload["id"])
    purchase, user = dispute_purchase_and_user(dispute_payment_intent(dispute))
    dispute_alert_record(
        dispute,
        who=user.email if user else "an unknown customer",
        purchase=purchase,
        stripe_event_id=event.id,
    )
    if purchase:
        purchase_dispute_apply(purchase, dispute)
    if user is not None:
        plan_refresh(user=user, source=PlanChange.Source.DISPUTE, stripe_event_id=event.id)


# --- Test clocks -------------------------------------------------------------------------


def clock_ready(event: Event) -> None:
    """A test clock finished advancing (test mode: Stripe's test clocks, the sandbox's
    `advance`): decide again the plan of every customer on it whose renewal is failing,
    at the clock's time (billing/dunning.py reads the stored event as Stripe's "now"), so
    a grace that ended on the way drops the plan then, as it would at the real time."""
    clock = event.data["object"]
    user_ids = (
        Subscription.objects.filter(
            livemode=False,
            stripe_data__status__in=sorted(DUNNING_STATUSES),
            customer__stripe_data__test_clock=clock["id"],
            customer__subscriber__isnull=False,
        )
        .values_list("customer__subscriber_id", flat=True)
        .distinct()
    )
    for user in User.objects.filter(pk__in=list(user_ids)).order_by("pk"):
        # Source INVOICE: the unpaid renewal ends the plan, as at the grace's end.
        plan_refresh(user=user, source=PlanChange.Source.INVOICE, stripe_event_id=event.id)


# --- The table ---------------------------------------------------------------------------

# Every Stripe event type SmartFlow handles, each with its one handler (pay-rails' shape:
# lib/pay/stripe.rb). The live endpoint at Stripe is set to send these (docs/deploy.md);
# billing/webhooks.py connects the dispatch to exactly these types.
HANDLERS: dict[str, Callable[[Event], None]] = {
    "checkout.session.completed": checkout_session_completed,
    "checkout.session.async_payment_succeeded": checkout_session_completed,
    "checkout.session.async_payment_failed": checkout_session_async_payment_failed,
    "customer.subscription.created": subscription_created_or_deleted,
    "customer.subscription.updated": subscription_updated,
    "customer.subscription.deleted": subscription_created_or_deleted,
    "customer.subscription.trial_will_end": subscription_trial_will_end,
    "invoice.paid": invoice_paid,
    "invoice.payment_failed": invoice_payment_failed,
    "invoice.payment_action_required": invoice_payment_action_required,
    "charge.refunded": charge_refunded,
    "charge.dispute.created": charge_dispute,
    "charge.dispute.updated": charge_dispute,
    "charge.dispute.closed": charge_dispute,
    "charge.dispute.funds_withdrawn": charge_dispute,
    "charge.dispute.funds_reinstated": charge_dispute,
    # Test mode only: Stripe's test clocks, the sandbox's `advance`.
    "test_helpers.test_clock.ready": clock_ready,
}


def _no_user(event: Event, stripe_id: str) -> None:
    logger.warning("Event %s (%s): no user for %s; nothing to do", event.id, event.type, stripe_id)
    alert_record(
        kind=BillingAlert.Kind.NO_USER,
        stripe_id=stripe_id,
        detail=f"{event.type} for an unknown customer",
        stripe_event_id=event.id,
    )


def _id(value: Any) -> str:
    return value.get("id", "") if isinstance(value, dict) else (value or "")
