"""Collecting invoices over time, as Stripe Billing does on a test clock: payments that
need 3-D Secure, dunning (retries of a failed renewal on a schedule, then the end state),
paying an open invoice (hosted page, `POST /v1/invoices/{id}/pay`, the command), the
customer's card, subscriptions created outside Checkout (`incomplete` and
`incomplete_expired`), and the clock that makes all of it happen in time order.

The payments and invoice builders are invoices.py's, shared with actions.py; what is
new lives here.
"""

from __future__ import annotations

import copy
import logging
import random
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from devtools.stripe_sandbox import actions, invoices, objects, store
from devtools.stripe_sandbox.events import changes, event_emit
from devtools.stripe_sandbox.objects import (
    CARD_3DS_ALWAYS,
    CARD_3DS_ONCE,
    CARD_DECLINED,
    CARD_OK,
    CARD_RENEWAL_FAILS,
    CARDS,
    TEST_PAYMENT_METHODS,
)
from devtools.stripe_sandbox.store import Obj, StripeError

logger = logging.getLogger(__name__)

# Stripe: an incomplete subscription whose first invoice is not paid in 23 hours expires.
INCOMPLETE_SECONDS = 23 * 3600
# Stripe: a subscription's renewal invoice is a draft for about an hour after
# `invoice.created`, then finalized and charged (automatic advancement).
FINALIZE_SECONDS = 3600
PAID, FAILED, ACTION_REQUIRED = "paid", "failed", "action_required"


class AuthenticationRequired(invoices.PaymentError):
    """The card needs 3-D Secure: the page shows its authentication step."""


# --- Cards ------------------------------------------------------------------------------


def card_check(card_number: str) -> str:
    """The normalized test card, or PaymentError listing the test cards."""
    card = invoices.card_normalize(card_number)
    if card not in CARDS:
        listed = ", ".join(f"{objects.card_display(n)} ({note})" for n, note in objects.CARD_NOTES)
        raise invoices.PaymentError(f"The sandbox accepts only its test cards: {listed}.")
    return card


def needs_authentication(card: str, *, on_session: bool) -> bool:
    """3184 asks for 3-D Secure on every payment; 3155 only when the customer is there
    (setting the card up: Checkout, a new card on the invoice page), not off-session."""
    return card == CARD_3DS_ALWAYS or (card == CARD_3DS_ONCE and on_session)


def card_declines(card: str) -> bool:
    """0002 is always declined; 0341 is declined on every payment after it was set up."""
    return card in {CARD_DECLINED, CARD_RENEWAL_FAILS}


def card_of(customer: Obj, sub: Obj | None = None) -> str | None:
    """The card a payment uses: the subscription's, else the customer's default."""
    return (sub or {}).get("_card") or customer.get("_card")


def customer_card_set(customer_id: str, card: str) -> Obj:
    """Make `card` the customer's default payment method (and that of their live
    subscriptions): payment_method.attached, customer.updated. Retries use it."""
    with transaction.atomic():
        customer = store.get(customer_id, "customer", lock=True)
        before = copy.deepcopy(customer)
        pm = store.save(objects.payment_method(card=card, customer_id=customer_id))
        event_emit("payment_method.attached", pm)
        customer["invoice_settings"]["default_payment_method"] = pm["id"]
        customer["_card"] = card
        store.save(customer)
        event_emit("customer.updated", customer, previous=changes(before, customer))
        for sub in store.all_of("subscription"):
            if sub["customer"] == customer_id and sub["status"] not in {
                "canceled",
                "incomplete_expired",
            }:
                sub["_card"] = card
                store.save(sub)
        return pm


def card_from_payment_method(pm_id: str, *, param: str) -> str:
    """The card of a stored PaymentMethod or of one of Stripe's test ids (pm_card_visa)."""
    if pm_id in TEST_PAYMENT_METHODS:
        return TEST_PAYMENT_METHODS[pm_id]
    pm = store.find(pm_id, "payment_method")
    if pm is None:
        raise store.missing("payment_method", pm_id, param=param, status=400)
    card: str = pm["_card"]
    return card


