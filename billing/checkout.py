"""Checkout: starting a Stripe Checkout Session and fulfilling a paid one.

Fulfilment runs from the webhook and from the success page (Stripe recommends both);
it is idempotent, so whichever comes second changes nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import stripe
from django.conf import settings
from django.core import signing
from django.db import transaction
from django.urls import reverse
from djstripe.models import Invoice, Subscription
from djstripe.settings import djstripe_settings
from stripe.params import InvoiceCreatePreviewParamsSubscriptionDetailsItem

from accounts.models import User
from billing.entitlements import (
    PLAN_STATUSES,
    plan_refresh,
    subscription_sells,
    unknown_prices_record,
)
from billing.models import OneOffPurchase, PlanChange
from billing.offers import trial_days
from billing.plans import RECURRING, Interval, plan_rank, price_plan
from billing.portal import configuration_id as portal_configuration_id
from billing.stripe_api import api_kwargs, customer_for, price_find
from billing.stripe_layout import subscription_period

logger = logging.getLogger(__name__)

PAID = {"paid", "no_payment_required"}


def checkout_session_create(*, user: User, plan: str, interval: str) -> stripe.checkout.Session:
    """Create the Checkout Session that sells `plan` (`interval`) to `user`.

    Any earlier open subscription Session of the user is expired first, under a lock on
    the user row, so that two tabs or a double click can never produce two paid
    subscriptions. A customer's first subscription starts with BILLING_TRIAL_DAYS free
    days (billing.offers.trial_days), Checkout collecting the card up front.
    """
    price = price_find(plan, interval)
    mode = "subscription" if interval in RECURRING else "payment"
    metadata = {
        djstripe_settings.SUBSCRIBER_CUSTOMER_KEY: str(user.pk),
        "app_user_id": str(user.pk),
        "plan": plan,
        "interval": interval,
    }
    success_url = (
        settings.SITE_URL + reverse("billing:success") + "?session_id={CHECKOUT_SESSION_ID}"
    )
    params: dict[str, Any] = {
        "mode": mode,
        "line_items": [{"price": price.id, "quantity": 1}],
        "metadata": metadata,
        "client_reference_id": str(user.pk),
        "success_url": success_url,
        "cancel_url": settings.SITE_URL + reverse("billing:pricing"),
        # Checkout's own code field; the codes are created in Stripe (or `stripe_sandbox
        # coupon`), so the app keeps no list of them.
        "allow_promotion_codes": True,
        **_tax_params(),
    }
    if mode == "payment":
        params["payment_intent_data"] = {"metadata": metadata}
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=user.pk).first()
        customer = customer_for(user)
        if mode == "subscription":
            params["subscription_data"] = {"metadata": metadata}
            # Decided under the user's lock, from the synced subscriptions: never from
            # what the page showed (billing.offers.trial_days).
            if days := trial_days(user):
                params["subscription_data"]["trial_period_days"] = days
                # Stripe's default too; said so that a card is always taken for the
                # charge at the trial's end.
                params["payment_method_collection"] = "always"
            _expire_open_subscription_sessions(customer.id)
        session = stripe.checkout.Session.create(customer=customer.id, **params, **api_kwargs())
    logger.info("Checkout session %s for user %s: %s %s", session.id, user.pk, plan, interval)
    return session


def _tax_params() -> dict[str, Any]:
    """Stripe Tax in Checkout when BILLING_AUTOMATIC_TAX is on: the tax follows the billing
    address Checkout collects, and a business can give its VAT number. The session always
    names the customer, and Stripe then requires Checkout to save the address (and the
    business name) on it: the customer's later invoices are taxed from that address."""
    if not settings.BILLING_AUTOMATIC_TAX:
        return {}
    return {
        "automatic_tax": {"enabled": True},
        "billing_address_collection": "required",
        "tax_id_collection": {"enabled": True},
        "customer_update": {"address": "auto", "name": "auto"},
    }


def _expire_open_subscription_sessions(customer_id: str) -> None:
    open_sessions = stripe.checkout.Session.list(
        customer=customer_id, status="open", **api_kwargs()
    )
    for session in open_sessions.auto_paging_iter():
        if session.to_dict().get("mode") == "subscription":
            stripe.checkout.Session.expire(session.id, **api_kwargs())


