"""Checkout: starting a Stripe Checkout Session and fulfilling a paid one.

Fulfilment runs from the webhook and from the success page (Stripe recommends both);
it is idempotent, so whichever comes second changes nothing.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import stripe
from django.conf import settings
from django.core import signing
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from djstripe.models import (
    Customer,
    Invoice,
    PaymentIntent,
    Subscription,
    SubscriptionSchedule,
)
from djstripe.settings import djstripe_settings
from stripe.params import (
    InvoiceCreatePreviewParamsSubscriptionDetails,
    InvoiceCreatePreviewParamsSubscriptionDetailsItem,
)

from accounts.models import User
from billing.duplicates import duplicate_subscriptions_resolve
from billing.entitlements import plan_refresh, unknown_prices_record
from billing.event_scope import subscription_fetched, synced_data
from billing.models import CheckoutOpened, OneOffPurchase, PlanChange
from billing.next_charge import next_charge_values
from billing.offers import Kind, NotAnUpgrade, holdings_of, offer_check, trial_days
from billing.plans import RECURRING, Interval, Plan, plan_rank, price_plan, recurring_interval
from billing.portal import configuration_id as portal_configuration_id
from billing.stripe_api import (
    ENDED_BY_ONEOFF,
    api_kwargs,
    customer_get_or_create,
    invoice_payment_intent_ids,
    invoice_waits_for_authentication,
    price_find,
)
from billing.subscriptions import PLAN_STATUSES, subscription_sells

logger = logging.getLogger(__name__)

PAID = {"paid", "no_payment_required"}


def customer_for(user: User) -> Customer:
    """The user's dj-stripe Customer, created in Stripe on first use. A new one is
    copied onto the user at once (the admin's column and search): those columns have
    one writer, plan_refresh; the plan itself does not change here."""
    customer, created = customer_get_or_create(user)
    if created:
        plan_refresh(user=user, source=PlanChange.Source.RECONCILE, notify=False)
    return customer


def checkout_session_create(*, user: User, plan: str, interval: str) -> stripe.checkout.Session:
    """Create the Checkout Session that sells `plan` (`interval`) to `user`, or raise
    NotAnUpgrade with the reason, for the customer, why it cannot be sold.

    Decided under a lock on the user row from what the app has opened as well as the
    synced rows (CheckoutOpened): a session paid a moment ago, whose webhook is not
    processed yet, is fulfilled first, and the sale decided again with it, so that two
    tabs, a double click or a second checkout a second later never sell a second
    subscription or a second trial. Any earlier open subscription Session of the user is
    expired (this one replaces it). A customer's first subscription starts with
    BILLING_TRIAL_DAYS free days (billing.offers.trial_days), Checkout collecting the
    card up front.
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
        # A paid invoice for the one-off (a subscription gets its own anyway): the
        # customer's receipt with the VAT, on the billing page and in Stripe's email.
        params["invoice_creation"] = {"enabled": True, "invoice_data": {"metadata": metadata}}
    days = 0
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=user.pk).first()
        customer = customer_for(user)
        _opened_settle(user=user, expire_subscriptions=mode == "subscription")
        _offer_confirm(user=user, plan=plan, interval=interval)
        if mode == "subscription":
            params["subscription_data"] = {"metadata": metadata}
            # Decided under the user's lock, from the synced subscriptions and the
            # sessions settled above: never from what the page showed (trial_days).
            if days := trial_days(user):
                params["subscription_data"]["trial_period_days"] = days
                # Stripe's default too; said so that a card is always taken for the
                # charge at the trial's end.
                params["payment_method_collection"] = "always"
            _expire_open_subscription_sessions(customer.id)
        session = stripe.checkout.Session.create(customer=customer.id, **params, **api_kwargs())
        CheckoutOpened.objects.create(
            user=user,
            session_id=session.id,
            mode=mode,
            plan=plan,
            interval=interval,
            trial_days=days,
        )
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


def _offer_confirm(*, user: User, plan: str, interval: str) -> None:
    """The view's offer check again, under the lock and after _opened_settle: a
    subscription paid meanwhile makes this purchase a switch or nothing at all."""
    offer = offer_check(user=user, plan=plan, interval=interval)
    if offer.kind == Kind.CHECKOUT:
        return
    current = holdings_of(user).subscription_plan
    raise NotAnUpgrade(
        f"Your payment for {Plan(current).label if current else 'your plan'} has just gone "
        f"through. To move to {Plan(plan).label}, upgrade your subscription from the "
        "pricing page: nothing more was charged."
    )


