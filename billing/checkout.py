"""Checkout: starting a Stripe Checkout Session and fulfilling a paid one.

Fulfilment runs from the webhook and from the success page (Stripe recommends both);
it is idempotent, so whichever comes second changes nothing.
"""

from __future__ import annotations

import logging
from typing import Any

import stripe
from django.conf import settings
from django.db import transaction
from django.urls import reverse
from djstripe.models import Subscription
from djstripe.settings import djstripe_settings

from accounts.models import User
from billing.entitlements import plan_refresh, unknown_prices_record
from billing.models import OneOffPurchase, PlanChange
from billing.plans import Interval, price_plan
from billing.stripe_api import api_kwargs, customer_for, price_find

logger = logging.getLogger(__name__)

PAID = {"paid", "no_payment_required"}


def checkout_session_create(*, user: User, plan: str, interval: str) -> stripe.checkout.Session:
    """Create the Checkout Session that sells `plan` (`interval`) to `user`.

    Any earlier open subscription Session of the user is expired first, under a lock on
    the user row, so that two tabs or a double click can never produce two paid
    subscriptions.
    """
    price = price_find(plan, interval)
    mode = "subscription" if interval == Interval.MONTHLY else "payment"
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
    }
    if mode == "subscription":
        params["subscription_data"] = {"metadata": metadata}
    else:
        params["payment_intent_data"] = {"metadata": metadata}
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=user.pk).first()
        customer = customer_for(user)
        if mode == "subscription":
            _expire_open_subscription_sessions(customer.id)
        session = stripe.checkout.Session.create(customer=customer.id, **params, **api_kwargs())
    logger.info("Checkout session %s for user %s: %s %s", session.id, user.pk, plan, interval)
    return session


def _expire_open_subscription_sessions(customer_id: str) -> None:
    open_sessions = stripe.checkout.Session.list(
        customer=customer_id, status="open", **api_kwargs()
    )
    for session in open_sessions.auto_paging_iter():
        if session.get("mode") == "subscription":
            stripe.checkout.Session.expire(session.id, **api_kwargs())


def _subscription_sync(subscription_id: str) -> None:
    """Make dj-stripe's copy of a subscription current (re-read from Stripe)."""
    data = stripe.Subscription.retrieve(subscription_id, **api_kwargs())
    Subscription.sync_from_stripe_data(data, api_key=djstripe_settings.STRIPE_SECRET_KEY)


def _oneoff_record(*, session: dict[str, Any], user: User, stripe_event_id: str) -> None:
    if OneOffPurchase.objects.filter(checkout_session_id=session["id"]).exists():
        return
    items = stripe.checkout.Session.list_line_items(session["id"], limit=10, **api_kwargs())
    for item in items.data:
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
    return plan_refresh(
        user=user, source=PlanChange.Source.CHECKOUT, stripe_event_id=stripe_event_id
    )


def subscription_switch(
    *, user: User, subscription: dict[str, Any], plan: str
) -> PlanChange | None:
    """Move the user's subscription to `plan`'s monthly price, prorated, in place: a
    customer never ends up with two subscriptions."""
    price = price_find(plan, Interval.MONTHLY)
    item = subscription["items"]["data"][0]
    updated = stripe.Subscription.modify(
        subscription["id"],
        items=[{"id": item["id"], "price": price.id}],
        proration_behavior="create_prorations",
        **api_kwargs(),
    )
    with transaction.atomic():
        Subscription.sync_from_stripe_data(updated, api_key=djstripe_settings.STRIPE_SECRET_KEY)
        return plan_refresh(user=user, source=PlanChange.Source.SUBSCRIPTION)


def portal_session_create(*, user: User) -> stripe.billing_portal.Session:
    """A Stripe Billing Portal session where the user manages card, plan and cancellation."""
    customer = customer_for(user)
    return stripe.billing_portal.Session.create(
        customer=customer.id,
        return_url=settings.SITE_URL + reverse("accounts:dashboard"),
        **api_kwargs(),
    )


def session_for_user(*, session_id: str, user: User) -> dict[str, Any] | None:
    """Stripe's current view of a Checkout Session, if it exists and is the user's."""
    try:
        session = stripe.checkout.Session.retrieve(session_id, **api_kwargs())
    except stripe.InvalidRequestError:
        return None
    metadata = session.get("metadata") or {}
    if metadata.get("app_user_id") != str(user.pk):
        return None
    return session.to_dict()