def _subscription_sync(subscription_id: str) -> None:
    """Make dj-stripe's copy of a subscription current (re-read from Stripe), with the
    invoice Stripe is retrying when it is past_due (retried_invoice_sync)."""
    data = stripe.Subscription.retrieve(subscription_id, **api_kwargs())
    Subscription.sync_from_stripe_data(data, api_key=djstripe_settings.STRIPE_SECRET_KEY)
    retried_invoice_sync(data.to_dict())


def retried_invoice_sync(subscription: Mapping[str, Any]) -> None:
    """For a past_due subscription, make dj-stripe's copy of its latest invoice current.

    A past_due plan is kept only while Stripe retries that invoice (billing/
    entitlements.py), and the invoice's own events may be processed after the event at
    hand (a late checkout or first-invoice event, found by the e2e dunning journeys):
    without it the plan would drop and come back meanwhile."""
    latest = subscription.get("latest_invoice")
    latest_id = latest.get("id") if isinstance(latest, dict) else latest
    if subscription.get("status") != "past_due" or not latest_id:
        return
    invoice = stripe.Invoice.retrieve(latest_id, **api_kwargs())
    Invoice.sync_from_stripe_data(invoice, api_key=djstripe_settings.STRIPE_SECRET_KEY)


def _oneoff_record(*, session: dict[str, Any], user: User, stripe_event_id: str) -> None:
    if OneOffPurchase.objects.filter(checkout_session_id=session["id"]).exists():
        return
    items = stripe.checkout.Session.list_line_items(session["id"], limit=10, **api_kwargs())
    for line_item in items.data:
        item = line_item.to_dict()
        price = item.get("price") or {}
        sold = price_plan(price_id=price.get("id", ""), lookup_key=price.get("lookup_key"))
        if sold is None:
            unknown_prices_record([price.get("id", "?")], stripe_event_id=stripe_event_id)
            continue
        payment_intent = session.get("payment_intent") or ""
        if isinstance(payment_intent, dict):
            payment_intent = payment_intent.get("id", "")
        OneOffPurchase.objects.get_or_create(
            checkout_session_id=session["id"],
            defaults={
                "user": user,
                "plan": sold[0],
                "payment_intent_id": payment_intent,
                "price_id": price.get("id", ""),
                "amount": session.get("amount_total") or item.get("amount_total") or 0,
                "currency": session.get("currency") or price.get("currency") or "",
            },
        )
        return


def _subscriptions_end_after_oneoff(*, session_id: str, user: User) -> None:
    """A paid one-off that is at least the subscription's plan leaves the subscription
    nothing to sell: it stops at the end of the period already paid for (the pricing page
    said so before payment). Idempotent: a subscription already set to end is left alone."""
    purchase = OneOffPurchase.objects.filter(checkout_session_id=session_id).first()
    if purchase is None or not purchase.counts:
        return
    for sub in Subscription.objects.filter(
        customer__subscriber=user, stripe_data__status__in=sorted(PLAN_STATUSES)
    ):
        data = sub.stripe_data
        sold = subscription_sells(data)
        if data.get("cancel_at_period_end") or sold is None:
            continue
        if plan_rank(sold.plan) > plan_rank(purchase.plan):
            continue
        updated = stripe.Subscription.modify(data["id"], cancel_at_period_end=True, **api_kwargs())
        Subscription.sync_from_stripe_data(updated, api_key=djstripe_settings.STRIPE_SECRET_KEY)
        logger.info(
            "Subscription %s of user %s ends at period end: one-off %s bought",
            data["id"],
            user.pk,
            purchase.plan,
        )


def checkout_fulfil(
    *, session: dict[str, Any], user: User, stripe_event_id: str = ""
) -> PlanChange | None:
    """Grant what a Checkout Session paid for. Safe to run any number of times.

    `session` must be Stripe's current view of the session (retrieved, not taken from
    a URL or an unverified payload).
    """
    if session.get("status") == "complete" and session.get("payment_status") in PAID:
        with transaction.atomic():
            if session.get("mode") == "payment":
                _oneoff_record(session=session, user=user, stripe_event_id=stripe_event_id)
            elif session.get("subscription"):
                sub = session["subscription"]
                _subscription_sync(sub["id"] if isinstance(sub, dict) else sub)
        if session.get("mode") == "payment":
            _subscriptions_end_after_oneoff(session_id=session["id"], user=user)
    return plan_refresh(
        user=user, source=PlanChange.Source.CHECKOUT, stripe_event_id=stripe_event_id
    )