# --- One attempt at an invoice ----------------------------------------------------------


def invoice_finalize(invoice: Obj) -> None:
    """Draft -> open, with the hosted page and its printable version: invoice.finalized."""
    ts = store.now()
    invoice["status"] = "open"
    invoice["automatically_finalizes_at"] = None
    invoice["effective_at"] = ts
    invoice["status_transitions"]["finalized_at"] = ts
    invoice_urls(invoice)
    store.save(invoice)
    event_emit("invoice.finalized", invoice)


def invoice_urls(invoice: Obj) -> None:
    base = f"{settings.SITE_URL}/sandbox/invoice/{invoice['id']}/"
    invoice["hosted_invoice_url"] = base
    invoice["invoice_pdf"] = f"{base}pdf/"


def _requires_action(invoice: Obj, customer: Obj, card: str, description: str) -> Obj:
    """A PaymentIntent waiting for 3-D Secure (no charge yet): payment_intent.requires_action."""
    pi = objects.payment_intent(
        amount=invoice["amount_due"],
        currency=invoice["currency"],
        customer_id=customer["id"],
        metadata={},
        description=description,
    )
    pi["status"] = "requires_action"
    pi["next_action"] = {
        "type": "use_stripe_sdk",
        "use_stripe_sdk": {
            "type": "three_d_secure_redirect",
            "stripe_js": invoice.get("hosted_invoice_url"),
        },
    }
    pi["last_payment_error"] = {
        "type": "card_error",
        "code": "authentication_required",
        "decline_code": "authentication_required",
        "message": "Your card was declined. This transaction requires authentication.",
    }
    pi["_card"] = card
    store.save(pi)
    event_emit("payment_intent.requires_action", pi)
    return pi


def invoice_attempt(
    invoice: Obj,
    *,
    customer: Obj,
    card: str | None,
    on_session: bool = False,
    authenticated: bool = False,
    description: str = "Subscription update",
    decline: bool | None = None,
    confirm: Obj | None = None,
    reschedule: bool = True,
) -> str:
    """Try to collect open invoice `invoice` once with `card`; returns PAID, FAILED or
    ACTION_REQUIRED after emitting Stripe's events. `decline` forces the outcome (the
    `fail`/`renew` commands); `authenticated` is a 3-D Secure the customer completed,
    on the PaymentIntent `confirm` that was waiting for it. A failure schedules the next
    retry (`next_payment_attempt`) or, after the last, leaves it null."""
    if invoice["amount_due"] <= 0:
        outcome = PAID
    elif confirm is not None:
        charge = objects.charge(pi=confirm, card=card or confirm["_card"], succeeded=True)
        _three_d_secure(charge)
        confirm.update(
            status="succeeded",
            amount_received=confirm["amount"],
            latest_charge=charge["id"],
            next_action=None,
            last_payment_error=None,
        )
        store.save(confirm)
        store.save(charge)
        invoices.payment_emit(confirm, charge)
        outcome = PAID
    elif card is None:
        outcome = FAILED
    elif (
        decline is None and not authenticated and needs_authentication(card, on_session=on_session)
    ):
        outcome = ACTION_REQUIRED
    else:
        declines = card_declines(card) if decline is None else decline
        pi, charge = invoices.payment_create(
            customer_id=customer["id"],
            amount=invoice["amount_due"],
            currency=invoice["currency"],
            card=card,
            succeed=not declines,
            description=description,
        )
        if authenticated:
            _three_d_secure(charge)
            store.save(charge)
        invoices.payment_emit(pi, charge)
        invoice["_payment_intent"] = pi["id"]
        outcome = FAILED if declines else PAID
    if outcome == ACTION_REQUIRED:
        pi = _requires_action(invoice, customer, card or "", description)
        invoice["_payment_intent"] = pi["id"]
    invoice["attempted"] = True
    invoice["attempt_count"] += 1
    if outcome == PAID:
        ts = store.now()
        invoice["status"] = "paid"
        invoice["amount_paid"] = invoice["amount_due"]
        invoice["amount_remaining"] = 0
        invoice["next_payment_attempt"] = None
        invoice["status_transitions"]["paid_at"] = ts
        store.save(invoice)
        event_emit("invoice.paid", invoice)
        event_emit("invoice.payment_succeeded", invoice)
        return outcome
    if reschedule:
        # A payment waiting for 3-D Secure is not retried on the schedule: only the
        # customer can complete it (Stripe: "the payment will not automatically retry
        # based on your retry settings"; it waits to be authenticated).
        invoice["next_payment_attempt"] = (
            None if outcome == ACTION_REQUIRED else _next_attempt(invoice)
        )
        if outcome == ACTION_REQUIRED and _subscription_id(invoice):
            # Unconfirmed by the end of the retry window, the account's dunning end state
            # applies as after a last failed retry (Stripe's setting for payments that
            # need confirmation; kept private: not part of Stripe's invoice).
            invoice["_confirm_by"] = _retry_window_end(invoice)
    store.save(invoice)
    # A payment waiting for 3-D Secure is a failed attempt too: Stripe sends
    # invoice.payment_failed for it and invoice.payment_action_required beside it.
    event_emit("invoice.payment_failed", invoice)
    if outcome == ACTION_REQUIRED:
        event_emit("invoice.payment_action_required", invoice)
    return outcome


