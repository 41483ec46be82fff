"""Who a Stripe event is about: the user (accounts.User) behind a customer, a
subscription, an invoice, a charge or a dispute. Used by billing/handlers.py, once per
event.

Unknown objects give None (the handler records them for staff); only a checkout makes
an account, for a payer who has none.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.admin.models import CHANGE, LogEntry
from djstripe.models import Customer, PaymentIntent
from djstripe.settings import djstripe_settings

from accounts.models import User, normalize_email
from billing.models import OneOffPurchase

logger = logging.getLogger(__name__)


def user_find(
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


def subscription_user(subscription: dict[str, Any]) -> User | None:
    return user_find(
        customer_id=_id(subscription.get("customer")),
        metadata=subscription.get("metadata"),
        email=None,
        create=False,
    )


def invoice_user(invoice: dict[str, Any]) -> User | None:
    return user_find(
        customer_id=_id(invoice.get("customer")), metadata=None, email=None, create=False
    )


def charge_purchase_and_user(charge: dict[str, Any]) -> tuple[OneOffPurchase | None, User | None]:
    """The one-off a charge paid for, if any, and whose it is (else the customer's user)."""
    purchase = _purchase(_id(charge.get("payment_intent")))
    if purchase:
        return purchase, purchase.user
    return None, user_find(
        customer_id=_id(charge.get("customer")), metadata=None, email=None, create=False
    )


def dispute_purchase_and_user(payment_intent: str) -> tuple[OneOffPurchase | None, User | None]:
    """The one-off a disputed payment paid for, if any, and whose it is (else the user of
    the payment intent's customer)."""
    purchase = _purchase(payment_intent)
    if purchase:
        return purchase, purchase.user
    if not payment_intent:
        return None, None
    customer_id = _id(
        PaymentIntent.objects.filter(id=payment_intent)
        .values_list("stripe_data__customer", flat=True)
        .first()
    )
    return None, user_find(customer_id=customer_id, metadata=None, email=None, create=False)


def _purchase(payment_intent: str) -> OneOffPurchase | None:
    if not payment_intent:
        return None
    return (
        OneOffPurchase.objects.select_related("user")
        .filter(payment_intent_id=payment_intent)
        .first()
    )


def _id(value: Any) -> str:
    return value.get("id", "") if isinstance(value, dict) else (value or "")
