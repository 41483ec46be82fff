"""A customer with two live subscriptions: keep the first, undo the newer at once.

The checkout refuses a second subscription under the user's lock (billing/checkout.py),
and a paid one expires the customer's other open sessions; two can still exist (a race
the lock cannot see, or one made in Stripe's dashboard). Both would bill every period, so
the newer is cancelled now and every payment it took refunded in full, the customer is
told once, and staff get a billing alert. `reconcile_plans` reports any left
(`duplicates_find`).

Safe to run any number of times: it reads Stripe's state before acting, a refund is made
once per PaymentIntent (an idempotency key), the alert once per subscription and the
message once per subscription (the outbox's key).
"""

from __future__ import annotations

import logging
from typing import Any

import stripe
from django.db import transaction
from django.db.models import Count
from djstripe.models import Subscription
from djstripe.settings import djstripe_settings

from accounts.models import User
from billing.alerts import alert_record
from billing.models import BillingAlert
from billing.money import money
from billing.notices import DUPLICATE_REFUND_KEY, duplicate_subscription_notify
from billing.stripe_api import api_kwargs, invoice_payments_refund
from billing.subscriptions import PLAN_STATUSES, subscription_sells

logger = logging.getLogger(__name__)


def _oldest_first(rows: list[tuple[dict[str, Any], int]]) -> list[dict[str, Any]]:
    """The subscriptions that sell one of our plans, by Stripe's creation time, then the
    order they were synced in (two made in the same second: the one the app learnt of
    first is the one the customer has been using). One selling no plan we know (a legacy
    price) is not a second plan: staff have its unknown-price alert."""
    ordered = sorted(rows, key=lambda row: (row[0].get("created") or 0, row[1]))
    return [data for data, _ in ordered if subscription_sells(data) is not None]


def live_subscriptions(user: User) -> list[dict[str, Any]]:
    """The user's synced subscriptions that hold a plan and bill, oldest first."""
    rows = Subscription.objects.filter(
        customer__subscriber=user, stripe_data__status__in=sorted(PLAN_STATUSES)
    ).values_list("stripe_data", "djstripe_id")
    return _oldest_first(list(rows))


def duplicates_find() -> dict[int, list[str]]:
    """Every user with more than one live subscription (synced rows), by user pk: their
    plan subscriptions' ids, oldest first. Two queries, whatever the number of users."""
    live = Subscription.objects.filter(
        stripe_data__status__in=sorted(PLAN_STATUSES), customer__subscriber__isnull=False
    )
    users = (
        live.values("customer__subscriber")
        .annotate(n=Count("djstripe_id"))
        .filter(n__gt=1)
        .values_list("customer__subscriber", flat=True)
    )
    found: dict[int, list[tuple[dict[str, Any], int]]] = {}
    for user_id, data, pk in live.filter(customer__subscriber__in=list(users)).values_list(
        "customer__subscriber", "stripe_data", "djstripe_id"
    ):
        found.setdefault(user_id, []).append((data, pk))
    ordered = {user_id: [d["id"] for d in _oldest_first(rows)] for user_id, rows in found.items()}
    return {user_id: ids for user_id, ids in ordered.items() if len(ids) > 1}


def duplicate_alert_record(
    *, user: User, kept: str, newer: str, detail: str, stripe_event_id: str = ""
) -> None:
    alert, created = alert_record(
        kind=BillingAlert.Kind.DUPLICATE_SUBSCRIPTION,
        stripe_id=newer,
        detail=f"{user.email}: {newer} beside {kept}. {detail}",
        stripe_event_id=stripe_event_id,
    )
    if not created and detail not in alert.detail:
        alert.detail = f"{user.email}: {newer} beside {kept}. {detail}"
        alert.save(update_fields=["detail"])


def duplicate_subscriptions_resolve(*, user: User, stripe_event_id: str = "") -> list[str]:
    """Cancel every live subscription of `user` newer than the first, refunding what
    each was paid; return the ids cancelled. The caller holds the customer's lock (the
    webhook worker's) or the user's row lock (the success page), and refreshes the plan
    afterwards."""
    if len(live_subscriptions(user)) < 2:  # the common case: one query, no lock
        return []
    with transaction.atomic():
        # The success page and the webhook worker may both get here: one at a time.
        User.objects.select_for_update().filter(pk=user.pk).first()
        return _resolve_locked(user=user, stripe_event_id=stripe_event_id)


def _resolve_locked(*, user: User, stripe_event_id: str) -> list[str]:
    synced = live_subscriptions(user)
    if len(synced) < 2:
        return []
    kept = synced[0]["id"]
    kept_sells = subscription_sells(synced[0])
    cancelled = []
    for data in synced[1:]:
        # Stripe's word, not the copy: a retry after a rollback finds it cancelled already.
        current = stripe.Subscription.retrieve(data["id"], **api_kwargs())
        if current["status"] in PLAN_STATUSES:
            current = stripe.Subscription.cancel(data["id"], **api_kwargs())
        Subscription.sync_from_stripe_data(current, api_key=djstripe_settings.STRIPE_SECRET_KEY)
        refunded, currency = _payments_refund(data["id"])
        said = f"{money(refunded, currency)} refunded" if refunded else "nothing had been charged"
        logger.warning(
            "User %s had two live subscriptions: %s cancelled (%s), %s kept",
            user.pk,
            data["id"],
            said,
            kept,
        )
        duplicate_alert_record(
            user=user,
            kept=kept,
            newer=data["id"],
            detail=f"Cancelled at once; {said}.",
            stripe_event_id=stripe_event_id,
        )
        duplicate_subscription_notify(
            user=user,
            subscription_id=data["id"],
            kept_subscription_id=kept,
            kept_plan=kept_sells.plan if kept_sells else None,
            amount_refunded=refunded,
            currency=currency or data.get("currency") or "",
            stripe_event_id=stripe_event_id,
        )
        cancelled.append(data["id"])
    return cancelled


def _payments_refund(subscription_id: str) -> tuple[int, str]:
    """Refund in full every paid payment of the subscription's invoices; return the
    amount refunded by this call or an earlier one, and its currency."""
    total, currency = 0, ""
    invoices = stripe.Invoice.list(subscription=subscription_id, status="paid", **api_kwargs())
    for invoice in invoices.auto_paging_iter():
        if not invoice["amount_paid"]:
            continue  # a trial's £0 invoice: no payment
        amount, paid_in = invoice_payments_refund(
            invoice["id"],
            key="duplicate-subscription-refund",
            metadata={DUPLICATE_REFUND_KEY: subscription_id},
            reason="duplicate",
        )
        total += amount
        currency = paid_in or currency
    return total, currency