def _three_d_secure(charge: Obj) -> None:
    charge["payment_method_details"]["card"]["three_d_secure"] = {
        "authentication_flow": "challenge",
        "result": "authenticated",
        "result_reason": None,
        "version": "2.2.0",
    }


def _next_attempt(invoice: Obj) -> int | None:
    """When the next retry of a failed subscription invoice comes, by the account's retry
    policy; none after the last. Only subscription invoices are retried.

    - "fixed", Stripe's custom retry schedule: retry k comes RETRY_DAYS[k-1] days after
      the previous attempt.
    - "smart", Smart Retries (Stripe's default): SMART_RETRIES retries within
      SMART_RETRY_DAYS of the first failed attempt (smart_retry_offsets)."""
    if invoice.get("billing_reason") == "subscription_create" or not _subscription_id(invoice):
        return None
    retries_done = invoice.get("_retries", 0)
    if settings.STRIPE_SANDBOX_RETRY_POLICY == "smart":
        offsets = smart_retry_offsets()
        if retries_done >= len(offsets):
            return None
        first = invoice["status_transitions"]["finalized_at"] or store.now()
        return first + offsets[retries_done]
    days = settings.STRIPE_SANDBOX_RETRY_DAYS
    if retries_done >= len(days):
        return None
    return store.now() + days[retries_done] * 86400


def _retry_window_end(invoice: Obj) -> int:
    """When the retry policy's window closes for an invoice first attempted at its
    `finalized_at`: the last fixed retry's day, or the end of Smart Retries' window."""
    first = invoice["status_transitions"].get("finalized_at") or store.now()
    if settings.STRIPE_SANDBOX_RETRY_POLICY == "smart":
        smart_days: int = settings.STRIPE_SANDBOX_SMART_RETRY_DAYS
        return first + smart_days * 86400
    return first + sum(settings.STRIPE_SANDBOX_RETRY_DAYS) * 86400


def smart_retry_offsets(*, seed: int | None = None) -> list[int]:
    """Seconds after the first failed attempt at which Smart Retries retry, as the sandbox
    chooses them (Stripe's model picks its own times; the sandbox cannot): the window of
    SMART_RETRY_DAYS is cut into SMART_RETRIES equal slots and retry k falls at a point of
    slot k drawn from STRIPE_SANDBOX_SEED alone, so the same seed gives the same schedule.
    The first retry is at least an hour after the failure, the last within the window."""
    count = settings.STRIPE_SANDBOX_SMART_RETRIES
    slot = settings.STRIPE_SANDBOX_SMART_RETRY_DAYS * 86400 // count
    choices = random.Random(
        f"{settings.STRIPE_SANDBOX_SEED if seed is None else seed}:smart-retries"
    )
    return [max(k * slot + choices.randint(1, slot), 3600) for k in range(count)]


