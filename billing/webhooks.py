"""Receivers for Stripe's webhooks, called by dj-stripe after it has stored the event and
synced the object, inside the worker's transaction (billing/webhook_queue.py), under the
customer's lock.

A payload is a trigger, not the truth: each receiver finds the user, re-reads the
authoritative state and asks entitlements for the plan. All are safe to run twice.
Unknown objects are logged and left; Stripe errors raise, so the worker retries the event
(or, for an object deleted at Stripe, records it for staff).
"""

from __future__ import annotations

import logging
from typing import Any

import stripe
from django.utils import timezone
from djstripe.event_handlers import djstripe_receiver
from djstripe.models import (
    Charge,
    Event,
    Session,
    Subscription,
)

from accounts.models import User
from billing.alerts import alert_record
from billing.checkout import (
    _subscription_sync,
    checkout_fulfil,
    pending_payment_failed,
    retried_invoice_sync,
)
from billing.disputes import (
    DISPUTE_EVENTS,
    dispute_alert_record,
    dispute_current,
    dispute_payment_intent,
    purchase_dispute_apply,
)
from billing.dunning import DUNNING_STATUSES, TEST_CLOCK_READY
from billing.dunning_end import paid_after_end_refund, unpaid_invoices_close
from billing.duplicates import duplicate_subscriptions_resolve
from billing.entitlements import plan_refresh
from billing.models import BillingAlert, OneOffPurchase, PlanChange
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
from billing.standing import next_charge_refresh
from billing.stripe_api import api_kwargs
from billing.stripe_layout import invoice_subscription_id

logger = logging.getLogger(__name__)


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


@djstripe_receiver(
    [
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
        "checkout.session.async_payment_failed",
    ]
)
def on_checkout_session(sender: Any, event: Event, **kwargs: Any) -> None:
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
        return _no_user(event, payload["id"])
    checkout_fulfil(session=session, user=user, stripe_event_id=event.id)
    if event.type == "checkout.session.async_payment_failed" and pending_payment_failed(
        session=session, user=user
    ):
        plan = (session.get("metadata") or {}).get("plan") or ""
        bank_debit_failed_notify(user=user, event=event, plan=plan, amount=None)
    if subscription_id := _id(session.get("subscription")):
        # The new subscription's next charge, without waiting for its own events.
        next_charge_refresh(user=user, subscription_id=subscription_id)


@djstripe_receiver(
    [
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
    ]
)
def on_subscription(sender: Any, event: Event, **kwargs: Any) -> None:
    # dj-stripe has already re-read the subscription from Stripe, so its row is current
    # even when this event is older than one already processed.
    subscription = event.data["object"]
    user = subscription_user(subscription)
    if user is None:
        return _no_user(event, subscription["id"])
    _dunning_invoice_sync(subscription["id"])
    # A second live subscription (raced checkouts, or made in Stripe's dashboard) is
    # undone before the plan is decided.
    duplicate_subscriptions_resolve(user=user, stripe_event_id=event.id)
    # Before the plan: a change's message quotes Stripe's next charge (billing.messages).
    next_charge_refresh(user=user, subscription_id=subscription["id"])
    plan_refresh(user=user, source=PlanChange.Source.SUBSCRIPTION, stripe_event_id=event.id)
    # Ended unpaid (dunning gave up): its open invoices can no longer be paid.
    unpaid_invoices_close(subscription_id=subscription["id"])


def _dunning_invoice_sync(subscription_id: str) -> None:
    """The invoice Stripe is retrying, for the subscription dj-stripe has just synced
    (see checkout.retried_invoice_sync)."""
    synced = (
        Subscription.objects.filter(id=subscription_id)
        .values_list("stripe_data", flat=True)
        .first()
    )
    if synced:
        retried_invoice_sync(synced)


@djstripe_receiver(["invoice.paid", "invoice.payment_failed"])
def on_invoice(sender: Any, event: Event, **kwargs: Any) -> None:
    invoice = event.data["object"]
    user = invoice_user(invoice)
    if user is None:
        return _no_user(event, invoice["id"])
    subscription_id = invoice_subscription_id(invoice)
    if subscription_id:
        # The invoice changes the subscription's status; read it now rather than wait
        # for customer.subscription.updated, which may arrive later or not at all.
        # (A late event of an older invoice, say the first one's invoice.paid, can find
        # the subscription past_due on a renewal whose own events have not come yet:
        # _subscription_sync reads that renewal's invoice too.)
        _subscription_sync(subscription_id)
        # Before the plan: a change's message quotes Stripe's next charge.
        next_charge_refresh(user=user, subscription_id=subscription_id)
    plan_refresh(user=user, source=PlanChange.Source.INVOICE, stripe_event_id=event.id)
    if subscription_id:
        unpaid_invoices_close(subscription_id=subscription_id)
        if event.type == "invoice.paid":
            # Paid after its subscription ended (a hosted page left open, an
            # uncollectible invoice): it buys nothing, so it is given back.
            paid_after_end_refund(user=user, invoice_id=invoice["id"], stripe_event_id=event.id)


@djstripe_receiver("charge.refunded")
def on_charge_refunded(sender: Any, event: Event, **kwargs: Any) -> None:
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


@djstripe_receiver(TEST_CLOCK_READY)
def on_test_clock_ready(sender: Any, event: Event, **kwargs: Any) -> None:
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
        plan_refresh(
            user=user,
            source=PlanChange.Source.INVOICE,
            stripe_event_id=event.id,
        )


# --- Telling the customer (billing.notices) ----------------------------------------------
# Connected after the receivers above, so they run after them for the same event (Django
# calls receivers in the order they were connected): the plan is refreshed and the
# subscription synced before the notice reads them.


@djstripe_receiver(["invoice.payment_failed", "invoice.payment_action_required"])
def on_invoice_trouble_notice(sender: Any, event: Event, **kwargs: Any) -> None:
    invoice = event.data["object"]
    user = invoice_user(invoice)
    if user is None:
        return _no_user(event, invoice["id"])
    invoice_trouble_notify(user=user, event=event)


@djstripe_receiver("invoice.paid")
def on_invoice_paid_notice(sender: Any, event: Event, **kwargs: Any) -> None:
    invoice = event.data["object"]
    user = invoice_user(invoice)
    if user is not None:  # on_invoice has recorded the unknown customer
        invoice_paid_notify(user=user, event=event)


@djstripe_receiver("customer.subscription.updated")
def on_subscription_notice(sender: Any, event: Event, **kwargs: Any) -> None:
    subscription = event.data["object"]
    user = subscription_user(subscription)
    if user is not None:  # on_subscription has recorded the unknown customer
        subscription_updated_notify(user=user, event=event)


@djstripe_receiver("customer.subscription.trial_will_end")
def on_trial_will_end_notice(sender: Any, event: Event, **kwargs: Any) -> None:
    subscription = event.data["object"]
    user = subscription_user(subscription)
    if user is None:
        return _no_user(event, subscription["id"])
    # dj-stripe has re-read the subscription: the notice reads that copy.
    trial_will_end_notify(user=user, event=event)


@djstripe_receiver("charge.refunded")
def on_charge_refunded_notice(sender: Any, event: Event, **kwargs: Any) -> None:
    charge = event.data["object"]
    user = charge_purchase_and_user(charge)[1]
    if user is not None:  # on_charge_refunded has recorded the unknown customer
        charge_refunded_notify(user=user, event=event)


# --- Disputes (billing.disputes) ---------------------------------------------------------


@djstripe_receiver(DISPUTE_EVENTS)
def on_charge_dispute(sender: Any, event: Event, **kwargs: Any) -> None:
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