@dataclass(frozen=True)
class SwitchQuote:
    """What an upgrade costs now: Stripe's preview of the invoice the switch would make."""

    amount_due: int
    currency: str
    proration_date: int


def _switch_items(
    subscription: dict[str, Any], plan: str, interval: str = Interval.MONTHLY
) -> list[InvoiceCreatePreviewParamsSubscriptionDetailsItem]:
    """The item change that moves `subscription` to `plan`: its plan's item gets the new
    price; any other item (an add-on, a tax line) stays as it is."""
    sold = subscription_sells(subscription)
    if sold is None:  # the switch view refuses these before anything is asked of Stripe
        raise ValueError(f"Subscription {subscription.get('id')} sells no plan we know.")
    price = price_find(plan, interval)
    return [{"id": sold.item["id"], "price": price.id}]


def _now_in_period(subscription: dict[str, Any]) -> int:
    """Now, as a proration date: Stripe requires one inside the current period. Against a
    real account now always is; a sandbox whose clock was moved on has periods elsewhere."""
    start, end = subscription_period(subscription)
    return max(start or 0, min(int(time.time()), end or int(time.time())))


def switch_preview(
    *,
    subscription: dict[str, Any],
    plan: str,
    interval: str = Interval.MONTHLY,
    proration_date: int | None = None,
) -> SwitchQuote:
    """Stripe's preview of the invoice an upgrade to `plan` (`interval`) would charge
    now, prorated to `proration_date` (now by default). Saves and charges nothing. To
    annual from monthly, Stripe resets the billing cycle to now: the preview is the
    year's price less the unused part of the month."""
    when = proration_date or _now_in_period(subscription)
    preview = stripe.Invoice.create_preview(
        customer=subscription["customer"],
        subscription=subscription["id"],
        subscription_details={
            "items": _switch_items(subscription, plan, interval),
            "proration_behavior": "always_invoice",
            "proration_date": when,
        },
        **api_kwargs(),
    )
    return SwitchQuote(preview["amount_due"], preview["currency"], when)


# How long a quoted amount can be accepted: the charge is prorated to the quote's moment,
# so an old quote would bill time already used on the old plan at the old price.
QUOTE_SECONDS = 30 * 60
_QUOTE_SALT = "billing.switch.quote"


def quote_sign(
    *, subscription_id: str, plan: str, proration_date: int, interval: str = Interval.MONTHLY
) -> str:
    """The hidden field that carries the quoted proration date to the POST, signed so
    that nobody picks another moment (a cheaper charge) than the one they were shown."""
    return signing.dumps([subscription_id, plan, interval, proration_date], salt=_QUOTE_SALT)


def quote_read(
    token: str, *, subscription_id: str, plan: str, interval: str = Interval.MONTHLY
) -> int | None:
    """The proration date of a quote for this subscription, plan and interval, or None
    when the token is missing, forged, for something else, or older than QUOTE_SECONDS."""
    try:
        sub_id, quoted_plan, quoted_interval, when = signing.loads(
            token, salt=_QUOTE_SALT, max_age=QUOTE_SECONDS
        )
    except (signing.BadSignature, ValueError, TypeError):
        return None
    if (sub_id, quoted_plan, quoted_interval) != (subscription_id, plan, interval):
        return None
    return when if isinstance(when, int) else None


@dataclass(frozen=True)
class SwitchResult:
    change: PlanChange | None
    # The upgrade waits for its invoice (declined, or the bank wants authentication):
    # the subscription keeps its old items until it is paid (Stripe's pending updates).
    pending: bool