def _subscription_id(invoice: Obj) -> str | None:
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    return details.get("subscription")


def _status_set(sub: Obj, status: str) -> None:
    if sub["status"] != status:
        before = copy.deepcopy(sub)
        sub["status"] = status
        invoices.subscription_save(sub)
        event_emit("customer.subscription.updated", sub, previous=changes(before, sub))


def renewal_schedule(invoice: Obj) -> None:
    """Leave a new renewal invoice a draft that Stripe finalizes and charges an hour later
    (the clock's "finalize" step: renewal_finalize)."""
    invoice["auto_advance"] = True
    invoice["automatically_finalizes_at"] = store.now() + FINALIZE_SECONDS


def renewal_finalize(invoice_id: str) -> str | None:
    """The hour after `invoice.created` is over: finalize the renewal draft and charge it
    (renewal_collect). A subscription that ended meanwhile leaves its draft alone."""
    with transaction.atomic():
        invoice = store.get(invoice_id, "invoice", lock=True)
        if invoice["status"] != "draft":
            return None
        sub_id = _subscription_id(invoice)
        sub = store.find(sub_id, "subscription") if sub_id else None
        if sub is None or sub["status"] not in actions.LIVE:
            invoice["auto_advance"] = False
            invoice["automatically_finalizes_at"] = None
            store.save(invoice)
            return None
        customer = store.get(invoice["customer"], "customer")
        return renewal_collect(sub, invoice, customer, decline=None)


def renewal_collect(sub: Obj, invoice: Obj, customer: Obj, *, decline: bool | None) -> str:
    """Finalize and attempt a renewal invoice; the subscription goes active or past_due."""
    invoice_finalize(invoice)
    outcome = invoice_attempt(
        invoice,
        customer=customer,
        card=card_of(customer, sub) or CARD_OK,
        decline=decline,
    )
    _status_set(sub, "active" if outcome == PAID else "past_due")
    return outcome


def _after_paid(invoice: Obj) -> None:
    """A paid subscription invoice makes its (past_due, unpaid, incomplete) subscription
    active; a canceled one stays canceled. A pending update (payment_behavior=
    pending_if_incomplete) that waited for exactly this payment is applied."""
    if actions.pending_update_settle(invoice):
        return
    sub_id = _subscription_id(invoice)
    sub = store.find(sub_id, "subscription") if sub_id else None
    if sub is None or sub["status"] not in {"past_due", "unpaid", "incomplete"}:
        return
    if sub.get("latest_invoice") != invoice["id"] and sub["status"] != "incomplete":
        # An older invoice paid while a newer one is still open leaves the status.
        latest = store.find(sub.get("latest_invoice") or "", "invoice")
        if latest and latest["status"] == "open":
            return
    _status_set(sub, "active")


def invoice_retry(invoice_id: str) -> str:
    """The scheduled retry of an open renewal invoice (the clock reached
    `next_payment_attempt`); after the last failed one, the dunning end state."""
    with transaction.atomic():
        invoice = store.get(invoice_id, "invoice", lock=True)
        sub_id = _subscription_id(invoice)
        sub = store.find(sub_id, "subscription") if sub_id else None
        if sub is not None and sub["status"] not in actions.LIVE:
            # The subscription ended meanwhile (canceled): its invoice is no longer retried.
            before = copy.deepcopy(invoice)
            invoice["next_payment_attempt"] = None
            store.save(invoice)
            event_emit("invoice.updated", invoice, previous=changes(before, invoice))
            return FAILED
        customer = store.get(invoice["customer"], "customer")
        invoice["_retries"] = invoice.get("_retries", 0) + 1
        outcome = invoice_attempt(invoice, customer=customer, card=card_of(customer, sub))
        if outcome == PAID:
            _after_paid(invoice)
        elif outcome == FAILED and invoice["next_payment_attempt"] is None and sub is not None:
            # The last retry failed. One that met 3-D Secure is not "failed": it waits for
            # the customer, and no further retry or end state comes from the schedule.
            _dunning_end(sub)
        return outcome