def _opened_settle(*, user: User, expire_subscriptions: bool) -> None:
    """Bring the sessions the app opened for `user`, and has not seen end, up to date
    with Stripe: one completed meanwhile is fulfilled now (its subscription synced, its
    one-off recorded: the same as the success page does), whatever its webhook is doing;
    with `expire_subscriptions`, an open subscription session is expired (the new one
    replaces it)."""
    for opened in CheckoutOpened.objects.filter(user=user, status=CheckoutOpened.Status.OPEN):
        session = stripe.checkout.Session.retrieve(opened.session_id, **api_kwargs()).to_dict()
        if session["status"] == "open" and expire_subscriptions and opened.mode == "subscription":
            # Completed between the two calls, it cannot be expired: read what it became.
            with contextlib.suppress(stripe.InvalidRequestError):
                stripe.checkout.Session.expire(opened.session_id, **api_kwargs())
            session = stripe.checkout.Session.retrieve(opened.session_id, **api_kwargs()).to_dict()
        if session["status"] == "complete":
            # Paid: fulfilled; a debit still processing: kept as a pending payment.
            checkout_fulfil(session=session, user=user)
        if session["status"] != "open":
            CheckoutOpened.objects.filter(pk=opened.pk).update(status=session["status"])


def _expire_open_subscription_sessions(customer_id: str) -> None:
    """Expire every open subscription session of the customer: Stripe's list, which also
    has the ones opened before CheckoutOpened was kept, or by another integration."""
    open_sessions = stripe.checkout.Session.list(
        customer=customer_id, status="open", **api_kwargs()
    )
    for session in open_sessions.auto_paging_iter():
        if session.to_dict().get("mode") == "subscription":
            try:
                stripe.checkout.Session.expire(session.id, **api_kwargs())
            except stripe.InvalidRequestError:
                # Paid meanwhile: what it bought is fulfilled by its own events, and a
                # second subscription undone (billing.duplicates).
                logger.info("Session %s completed before it could be expired", session.id)
                continue
            CheckoutOpened.objects.filter(session_id=session.id).update(
                status=CheckoutOpened.Status.EXPIRED
            )


def _stripe_id(value: Any) -> str:
    return value.get("id", "") if isinstance(value, dict) else (value or "")


def _subscription_sync(subscription_id: str) -> None:
    """Make dj-stripe's copy of a subscription current (re-read from Stripe), with the
    invoice Stripe is retrying when it is past_due (retried_invoice_sync)."""
    if subscription_fetched(subscription_id):
        # dj-stripe has just made this very GET and stored Stripe's answer, in this
        # event's processing, under the customer's lock: as fresh as a read now, for a
        # change at Stripe after it sends its own event, processed after this one and
        # read again (billing/webhook_queue.py customer_lock). A second GET would only
        # spend a request of Stripe's rate limit.
        synced = synced_data(Subscription, subscription_id)
        if synced:  # else a savepoint rolled its creation back: asked below
            retried_invoice_sync(synced)
            return
    data = stripe.Subscription.retrieve(subscription_id, **api_kwargs())
    Subscription.sync_from_stripe_data(data, api_key=djstripe_settings.STRIPE_SECRET_KEY)
    retried_invoice_sync(data.to_dict())


# dj-stripe's invoice sync (Invoice.expand_fields) wants the discounts as objects and fails
# on bare ids ('str' object has no attribute 'get'): a promotion code's invoice.
_INVOICE_EXPAND = ["discounts", "lines.data.discounts"]


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
    invoice = stripe.Invoice.retrieve(latest_id, expand=_INVOICE_EXPAND, **api_kwargs())
    Invoice.sync_from_stripe_data(invoice, api_key=djstripe_settings.STRIPE_SECRET_KEY)
    if invoice.status == "open" and not invoice.next_payment_attempt:
        # Not retried: Stripe gave up, or the payment waits for 3-D Secure, which keeps
        # the plan in the grace (billing.dunning.awaiting_authentication_load reads the
        # synced PaymentIntents: their own events may come later).
        _invoice_payment_intents_sync(latest_id)


def _invoice_payment_intents_sync(invoice_id: str) -> None:
    for intent_id in invoice_payment_intent_ids(invoice_id):
        PaymentIntent.sync_from_stripe_data(
            stripe.PaymentIntent.retrieve(intent_id, **api_kwargs()),
            api_key=djstripe_settings.STRIPE_SECRET_KEY,
        )


def _invoice_id(session: Mapping[str, Any]) -> str:
    invoice = session.get("invoice") or ""
    return invoice.get("id", "") if isinstance(invoice, dict) else invoice


