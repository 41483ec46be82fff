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
from django.contrib.admin.models import CHANGE, LogEntry
from django.utils import timezone
from djstripe.event_handlers import djstripe_receiver
from djstripe.models import (
    Charge,
    Customer,
    Event,
    PaymentIntent,
    Session,
    Subscription,
)
from djstripe.settings import djstripe_settings

from accounts.models import User, normalize_email
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
from billing.standing import next_charge_refresh
from billing.stripe_api import api_kwargs
from billing.stripe_layout import invoice_subscription_id

logger = logging.getLogger(__name__)


def _user_find(
    *, customer_id: str | None, metadata: dict[str, Any] | None, email: str | None, create: bool
) -> User | None:
    """The customer's subscriber, else the user named in metadata, else the one with the
    customer's email if that address is confirmed; with `create`, a payer with no such
    account gets one (no password yet: the onboarding email carries a set-password link).

    An unconfirmed account with the payer's email is never simply handed the payment:
    whoever signed it up never proved the address, and may have pre-registered someone
    else's to collect their plan. With `create` it is reclaimed for the address instead
    (`_unconfirmed_reclaim`); without, nobody is found."""
    customer = (
        Customer.objects.select_related("subscriber").filter(id=customer_id).first()
        if customer_id
        else None
    )
    if customer and customer.subscriber:
        subscriber: User = customer.subscriber
        return subscriber
    metadata = metadata or {}
    user_id = str(
        metadata.get("app_user_id") or metadata.get(djstripe_settings.SUBSCRIBER_CUSTOMER_KEY) or ""
    )
    user = User.objects.filter(pk=int(user_id)).first() if user_id.isdigit() else None
    email = email or (customer.email if customer else "")
    if user is None and email:
        user = User.objects.filter(email=normalize_email(email)).first()
        if user is not None and not user.email_verified:
            user = _unconfirmed_reclaim(user, customer_id=customer_id) if create else None
        elif user is None and create:
            user = User.objects.create_user(email)
            logger.info("Created an account for payer %s (customer %s)", user.pk, customer_id)
    if (
        user
        and customer
        and not Customer.objects.filter(subscriber=user, livemode=customer.livemode).exists()
    ):
        # Link once, so later events find the user by the customer.
        Customer.objects.filter(pk=customer.pk, subscriber__isnull=True).update(subscriber=user)
    return user


def _unconfirmed_reclaim(user: User, *, customer_id: str | None) -> User:
    """Give a payer the unconfirmed account that has their email, as if the webhook had
    made it: its password (sessions with it) and mobile number go, since whoever set them
    never proved the address, and the welcome email's set-password link lets only the
    address's owner in (the address is confirmed when they use it). Staff see why on
    the user's History."""
    user.set_unusable_password()
    user.phone = ""
    user.sms_opt_in = False
    user.save(update_fields=["password", "phone", "sms_opt_in", "updated_at"])
    LogEntry.objects.log_actions(
        user_id=user.pk,
        queryset=[user],
        action_flag=CHANGE,
        change_message=(
            f"Paid for at Stripe checkout (customer {customer_id or 'unknown'}) while the "
            "address was unconfirmed: password and mobile number cleared; the owner of "
            "the address sets a password from the welcome email."
        ),
        single_object=True,
    )
    logger.warning(
        "Payer's email matched unconfirmed account %s (customer %s): reclaimed for the address",
        user.pk,
        customer_id,
    )
    return user


def _subscription_user(subscription: dict[str, Any]) -> User | None:
    return _user_find(
        customer_id=_id(subscription.get("customer")),
        metadata=subscription.get("metadata"),
        email=None,
        create=False,
    )


def _invoice_user(invoice: dict[str, Any]) -> User | None:
    return _user_find(
        customer_id=_id(invoice.get("customer")), metadata=None, email=None, create=False
    )


def _charge_purchase_and_user(charge: dict[str, Any]) -> tuple[OneOffPurchase | None, User | None]:
    """The one-off a charge paid for, if any, and whose it is (else the customer's user)."""
    payment_intent = _id(charge.get("payment_intent"))
    purchase = (
        OneOffPurchase.objects.select_related("user")
        .filter(payment_intent_id=payment_intent)
        .first()
        if payment_intent
        else None
    )
    if purchase:
        return purchase, purchase.user
    return None, _user_find(
        customer_id=_id(charge.get("customer")), metadata=None, email=None, create=False
    )


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
    user = _user_find(
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
    user = _subscription_user(subscription)
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
    user = _invoice_user(invoice)
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
    purchase, user = _charge_purchase_and_user(charge)
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
    user = _invoice_user(invoice)
    if user is None:
        return _no_user(event, invoice["id"])
    invoice_trouble_notify(user=user, event=event)


@djstripe_receiver("invoice.paid")
def on_invoice_paid_notice(sender: Any, event: Event, **kwargs: Any) -> None:
    invoice = event.data["object"]
    user = _invoice_user(invoice)
    if user is not None:  # on_invoice has recorded the unknown customer
        invoice_paid_notify(user=user, event=event)


@djstripe_receiver("customer.subscription.updated")
def on_subscription_notice(sender: Any, event: Event, **kwargs: Any) -> None:
    subscription = event.data["object"]
    user = _subscription_user(subscription)
    if user is not None:  # on_subscription has recorded the unknown customer
        subscription_updated_notify(user=user, event=event)


@djstripe_receiver("customer.subscription.trial_will_end")
def on_trial_will_end_notice(sender: Any, event: Event, **kwargs: Any) -> None:
    subscription = event.data["object"]
    user = _subscription_user(subscription)
    if user is None:
        return _no_user(event, subscription["id"])
    # dj-stripe has re-read the subscription: the notice reads that copy.
    trial_will_end_notify(user=user, event=event)


@djstripe_receiver("charge.refunded")
def on_charge_refunded_notice(sender: Any, event: Event, **kwargs: Any) -> None:
    charge = event.data["object"]
    user = _charge_purchase_and_user(charge)[1]
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
    payment_intent = dispute_payment_intent(dispute)
    purchase = (
        OneOffPurchase.objects.select_related("user")
        .filter(payment_intent_id=payment_intent)
        .first()
        if payment_intent
        else None
    )
    user = purchase.user if purchase else None
    if user is None and payment_intent:
        customer_id = _id(
            PaymentIntent.objects.filter(id=payment_intent)
            .values_list("stripe_data__customer", flat=True)
            .first()
        )
        user = _user_find(customer_id=customer_id, metadata=None, email=None, create=False)
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