def subscription_switch(
    *,
    user: User,
    subscription: dict[str, Any],
    plan: str,
    interval: str = Interval.MONTHLY,
    proration_date: int | None = None,
) -> SwitchResult:
    """Upgrade the user's subscription to `plan`'s `interval` price in place (a customer
    never ends up with two subscriptions), charging the prorated difference now.

    `always_invoice` bills the difference at once and `pending_if_incomplete` applies the
    new price only once that invoice is paid, so nobody uses a higher plan on credit.
    `proration_date` is the one the customer was quoted (switch_preview), so the charge
    equals the amount they saw.
    """
    params: dict[str, Any] = {
        "items": _switch_items(subscription, plan, interval),
        "proration_behavior": "always_invoice",
        "payment_behavior": "pending_if_incomplete",
    }
    if proration_date:
        params["proration_date"] = proration_date
    updated = stripe.Subscription.modify(subscription["id"], **params, **api_kwargs())
    with transaction.atomic():
        Subscription.sync_from_stripe_data(updated, api_key=djstripe_settings.STRIPE_SECRET_KEY)
        change = plan_refresh(user=user, source=PlanChange.Source.SUBSCRIPTION)
    pending = bool(updated.to_dict().get("pending_update"))
    logger.info(
        "Subscription %s of user %s to %s %s: %s",
        subscription["id"],
        user.pk,
        plan,
        interval,
        "waiting for payment" if pending else "paid and applied",
    )
    return SwitchResult(change, pending)


@dataclass(frozen=True)
class PendingSwitch:
    """An upgrade waiting for its invoice, and what the customer must do about it."""

    plan: str | None
    amount_due: int
    currency: str
    hosted_invoice_url: str
    expires_at: int
    needs_authentication: bool


def switch_pending(*, subscription_id: str) -> PendingSwitch | None:
    """Stripe's current view of an upgrade still waiting for payment, or None (paid and
    applied, or lapsed)."""
    sub = stripe.Subscription.retrieve(
        subscription_id, expand=["latest_invoice"], **api_kwargs()
    ).to_dict()
    pending = sub.get("pending_update")
    invoice = sub.get("latest_invoice")
    if not pending or not isinstance(invoice, dict) or invoice.get("status") != "open":
        return None
    items = pending.get("subscription_items") or []
    price = (items[0].get("price") or {}) if items else {}
    sold = price_plan(price_id=price.get("id", ""), lookup_key=price.get("lookup_key"))
    return PendingSwitch(
        plan=sold[0] if sold else None,
        amount_due=invoice["amount_due"],
        currency=invoice["currency"],
        hosted_invoice_url=invoice.get("hosted_invoice_url") or "",
        expires_at=pending["expires_at"],
        needs_authentication=_waits_for_authentication(invoice),
    )


def _waits_for_authentication(invoice: dict[str, Any]) -> bool:
    """Whether the invoice's latest payment waits for 3-D Secure (rather than declined).

    This API version links an invoice to its PaymentIntent only through
    `invoice.payments`; the customer's newest PaymentIntent for the invoice's amount,
    made since it was created, is that payment."""
    intents = stripe.PaymentIntent.list(customer=invoice["customer"], limit=5, **api_kwargs())
    for intent in intents.data:
        if intent["created"] >= invoice["created"] and intent["amount"] == invoice["amount_due"]:
            return intent["status"] == "requires_action"
    return False


def portal_session_create(*, user: User) -> stripe.billing_portal.Session:
    """A Stripe Billing Portal session where the user manages card, invoices and
    cancellation, always under the app's configuration (`PortalNotConfigured` without
    one: the dashboard's settings never decide)."""
    configuration = portal_configuration_id()
    customer = customer_for(user)
    return stripe.billing_portal.Session.create(
        customer=customer.id,
        configuration=configuration,
        return_url=settings.SITE_URL + reverse("accounts:dashboard"),
        **api_kwargs(),
    )


def session_for_user(*, session_id: str, user: User) -> dict[str, Any] | None:
    """Stripe's current view of a Checkout Session, if it exists and is the user's."""
    try:
        session = stripe.checkout.Session.retrieve(session_id, **api_kwargs()).to_dict()
    except stripe.InvalidRequestError:
        return None
    metadata = session.get("metadata") or {}
    if metadata.get("app_user_id") != str(user.pk):
        return None
    return session