def confirmation_expire(invoice_id: str) -> bool:
    """A renewal left waiting for 3-D Secure to the end of the retry window: the dunning
    end state, as after a last failed retry. True when that cancelled the subscription."""
    with transaction.atomic():
        invoice = store.get(invoice_id, "invoice", lock=True)
        invoice.pop("_confirm_by", None)
        store.save(invoice)
        sub_id = _subscription_id(invoice)
        sub = store.find(sub_id, "subscription") if sub_id else None
        if invoice["status"] != "open" or sub is None:
            return False
        _dunning_end(sub)
        ended: str = store.get(sub["id"], "subscription")["status"]
        return ended == "canceled"


def _dunning_end(sub: Obj) -> None:
    end = settings.STRIPE_SANDBOX_DUNNING_END
    if sub["status"] != "past_due":
        return  # paid meanwhile (a later renewal went through): nothing to end
    if end == "cancel":
        actions.subscription_cancel(sub["id"], reason="payment_failed")
    elif end == "unpaid":
        _status_set(sub, "unpaid")


def invoice_pay(
    invoice_id: str,
    *,
    card: str | None = None,
    on_session: bool = True,
    authenticated: bool = False,
) -> str:
    """Pay open invoice `invoice_id` now (the hosted page, `POST /v1/invoices/{id}/pay`,
    `pay-invoice`) with `card` or the customer's default. Returns PAID, FAILED or
    ACTION_REQUIRED; a payment waiting for 3-D Secure is completed with `authenticated`."""
    with transaction.atomic():
        invoice = store.get(invoice_id, "invoice", lock=True)
        if invoice["status"] == "paid":
            raise StripeError("Invoice is already paid", code="invoice_already_paid")
        # Stripe takes a payment for an uncollectible invoice too (a bad debt paid late).
        if invoice["status"] not in ("open", "uncollectible"):
            raise StripeError(
                f"You can only pay an open invoice; this one is {invoice['status']}.",
                code="invoice_not_open",
            )
        customer = store.get(invoice["customer"], "customer")
        sub_id = _subscription_id(invoice)
        sub = store.find(sub_id, "subscription") if sub_id else None
        card = card or card_of(customer, sub)
        if card is None:
            raise StripeError(
                "This customer has no attached payment source or default payment method.",
                code="resource_missing",
            )
        waiting = store.find(invoice.get("_payment_intent") or "", "payment_intent")
        if not (authenticated and waiting and waiting["status"] == "requires_action"):
            waiting = None
        outcome = invoice_attempt(
            invoice,
            customer=customer,
            card=card,
            on_session=on_session,
            authenticated=authenticated,
            description="Payment for Invoice",
            confirm=waiting,
            # A payment the customer makes does not move Stripe's retry schedule.
            reschedule=False,
        )
        if outcome == PAID:
            _after_paid(invoice)
        return outcome


def invoice_void(invoice_id: str) -> Obj:
    """POST /v1/invoices/{id}/void: an open or uncollectible invoice is closed for good
    (status void, never payable again): invoice.voided."""
    with transaction.atomic():
        invoice = store.get(invoice_id, "invoice", lock=True)
        if invoice["status"] not in ("open", "uncollectible"):
            raise StripeError(
                f"You can only void an open or uncollectible invoice; this one is "
                f"{invoice['status']}.",
                code="invoice_not_open",
            )
        invoice.update(status="void", next_payment_attempt=None, auto_advance=False)
        invoice["status_transitions"]["voided_at"] = store.now()
        store.save(invoice)
        event_emit("invoice.voided", invoice)
        return invoice


