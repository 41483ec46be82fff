"""Our side of Stripe's API: keys, versions, and the lookups billing needs.

Every call passes the key and the pinned version explicitly rather than relying on
stripe-python's globals, so the same code talks to Stripe or to the offline sandbox
(installed as stripe-python's HTTP client) without a branch.
"""

from __future__ import annotations

import logging
from typing import Any

import stripe
from django.conf import settings
from djstripe.models import Customer, Price
from djstripe.settings import djstripe_settings

from accounts.models import User
from billing.plans import lookup_key
from billing.subscriptions import ENDED_STATUSES, PLAN_STATUSES

# The metadata key set on a subscription that a one-off replaces (its Checkout Session's
# id): its cancellation at the period end is the one-off's news, not a second message.
ENDED_BY_ONEOFF = "ended_by_oneoff"

logger = logging.getLogger(__name__)

# Stripe's error base class: anything the API or the network raised.
StripeError = stripe.StripeError


class PriceMissing(Exception):
    """No active Stripe Price sells that plan and interval (run `stripe_catalog`)."""


def api_kwargs() -> dict[str, Any]:
    return {
        "api_key": djstripe_settings.STRIPE_SECRET_KEY,
        "stripe_version": djstripe_settings.STRIPE_API_VERSION,
    }


def price_find(plan: str, interval: str) -> Price:
    """The active Price that sells `plan` monthly or once.

    A configured STRIPE_PRICE_<PLAN>_<INTERVAL> id wins; otherwise the synced Price with
    lookup_key `<plan>_<interval>`, asking Stripe (and syncing) when it is not local yet.
    """
    configured = settings.STRIPE_PRICE_IDS.get((plan, interval))
    if configured:
        local = Price.objects.filter(id=configured).first()
        return local or Price.sync_from_stripe_data(
            stripe.Price.retrieve(configured, expand=["product"], **api_kwargs())
        )
    key = lookup_key(plan, interval)
    local = Price.objects.filter(lookup_key=key, active=True).order_by("-created").first()
    if local:
        return local
    found = stripe.Price.list(
        lookup_keys=[key], active=True, expand=["data.product"], **api_kwargs()
    )
    if not found.data:
        raise PriceMissing(f"No active Stripe Price has lookup_key {key!r}.")
    return Price.sync_from_stripe_data(found.data[0])


def customer_get_or_create(user: User) -> tuple[Customer, bool]:
    """The user's dj-stripe Customer, created in Stripe on first use, and whether it was
    created now. A gateway: it writes nothing of the user (billing.checkout.customer_for
    copies a new customer onto the user)."""
    found: tuple[Customer, bool] = Customer.get_or_create(subscriber=user)
    return found


def customer_email_update(*, user: User) -> int:
    """Set `user`'s email on each of their Stripe customers in the current mode that has
    another one; return how many changed. Raises StripeError."""
    changed = 0
    customers = Customer.objects.filter(
        subscriber=user, livemode=djstripe_settings.STRIPE_LIVE_MODE
    ).exclude(email=user.email)
    for customer in customers:
        updated = stripe.Customer.modify(customer.id, email=user.email, **api_kwargs())
        Customer.sync_from_stripe_data(updated)
        changed += 1
        logger.info("Stripe customer %s of user %s: email updated", customer.id, user.pk)
    return changed


def live_subscription(user: User) -> dict[str, Any] | None:
    """The user's subscription that still bills (active, trialing or past_due), if any."""
    from djstripe.models import Subscription

    data: dict[str, Any] | None = (
        Subscription.objects.filter(
            customer__subscriber=user,
            stripe_data__status__in=sorted(PLAN_STATUSES),
        )
        .order_by("-created")
        .values_list("stripe_data", flat=True)
        .first()
    )
    return data


# A card payment that asked for 3-D Secure: waiting for it, or the customer failed it.
_AUTHENTICATION_CODES = {"authentication_required", "payment_intent_authentication_failure"}