def _oneoff_invoice_sync(session: Mapping[str, Any]) -> None:
    """Sync the paid invoice Checkout made for a one-off (`invoice_creation`), so the
    billing page links it at once, before its own events are processed."""
    if invoice_id := _invoice_id(session):
        # Expanded as dj-stripe's own sync asks (Invoice.expand_fields): it syncs the
        # discounts (a promotion code's) as objects and fails on bare ids.
        invoice = stripe.Invoice.retrieve(invoice_id, expand=_INVOICE_EXPAND, **api_kwargs())
        Invoice.sync_from_stripe_data(invoice, api_key=djstripe_settings.STRIPE_SECRET_KEY)


def _oneoff_record(*, session: dict[str, Any], user: User, stripe_event_id: str) -> None:
    recorded = OneOffPurchase.objects.filter(checkout_session_id=session["id"])
    if recorded.exists():
        # Recorded before its invoice was known (a purchase from before invoices).
        if invoice_id := _invoice_id(session):
            recorded.filter(invoice_id="").update(invoice_id=invoice_id)
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
                "invoice_id": _invoice_id(session),
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
        if schedule_id := _stripe_id(data.get("schedule")):
            # A planned change (billing/period_end.py) is a schedule, which would go on
            # to bill its next phase, and Stripe refuses cancel_at_period_end while one
            # manages the subscription: released first, as a cancellation does.
            try:
                schedule = stripe.SubscriptionSchedule.release(schedule_id, **api_kwargs())
            except stripe.InvalidRequestError:
                # Released already (a retry: the synced copy was older); if it were not,
                # the modify below says so and the event is retried.
                logger.info("Schedule %s of %s released already", schedule_id, data["id"])
            else:
                SubscriptionSchedule.sync_from_stripe_data(
                    schedule, api_key=djstripe_settings.STRIPE_SECRET_KEY
                )
        # The metadata says why, so that the cancellation is told in the one-off's own
        # message (billing/messages.py), not in a second one (billing/notices.py).
        updated = stripe.Subscription.modify(
            data["id"],
            cancel_at_period_end=True,
            metadata={ENDED_BY_ONEOFF: session_id},
            **api_kwargs(),
        )
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
    a URL or an unverified payload). A session completed by a delayed payment method
    (a Bacs debit: complete, unpaid) grants nothing yet: it is kept as a pending payment
    (`pending_payment_record`), its subscription synced.
    """
    if session.get("status") == "complete" and session.get("payment_status") == "unpaid":
        pending_payment_record(session=session, user=user)
        if sub := session.get("subscription"):
            _subscription_sync(sub["id"] if isinstance(sub, dict) else sub)
    if session.get("status") == "complete" and session.get("payment_status") in PAID:
        with transaction.atomic():
            CheckoutOpened.objects.filter(session_id=session["id"]).update(
                status=CheckoutOpened.Status.COMPLETE
            )
            CheckoutOpened.objects.filter(
                session_id=session["id"], payment=CheckoutOpened.Payment.PROCESSING
            ).update(payment=CheckoutOpened.Payment.PAID)
            if session.get("mode") == "payment":
                _oneoff_record(session=session, user=user, stripe_event_id=stripe_event_id)
                _oneoff_invoice_sync(session)
            elif session.get("subscription"):
                sub = session["subscription"]
                _subscription_sync(sub["id"] if isinstance(sub, dict) else sub)
        if session.get("mode") == "payment":
            _subscriptions_end_after_oneoff(session_id=session["id"], user=user)
        elif session.get("subscription"):
            # Paid: any other subscription session the customer still has open would
            # sell a second subscription.
            if customer_id := _stripe_id(session.get("customer")):
                _expire_open_subscription_sessions(customer_id)
            duplicate_subscriptions_resolve(user=user, stripe_event_id=stripe_event_id)
    return plan_refresh(
        user=user, source=PlanChange.Source.CHECKOUT, stripe_event_id=stripe_event_id
    )


def _opened_row(*, session: Mapping[str, Any], user: User) -> CheckoutOpened:
    """The app's row of `session`; made from the session's metadata for one the app
    has no row of (opened before rows were kept)."""
    metadata = session.get("metadata") or {}
    plan = str(metadata.get("plan") or "")
    opened, _ = CheckoutOpened.objects.get_or_create(
        session_id=session["id"],
        defaults={
            "user": user,
            "mode": session.get("mode") or "",
            "plan": plan if plan in Plan.values else Plan.STARTER,
            "interval": metadata.get("interval") or "",
        },
    )
    return opened


def pending_payment_record(*, session: Mapping[str, Any], user: User) -> None:
    """A session completed unpaid (a Bacs debit the bank has yet to answer): kept as a
    payment processing, with Stripe's amount, until the bank's answer. A late
    `checkout.session.completed`, after that answer was recorded, changes nothing."""
    with transaction.atomic():
        opened = _opened_row(session=session, user=user)
        CheckoutOpened.objects.filter(pk=opened.pk, payment=CheckoutOpened.Payment.NONE).update(
            status=CheckoutOpened.Status.COMPLETE,
            payment=CheckoutOpened.Payment.PROCESSING,
            amount=session.get("amount_total"),
            currency=session.get("currency") or "",
            processing_since=timezone.now(),
        )


def pending_payment_failed(*, session: Mapping[str, Any], user: User) -> bool:
    """The bank refused the debit (`checkout.session.async_payment_failed`): the payment
    is no longer pending. Whether this call recorded it (False: recorded already)."""
    with transaction.atomic():
        opened = _opened_row(session=session, user=user)
        return bool(
            CheckoutOpened.objects.filter(pk=opened.pk)
            .exclude(payment=CheckoutOpened.Payment.FAILED)
            .update(
                status=CheckoutOpened.Status.COMPLETE,
                payment=CheckoutOpened.Payment.FAILED,
                amount=session.get("amount_total"),
                currency=session.get("currency") or "",
            )
        )


@dataclass(frozen=True)
class SwitchQuote:
    """What an upgrade costs: Stripe's preview of the invoice the switch would make now
    (its lines: the credit for unused time, the new plan; VAT and discounts), and Stripe's
    preview of each renewal after it (None when the billing cycle restarts now)."""

    amount_due: int
    currency: str
    proration_date: int
    lines: list[dict[str, Any]]
    subtotal: int
    discount: int
    tax: int
    tax_inclusive: bool
    renewal_amount: int | None = None
    renewal_at: datetime | None = None


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


def _proration_moment(preview: dict[str, Any]) -> int | None:
    """Stripe's own "now" in a preview: its proration lines start at the proration date.
    Read from the answer, not our wall clock, so that a sandbox whose clock was moved on
    (or a Stripe test clock) quotes and charges the same moment."""
    starts = [
        int(line["period"]["start"])
        for line in (preview.get("lines") or {}).get("data") or []
        if ((line.get("parent") or {}).get("subscription_item_details") or {}).get("proration")
    ]
    return min(starts) if starts else None


def switch_preview(
    *,
    subscription: dict[str, Any],
    plan: str,
    interval: str = Interval.MONTHLY,
    proration_date: int | None = None,
) -> SwitchQuote:
    """Stripe's preview of the invoice an upgrade to `plan` (`interval`) would charge
    now, prorated to `proration_date` (Stripe's now by default), and of the renewals after
    it. Saves and charges nothing. To annual from monthly, Stripe resets the billing cycle
    to now: the preview is the year's price less the unused part of the month."""
    items = _switch_items(subscription, plan, interval)
    details: InvoiceCreatePreviewParamsSubscriptionDetails = {
        "items": items,
        "proration_behavior": "always_invoice",
    }
    if proration_date:
        details["proration_date"] = proration_date
    preview = stripe.Invoice.create_preview(
        customer=subscription["customer"],
        subscription=subscription["id"],
        subscription_details=details,
        **api_kwargs(),
    ).to_dict()
    when = proration_date or _proration_moment(preview) or int(preview["created"])
    charged = next_charge_values(preview)
    renewal = None
    sold = subscription_sells(subscription)
    if sold is not None and recurring_interval(sold.item.get("price") or {}) == interval:
        # The next renewal at the new price: no proration, so it bills only the period.
        renewal = next_charge_values(
            stripe.Invoice.create_preview(
                customer=subscription["customer"],
                subscription=subscription["id"],
                subscription_details={"items": items, "proration_behavior": "none"},
                **api_kwargs(),
            ).to_dict()
        )
    return SwitchQuote(
        amount_due=charged["amount_due"],
        currency=charged["currency"],
        proration_date=when,
        lines=charged["lines"],
        subtotal=charged["subtotal"],
        discount=charged["discount"],
        tax=charged["tax"],
        tax_inclusive=charged["tax_inclusive"],
        renewal_amount=renewal["amount_due"] if renewal else None,
        renewal_at=renewal["due_at"] if renewal else None,
    )


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
        needs_authentication=invoice_waits_for_authentication(invoice),
    )


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