def invoice_mark_uncollectible(invoice_id: str) -> Obj:
    """POST /v1/invoices/{id}/mark_uncollectible: an open invoice is written off (no more
    automatic attempts; Stripe still takes a payment for it): invoice.marked_uncollectible."""
    with transaction.atomic():
        invoice = store.get(invoice_id, "invoice", lock=True)
        if invoice["status"] != "open":
            raise StripeError(
                f"You can only mark an open invoice uncollectible; this one is "
                f"{invoice['status']}.",
                code="invoice_not_open",
            )
        invoice.update(status="uncollectible", next_payment_attempt=None, auto_advance=False)
        invoice["status_transitions"]["marked_uncollectible_at"] = store.now()
        store.save(invoice)
        event_emit("invoice.marked_uncollectible", invoice)
        return invoice


def collection_stop(sub_id: str) -> None:
    """A subscription was cancelled: Stripe stops the automatic collection of its open
    invoices (no more retries), but leaves them open, and payable on their hosted page."""
    for invoice in store.all_of("invoice"):
        if invoice["status"] != "open" or _subscription_id(invoice) != sub_id:
            continue
        if not invoice.get("next_payment_attempt") and not invoice.get("auto_advance"):
            continue
        before = copy.deepcopy(invoice)
        invoice.update(next_payment_attempt=None, auto_advance=False)
        store.save(invoice)
        event_emit("invoice.updated", invoice, previous=changes(before, invoice))


def invoice_open_of(customer_id: str) -> Obj:
    found = [
        i for i in store.all_of("invoice") if i["customer"] == customer_id and i["status"] == "open"
    ]
    if not found:
        raise StripeError(f"The customer {customer_id} has no open invoice.", status=404)
    return found[0]


def authentication_fail(invoice_id: str) -> None:
    """The customer failed 3-D Secure on the hosted page: the payment stays unpaid."""
    with transaction.atomic():
        invoice = store.get(invoice_id, "invoice", lock=True)
        pi = store.find(invoice.get("_payment_intent") or "", "payment_intent")
        if pi is None or pi["status"] != "requires_action":
            return
        before = copy.deepcopy(pi)
        pi.update(
            status="requires_payment_method",
            next_action=None,
            last_payment_error={
                "type": "card_error",
                "code": "payment_intent_authentication_failure",
                "message": "The provided PaymentMethod has failed authentication.",
            },
        )
        store.save(pi)
        event_emit("payment_intent.payment_failed", pi, previous=changes(before, pi))


# --- Subscriptions created through the API ----------------------------------------------

PAYMENT_BEHAVIORS = {"allow_incomplete", "default_incomplete", "error_if_incomplete"}