def invoice_latest_payment(invoice: dict[str, Any]) -> dict[str, Any] | None:
    """The PaymentIntent of `invoice`'s latest payment attempt, asked of Stripe, or None.

    This API version links an invoice to its PaymentIntent only through
    `invoice.payments`; the customer's newest PaymentIntent for the invoice's amount,
    made since it was created, is that payment."""
    intents = stripe.PaymentIntent.list(customer=invoice["customer"], limit=5, **api_kwargs())
    for intent in intents.data:
        if intent["created"] >= invoice["created"] and intent["amount"] == invoice["amount_due"]:
            return intent.to_dict()
    return None


def invoice_waits_for_authentication(invoice: dict[str, Any]) -> bool:
    """Whether `invoice`'s latest payment waits for 3-D Secure (rather than declined)."""
    intent = invoice_latest_payment(invoice)
    return bool(intent and intent["status"] == "requires_action")


def invoice_asked_for_authentication(invoice: dict[str, Any]) -> bool:
    """Whether `invoice`'s latest payment attempt was stopped by 3-D Secure: it waits for
    the customer, or they failed it since. Unlike the status, this stays true for that
    attempt, so every event about the attempt reads the same answer whenever it comes."""
    intent = invoice_latest_payment(invoice)
    if intent is None:
        return False
    code = (intent.get("last_payment_error") or {}).get("code")
    return intent["status"] == "requires_action" or code in _AUTHENTICATION_CODES


def invoice_payment_intent_ids(invoice_id: str, *, status: str | None = None) -> list[str]:
    """The PaymentIntents that paid (or tried to pay) an invoice: on this API version an
    invoice names them only through its payments (`GET /v1/invoice_payments`)."""
    params: dict[str, Any] = {"invoice": invoice_id, **({"status": status} if status else {})}
    ids = []
    for payment in stripe.InvoicePayment.list(**params, **api_kwargs()).auto_paging_iter():
        intent = (payment.to_dict().get("payment") or {}).get("payment_intent")
        intent_id = intent if isinstance(intent, str) else (intent or {}).get("id")
        if intent_id:
            ids.append(intent_id)
    return ids


def invoice_payments_refund(
    invoice_id: str, *, key: str, metadata: dict[str, str], reason: str | None = None
) -> tuple[int, str]:
    """Refund in full each paid payment of the invoice, idempotently (`key` names the
    cause in the idempotency key); return the amount this call refunded and its currency.
    A payment refunded already (by staff, or a retry after the key expired) is skipped."""
    total, currency = 0, ""
    for intent_id in invoice_payment_intent_ids(invoice_id, status="paid"):
        params: dict[str, Any] = {
            "payment_intent": intent_id,
            "metadata": metadata,
            "idempotency_key": f"{key}:{intent_id}",
            **({"reason": reason} if reason else {}),
            **api_kwargs(),
        }
        try:
            refund = stripe.Refund.create(**params)
        except stripe.InvalidRequestError as exc:
            if exc.code != "charge_already_refunded":
                raise
            logger.info("Payment %s of invoice %s refunded already", intent_id, invoice_id)
            continue
        total += int(refund["amount"])
        currency = refund["currency"] or currency
    return total, currency


def customer_subscriptions_cancel_now(customer_id: str) -> list[stripe.Subscription]:
    """Cancel every subscription of the customer that has not ended, at once and with no
    new charge (no final invoice, no proration); return them as Stripe answered.

    Safe to repeat: Stripe is asked which subscriptions are still on, and an ended one
    is left alone. A customer Stripe does not know (deleted already) has none."""
    try:
        found = stripe.Subscription.list(customer=customer_id, status="all", **api_kwargs())
    except stripe.InvalidRequestError as exc:
        if exc.code == "resource_missing":
            return []
        raise
    cancelled = []
    for sub in found.auto_paging_iter():
        if sub["status"] in ENDED_STATUSES:
            continue
        done = stripe.Subscription.cancel(
            sub["id"], invoice_now=False, prorate=False, **api_kwargs()
        )
        cancelled.append(done)
    return cancelled


def customer_delete(customer_id: str) -> bool:
    """Delete the customer at Stripe (its invoices and payments stay there, as Stripe
    keeps a deleted customer's history); False when it was deleted already."""
    try:
        stripe.Customer.delete(customer_id, **api_kwargs())
    except stripe.InvalidRequestError as exc:
        if exc.code == "resource_missing":
            return False
        raise
    return True