def subscription_create(params: Obj) -> Obj:
    """POST /v1/subscriptions: `customer`, `items[i][price]` (+ `quantity`), `metadata`,
    `default_payment_method` (a stored pm_ or Stripe's test ids), `payment_behavior`
    (allow_incomplete, Stripe's default; default_incomplete; error_if_incomplete)."""
    customer_id = params.get("customer") or ""
    customer = store.find(customer_id, "customer")
    if customer is None:
        raise store.missing("customer", customer_id, param="customer", status=400)
    behavior = params.get("payment_behavior") or "allow_incomplete"
    if behavior not in PAYMENT_BEHAVIORS:
        raise StripeError(f"Invalid payment_behavior: {behavior}", param="payment_behavior")
    items = params.get("items") or []
    if not items:
        raise StripeError("Missing required param: items.", param="items")
    card = None
    if pm_id := params.get("default_payment_method"):
        card = card_from_payment_method(pm_id, param="default_payment_method")
    card = card or customer.get("_card")
    if card is None and behavior != "default_incomplete":
        raise StripeError(
            "This customer has no attached payment source or default payment method. Please "
            "consider adding a default payment method.",
            code="resource_missing",
        )
    prices = []
    for index, item in enumerate(items):
        price = store.find(item.get("price") or "", "price")
        if price is None or not price.get("recurring") or not price["active"]:
            raise StripeError(
                f"No such active recurring price: '{item.get('price')}'",
                param=f"items[{index}][price]",
                code="resource_missing",
            )
        prices.append((price, int(item.get("quantity") or 1)))
    sub = objects.subscription(
        customer_id=customer_id,
        currency=prices[0][0]["currency"],
        metadata=objects.metadata_merge({}, params.get("metadata")),
        card=card or "",
    )
    sub["status"] = "incomplete"
    if params.get("default_payment_method"):
        sub["default_payment_method"] = params["default_payment_method"]
    for price, quantity in prices:
        sub["items"]["data"].append(
            objects.subscription_item(
                price_obj=price, subscription_id=sub["id"], quantity=quantity, start=sub["created"]
            )
        )
    invoices.subscription_save(sub)
    event_emit("customer.subscription.created", sub)
    period = invoices.items_period(sub)
    invoice = invoices.invoice_new(customer, sub, reason="subscription_create", period=period)
    invoice["lines"]["data"] = [
        invoices.item_line(invoice, sub, item, period) for item in sub["items"]["data"]
    ]
    invoices.invoice_totals(invoice)
    store.save(invoice)
    event_emit("invoice.created", invoice)
    sub["latest_invoice"] = invoice["id"]
    invoices.subscription_save(sub)
    invoice_finalize(invoice)
    if behavior == "default_incomplete" and invoice["amount_due"] > 0:
        return sub  # waits for the first invoice to be paid (hosted page or /pay)
    outcome = invoice_attempt(
        invoice,
        customer=customer,
        card=card,
        on_session=True,
        description="Subscription creation",
    )
    if outcome == PAID:
        _status_set(sub, "active")
    elif behavior == "error_if_incomplete":
        # Stripe answers 402 and keeps nothing: the API request's transaction rolls back.
        if outcome == ACTION_REQUIRED:
            raise StripeError(
                "Payment for this subscription requires additional user action before it "
                "can be completed successfully.",
                status=402,
                type="card_error",
                code="subscription_payment_intent_requires_action",
            )
        raise StripeError(
            "Your card was declined.", status=402, type="card_error", code="card_declined"
        )
    return store.get(sub["id"], "subscription")


def incomplete_expire(sub_id: str) -> Obj:
    """23 hours on, an unpaid incomplete subscription ends: its first invoice is voided
    (invoice.voided), status incomplete_expired (customer.subscription.deleted)."""
    with transaction.atomic():
        sub = store.get(sub_id, "subscription", lock=True)
        if sub["status"] != "incomplete":
            return sub
        ts = store.now()
        invoice = store.find(sub.get("latest_invoice") or "", "invoice")
        if invoice and invoice["status"] == "open":
            invoice["status"] = "void"
            invoice["next_payment_attempt"] = None
            invoice["status_transitions"]["voided_at"] = ts
            store.save(invoice)
            event_emit("invoice.voided", invoice)
        sub["status"] = "incomplete_expired"
        sub["ended_at"] = ts
        invoices.subscription_save(sub)
        event_emit("customer.subscription.deleted", sub)
        return sub


# --- The clock --------------------------------------------------------------------------


@dataclass
class ClockReport:
    renewed: int = 0
    failed: int = 0
    canceled: int = 0
    retried: int = 0
    recovered: int = 0
    expired: int = 0
    settled: int = 0  # bank debits (devtools/stripe_sandbox/bank_debits.py)
    retries: int = 0  # webhook retries now due (devtools/stripe_sandbox/delivery.py)


def _bank_debit_started(sub: Obj) -> bool:
    # Started by a bank debit in Checkout: it waits for the bank's answer (days), not for
    # the 23-hour expiry of a card payment left incomplete (devtools/stripe_sandbox/bank_debits.py).
    methods = (sub.get("payment_settings") or {}).get("payment_method_types") or []
    return "bacs_debit" in methods


def _due(limit: int) -> tuple[int, str, str] | None:
    """The earliest thing the clock owes at or before `limit`: (when, kind, id)."""
    due: list[tuple[int, str, str]] = []
    for sub in store.all_of("subscription"):
        if sub["status"] in actions.LIVE:
            due.append((invoices.items_period(sub)[1], "period_end", sub["id"]))
        if sub["status"] == "trialing" and sub.get("_trial_will_end_sent") != sub["trial_end"]:
            warn_at = max(sub["trial_end"] - actions.TRIAL_WILL_END_SECONDS, sub["trial_start"])
            due.append((warn_at, "trial_will_end", sub["id"]))
        elif sub["status"] == "incomplete" and not _bank_debit_started(sub):
            due.append((sub["created"] + INCOMPLETE_SECONDS, "incomplete", sub["id"]))
    for invoice in store.all_of("invoice"):
        if invoice["status"] == "open" and invoice.get("next_payment_attempt"):
            due.append((invoice["next_payment_attempt"], "retry", invoice["id"]))
        elif invoice["status"] == "draft" and invoice.get("automatically_finalizes_at"):
            due.append((invoice["automatically_finalizes_at"], "finalize", invoice["id"]))
        elif invoice["status"] == "open" and invoice.get("_confirm_by"):
            due.append((invoice["_confirm_by"], "confirm_expired", invoice["id"]))
    due = [d for d in due if d[0] <= limit]
    return min(due) if due else None


def clock_advance(seconds: int) -> ClockReport:
    """Move the clock on by `seconds`, doing on the way, in time order and at their own
    times, what falls due: trials' ends (trial_will_end three days before, then the first
    real invoice), renewals (or period-end cancellations) and, an hour after each renewal
    invoice is created, its finalization and charge ("finalize"), retries of failed
    invoices and the dunning end state, expiry of incomplete subscriptions."""
    moment = store.now()
    target = moment + seconds
    report = ClockReport()
    for _ in range(2000):
        step = _due(target)
        if step is None:
            break
        when, kind, object_id = step
        # At its due time (an overdue one at the walk's present), not after the real
        # time the steps before it took: a renewal charged an hour after its invoice
        # is charged by a walk to that hour, however slow the machine.
        moment = max(moment, when)
        with store.clock_at(moment):
            _step(kind, object_id, report)
    store.clock_set(target)
    test_clock_ready()
    return report


# The sandbox has one clock, which every customer is on (their `test_clock`).
TEST_CLOCK_ID = "clock_sandbox"


def test_clock_ready() -> Obj:
    """`test_helpers.test_clock.ready`, as Stripe sends it once a test clock has finished
    advancing: the clock object with its new `frozen_time`. The app rechecks what
    depends on Stripe's time (a grace ending) when it comes."""
    ts = store.now()
    clock = {
        "id": TEST_CLOCK_ID,
        "object": "test_helpers.test_clock",
        "created": ts,
        "deletes_after": ts + 30 * 86400,
        "frozen_time": ts,
        "livemode": False,
        "name": "Stripe sandbox",
        "status": "ready",
        "status_details": {},
    }
    with store.clock_at(ts):
        event_emit("test_helpers.test_clock.ready", clock)
    return clock


def _step(kind: str, object_id: str, report: ClockReport) -> None:
    """Do one thing that fell due, at the frozen moment it was due."""
    if kind == "period_end":
        # The renewal invoice is created now and charged an hour later ("finalize").
        sub = actions.subscription_renew(object_id, finalize_at_once=False)
        if sub["status"] == "canceled":
            report.canceled += 1
    elif kind == "finalize":
        outcome = renewal_finalize(object_id)
        if outcome == PAID:
            report.renewed += 1
        elif outcome is not None:
            report.failed += 1
    elif kind == "trial_will_end":
        actions.trial_will_end(object_id)
    elif kind == "confirm_expired":
        if confirmation_expire(object_id):
            report.canceled += 1
    elif kind == "retry":
        report.retried += 1
        if invoice_retry(object_id) == PAID:
            report.recovered += 1
        else:
            sub_id = _subscription_id(store.get(object_id, "invoice"))
            if sub_id and store.get(sub_id, "subscription")["status"] == "canceled":
                report.canceled += 1
    else:
        incomplete_expire(object_id)
        report.expired += 1
