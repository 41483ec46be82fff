"""What happens at the sandbox's "Stripe": payments, renewals, cancellations, refunds.

Each workflow changes the stored objects and emits the events Stripe would, in one
transaction. Event order (documented in README.md) follows what Stripe sends, minus
the intermediate states the sandbox does not model (e.g. an `incomplete` subscription).
"""

from __future__ import annotations

import copy
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import transaction

from stripe_sandbox import objects, store
from stripe_sandbox.events import changes, event_emit
from stripe_sandbox.objects import CARD_DECLINED, CARD_OK, CARD_RENEWAL_FAILS, CARDS
from stripe_sandbox.store import Obj, StripeError

logger = logging.getLogger(__name__)

RENEWAL_RETRY_SECONDS = 3 * 86400


class PaymentError(Exception):
    """A payment the sandbox checkout page refuses, with the message to show."""


def card_normalize(card_number: str) -> str:
    return re.sub(r"[\s-]", "", card_number or "")


def success_url(session: Obj) -> str:
    return session["success_url"].replace("{CHECKOUT_SESSION_ID}", session["id"])


# --- Customers --------------------------------------------------------------------------


def customer_create(params: Obj) -> Obj:
    customer = store.save(objects.customer(params))
    event_emit("customer.created", customer)
    return customer


def customer_by_email(email: str) -> Obj:
    found = [c for c in store.all_of("customer") if (c.get("email") or "").lower() == email.lower()]
    if not found:
        raise StripeError(f"No sandbox customer with the email {email}", status=404)
    return found[0]


# --- Payments and invoices --------------------------------------------------------------


def _payment(
    *,
    customer_id: str | None,
    amount: int,
    currency: str,
    card: str,
    succeed: bool,
    description: str,
    metadata: dict[str, str] | None = None,
) -> tuple[Obj, Obj]:
    """A PaymentIntent and its charge, saved; the caller emits their events in order."""
    pi = objects.payment_intent(
        amount=amount,
        currency=currency,
        customer_id=customer_id,
        metadata=metadata or {},
        description=description,
    )
    charge = objects.charge(pi=pi, card=card, succeeded=succeed)
    pi["latest_charge"] = charge["id"]
    if succeed:
        pi["status"] = "succeeded"
        pi["amount_received"] = amount
    else:
        pi["last_payment_error"] = {
            "type": "card_error",
            "code": "card_declined",
            "decline_code": "generic_decline",
            "charge": charge["id"],
            "message": "Your card was declined.",
        }
    store.save(pi)
    store.save(charge)
    return pi, charge


def _emit_payment(pi: Obj, charge: Obj) -> None:
    if charge["status"] == "succeeded":
        event_emit("charge.succeeded", charge)
        event_emit("payment_intent.succeeded", pi)
    else:
        event_emit("charge.failed", charge)
        event_emit("payment_intent.payment_failed", pi)


def _item_line(invoice: Obj, sub: Obj, item: Obj, period: tuple[int, int]) -> Obj:
    price = item["price"]
    each = format_amount(price["unit_amount"], price["currency"])
    return objects.invoice_line(
        invoice_id=invoice["id"],
        price_obj=price,
        quantity=item["quantity"],
        amount=price["unit_amount"] * item["quantity"],
        period=period,
        subscription_id=sub["id"],
        subscription_item_id=item["id"],
        description=(
            f"{item['quantity']} × {product_name(price)} "
            f"(at {each} / {price['recurring']['interval']})"
        ),
    )


def product_name(price: Obj) -> str:
    product = price["product"]
    if isinstance(product, str):
        product = store.find(product, "product") or {}
    return product.get("name") or price["id"]


def _invoice_totals(invoice: Obj) -> None:
    total = sum(line["amount"] for line in invoice["lines"]["data"])
    for key in ("subtotal", "subtotal_excluding_tax", "total", "total_excluding_tax"):
        invoice[key] = total
    invoice["amount_due"] = invoice["amount_remaining"] = max(total, 0)
    invoice["starting_balance"] = 0
    invoice["ending_balance"] = 0 if total >= 0 else total


def _invoice_collect(
    invoice: Obj, *, customer: Obj, card: str, succeed: bool, description: str
) -> tuple[Obj, Obj] | None:
    """Finalize `invoice` and try to collect it: invoice.finalized, the payment's events,
    then invoice.paid + invoice.payment_succeeded or invoice.payment_failed."""
    ts = store.now()
    invoice["status"] = "open"
    invoice["effective_at"] = ts
    invoice["status_transitions"]["finalized_at"] = ts
    store.save(invoice)
    event_emit("invoice.finalized", invoice)
    payment = None
    if invoice["amount_due"] > 0:
        payment = _payment(
            customer_id=customer["id"],
            amount=invoice["amount_due"],
            currency=invoice["currency"],
            card=card,
            succeed=succeed,
            description=description,
        )
        # What the includable invoice.confirmation_secret reads.
        invoice["_payment_intent"] = payment[0]["id"]
        _emit_payment(*payment)
    invoice["attempted"] = True
    invoice["attempt_count"] += 1
    if payment is None or succeed:
        invoice["status"] = "paid"
        invoice["amount_paid"] = invoice["amount_due"]
        invoice["amount_remaining"] = 0
        invoice["next_payment_attempt"] = None
        invoice["status_transitions"]["paid_at"] = store.now()
        store.save(invoice)
        event_emit("invoice.paid", invoice)
        event_emit("invoice.payment_succeeded", invoice)
    else:
        invoice["next_payment_attempt"] = store.now() + RENEWAL_RETRY_SECONDS
        store.save(invoice)
        event_emit("invoice.payment_failed", invoice)
    return payment


def _invoice_new(customer: Obj, sub: Obj, *, reason: str, period: tuple[int, int]) -> Obj:
    invoice = objects.invoice(
        customer_obj=customer,
        currency=sub["currency"],
        subscription_obj=sub,
        billing_reason=reason,
        period=period,
    )
    store.save(customer)
    return invoice


def _subscription_save(sub: Obj) -> Obj:
    # Items are retrievable on their own too (GET /v1/subscription_items/si_...).
    for item in sub["items"]["data"]:
        store.save(item)
    return store.save(sub)


def _period(sub: Obj) -> tuple[int, int]:
    items = sub["items"]["data"]
    return (
        min(i["current_period_start"] for i in items),
        max(i["current_period_end"] for i in items),
    )


# --- Checkout ---------------------------------------------------------------------------


def checkout_pay(*, session_id: str, card_number: str) -> str:
    """Pay checkout session `session_id` with a test card; returns the success URL.

    4242 4242 4242 4242 pays, 4000 0000 0000 0341 pays now but fails at renewal,
    4000 0000 0000 0002 is declined (nothing is created, the session stays open).
    """
    card = card_normalize(card_number)
    if card not in CARDS:
        raise PaymentError(
            "The sandbox accepts only its test cards: 4242 4242 4242 4242 (pays), "
            "4000 0000 0000 0341 (pays, renewal fails), 4000 0000 0000 0002 (declined)."
        )
    with transaction.atomic():
        session = store.get(session_id, "checkout.session", lock=True)
        if session["status"] == "complete":
            return success_url(session)  # paid already (a second click): carry on
        if session["status"] != "open" or store.now() > session["expires_at"]:
            raise PaymentError("This checkout session has expired. Start again from the site.")
        if card == CARD_DECLINED:
            raise PaymentError("Your card was declined. (Test card 4000 0000 0000 0002.)")
        customer = store.find(session["customer"], "customer") if session["customer"] else None
        if customer is None:
            customer = customer_create({"email": session.get("customer_email")})
        if session["mode"] == "subscription":
            sub, invoice = _checkout_subscription(session, customer, card)
            session["subscription"] = sub["id"]
            session["invoice"] = invoice["id"]
        else:
            pi, charge = _payment(
                customer_id=customer["id"],
                amount=session["amount_total"],
                currency=session["currency"],
                card=card,
                succeed=True,
                description=", ".join(
                    product_name(li["price"]) for li in session.get("_line_items", [])
                ),
                metadata=session.get("_payment_intent_metadata", {}),
            )
            _emit_payment(pi, charge)
            session["payment_intent"] = pi["id"]
        session.update(
            status="complete",
            payment_status="paid",
            customer=customer["id"],
            customer_details={
                "address": objects.EMPTY_ADDRESS,
                "email": customer.get("email") or session.get("customer_email"),
                "name": customer.get("name"),
                "phone": None,
                "tax_exempt": "none",
                "tax_ids": [],
            },
        )
        store.save(session)
        event_emit("checkout.session.completed", session, previous=None)
        logger.info("Stripe sandbox: checkout %s paid (%s)", session_id, session["mode"])
        return success_url(session)


def _checkout_subscription(session: Obj, customer: Obj, card: str) -> tuple[Obj, Obj]:
    sub = objects.subscription(
        customer_id=customer["id"],
        currency=session["currency"],
        metadata=session.get("_subscription_metadata", {}),
        card=card,
    )
    for li in session.get("_line_items", []):
        if li["price"].get("recurring"):
            sub["items"]["data"].append(
                objects.subscription_item(
                    price_obj=li["price"],
                    subscription_id=sub["id"],
                    quantity=li["quantity"],
                    start=sub["created"],
                )
            )
    _subscription_save(sub)
    event_emit("customer.subscription.created", sub)

    period = _period(sub)
    invoice = _invoice_new(customer, sub, reason="subscription_create", period=period)
    invoice["lines"]["data"] = [
        _item_line(invoice, sub, item, period) for item in sub["items"]["data"]
    ]
    # One-time prices bought with the subscription are charged once, on its first invoice.
    for li in session.get("_line_items", []):
        if not li["price"].get("recurring"):
            invoice["lines"]["data"].append(
                objects.invoice_line(
                    invoice_id=invoice["id"],
                    price_obj=li["price"],
                    quantity=li["quantity"],
                    amount=li["amount_total"],
                    period=(period[0], period[0]),
                    subscription_id=None,
                    subscription_item_id=None,
                    description=f"{li['quantity']} × {product_name(li['price'])}",
                )
            )
    _invoice_totals(invoice)
    store.save(invoice)
    event_emit("invoice.created", invoice)
    sub["latest_invoice"] = invoice["id"]
    _subscription_save(sub)
    _invoice_collect(
        invoice, customer=customer, card=card, succeed=True, description="Subscription creation"
    )
    return sub, invoice


# --- Subscriptions ----------------------------------------------------------------------

LIVE = {"active", "past_due", "trialing", "unpaid"}


def _live_subscription(sub_id: str) -> Obj:
    sub = store.get(sub_id, "subscription", lock=True)
    if sub["status"] not in LIVE:
        raise StripeError(
            f"The subscription {sub_id} is {sub['status']}: it can no longer be changed.",
            param="subscription",
        )
    return sub


def subscription_renew(sub_id: str, *, fail: bool | None = None) -> Obj:
    """Start the next period of `sub_id` and invoice it. The payment fails if `fail`, or
    (when None) if the subscription's card is 4000 0000 0000 0341. A subscription set to
    cancel at period end ends instead, as Stripe ends it."""
    with transaction.atomic():
        sub = _live_subscription(sub_id)
        if sub["cancel_at_period_end"]:
            return subscription_cancel(sub_id)
        customer = store.get(sub["customer"], "customer")
        fails = (sub.get("_card") == CARD_RENEWAL_FAILS) if fail is None else fail
        before = copy.deepcopy(sub)
        for item in sub["items"]["data"]:
            recurring = item["price"]["recurring"]
            item["current_period_start"] = item["current_period_end"]
            item["current_period_end"] = store.month_add(
                item["current_period_start"], recurring["interval"], recurring["interval_count"]
            )
        period = _period(sub)
        invoice = _invoice_new(customer, sub, reason="subscription_cycle", period=period)
        invoice["lines"]["data"] = [
            _item_line(invoice, sub, item, period) for item in sub["items"]["data"]
        ]
        _invoice_totals(invoice)
        sub["latest_invoice"] = invoice["id"]
        _subscription_save(sub)
        event_emit("customer.subscription.updated", sub, previous=changes(before, sub))
        store.save(invoice)
        event_emit("invoice.created", invoice)
        _invoice_collect(
            invoice,
            customer=customer,
            card=sub.get("_card") or CARD_OK,
            succeed=not fails,
            description="Subscription update",
        )
        status = "past_due" if fails else "active"
        if sub["status"] != status:
            before = copy.deepcopy(sub)
            sub["status"] = status
            _subscription_save(sub)
            event_emit("customer.subscription.updated", sub, previous=changes(before, sub))
        return sub


def subscription_cancel(sub_id: str, *, reason: str = "cancellation_requested") -> Obj:
    """End `sub_id` now: status canceled, customer.subscription.deleted."""
    with transaction.atomic():
        sub = _live_subscription(sub_id)
        ts = store.now()
        sub["status"] = "canceled"
        sub["canceled_at"] = sub.get("canceled_at") or ts
        sub["ended_at"] = ts
        sub["cancellation_details"] = {"comment": None, "feedback": None, "reason": reason}
        _subscription_save(sub)
        event_emit("customer.subscription.deleted", sub)
        return sub


def subscription_cancel_at_period_end(sub_id: str, *, cancel: bool = True) -> Obj:
    """Set (or undo) cancellation at the end of the current period."""
    with transaction.atomic():
        sub = _live_subscription(sub_id)
        before = copy.deepcopy(sub)
        sub["cancel_at_period_end"] = cancel
        sub["cancel_at"] = _period(sub)[1] if cancel else None
        sub["canceled_at"] = store.now() if cancel else None
        sub["cancellation_details"] = {
            "comment": None,
            "feedback": None,
            "reason": "cancellation_requested" if cancel else None,
        }
        if changes(before, sub):
            _subscription_save(sub)
            event_emit("customer.subscription.updated", sub, previous=changes(before, sub))
        return sub


def subscription_update(sub_id: str, params: Obj) -> Obj:
    """POST /v1/subscriptions/{id}: metadata, description, cancel_at_period_end, items."""
    with transaction.atomic():
        sub = _live_subscription(sub_id)
        before = copy.deepcopy(sub)
        if "metadata" in params:
            sub["metadata"] = objects.metadata_merge(sub["metadata"], params["metadata"])
        if "description" in params:
            sub["description"] = params["description"] or None
        if "cancel_at_period_end" in params:
            cancel = str(params["cancel_at_period_end"]).lower() == "true"
            sub["cancel_at_period_end"] = cancel
            sub["cancel_at"] = _period(sub)[1] if cancel else None
            sub["canceled_at"] = store.now() if cancel else None
        proration = params.get("proration_behavior") or "create_prorations"
        if proration not in {"create_prorations", "always_invoice", "none"}:
            raise StripeError(
                f"Invalid proration_behavior: {proration}", param="proration_behavior"
            )
        old_prices = _switch_items(sub, params.get("items") or [])
        if changes(before, sub):
            _subscription_save(sub)
            event_emit("customer.subscription.updated", sub, previous=changes(before, sub))
        if old_prices and proration != "none":
            _proration_invoice(sub, old_prices)
        return sub


def subscription_switch(sub_id: str, *, price_id: str) -> Obj:
    """Move the (first) item of `sub_id` to `price_id`, with a paid proration invoice."""
    sub = store.get(sub_id, "subscription")
    item_id = sub["items"]["data"][0]["id"]
    return subscription_update(
        sub_id,
        {"items": [{"id": item_id, "price": price_id}], "proration_behavior": "always_invoice"},
    )


def _switch_items(sub: Obj, items: list[Obj]) -> dict[str, Obj]:
    """Apply `items[i][id]` + `items[i][price]`; returns {item id: old price} of changed items."""
    old_prices: dict[str, Obj] = {}
    by_id = {item["id"]: item for item in sub["items"]["data"]}
    for index, change in enumerate(items):
        item = by_id.get(change.get("id", ""))
        if item is None:
            raise StripeError(
                f"No such subscription item: '{change.get('id')}'",
                param=f"items[{index}][id]",
                code="resource_missing",
            )
        if change.get("price") and change["price"] != item["price"]["id"]:
            price = store.find(change["price"], "price")
            if price is None or not price.get("recurring"):
                raise StripeError(
                    f"No such recurring price: '{change['price']}'",
                    param=f"items[{index}][price]",
                    code="resource_missing",
                )
            if not price["active"]:
                raise StripeError(
                    f"The price {price['id']} is not active.", param=f"items[{index}][price]"
                )
            if price["currency"] != sub["currency"]:
                raise StripeError(
                    "All prices on a subscription must have the same currency.",
                    param=f"items[{index}][price]",
                )
            old_prices[item["id"]] = item["price"]
            item["price"] = price
            item["plan"] = objects.plan_of(price)
        if change.get("quantity"):
            item["quantity"] = int(change["quantity"])
    return old_prices


def _proration_invoice(sub: Obj, old_prices: dict[str, Obj]) -> Obj:
    """Credit the unused time of the old prices, charge the rest of the period at the new."""
    customer = store.get(sub["customer"], "customer")
    ts = store.now()
    period = _period(sub)
    invoice = _invoice_new(customer, sub, reason="subscription_update", period=(ts, period[1]))
    when = datetime.fromtimestamp(ts, tz=UTC).strftime("%d %b %Y")
    for item in sub["items"]["data"]:
        if item["id"] not in old_prices:
            continue
        start, end = item["current_period_start"], item["current_period_end"]
        fraction = max(0.0, min(1.0, (end - ts) / max(end - start, 1)))
        for price, sign, label in (
            (old_prices[item["id"]], -1, "Unused time on"),
            (item["price"], 1, "Remaining time on"),
        ):
            invoice["lines"]["data"].append(
                objects.invoice_line(
                    invoice_id=invoice["id"],
                    price_obj=price,
                    quantity=item["quantity"],
                    amount=sign * round(price["unit_amount"] * item["quantity"] * fraction),
                    period=(ts, end),
                    subscription_id=sub["id"],
                    subscription_item_id=item["id"],
                    description=f"{label} {product_name(price)} after {when}",
                    proration=True,
                )
            )
    _invoice_totals(invoice)
    store.save(invoice)
    event_emit("invoice.created", invoice)
    # A plan change is paid now with the card on file; 0341 only fails at renewal.
    card = sub.get("_card") or CARD_OK
    _invoice_collect(
        invoice, customer=customer, card=card, succeed=True, description="Subscription update"
    )
    sub["latest_invoice"] = invoice["id"]
    _subscription_save(sub)
    return invoice


def subscription_latest(customer_id: str, *, live_only: bool = True) -> Obj:
    subs = [
        s
        for s in store.all_of("subscription")
        if s["customer"] == customer_id and (not live_only or s["status"] in LIVE)
    ]
    if not subs:
        raise StripeError(f"The customer {customer_id} has no live subscription.", status=404)
    return subs[0]


# --- Refunds ----------------------------------------------------------------------------


def refund_create(
    *,
    charge_id: str | None = None,
    payment_intent_id: str | None = None,
    amount: int | None = None,
    reason: str | None = None,
    metadata: dict[str, str] | None = None,
) -> Obj:
    """Refund (part of) a charge: refund.created, charge.refunded."""
    with transaction.atomic():
        if payment_intent_id and not charge_id:
            pi = store.get(payment_intent_id, "payment_intent")
            charge_id = pi.get("latest_charge")
            if not charge_id:
                raise StripeError(
                    f"The PaymentIntent {payment_intent_id} has no charge to refund.",
                    param="payment_intent",
                )
        if not charge_id:
            raise StripeError("One of charge or payment_intent is required.", param="charge")
        charge = store.get(charge_id, "charge", lock=True)
        remaining = charge["amount_captured"] - charge["amount_refunded"]
        if remaining <= 0:
            raise StripeError(
                f"Charge {charge_id} has already been refunded.", code="charge_already_refunded"
            )
        amount = remaining if amount is None else amount
        if not 0 < amount <= remaining:
            raise StripeError(
                f"Refund amount ({format_amount(amount, charge['currency'])}) is greater than "
                f"unrefunded amount on charge ({format_amount(remaining, charge['currency'])})",
                param="amount",
            )
        if reason not in (None, "", "duplicate", "fraudulent", "requested_by_customer"):
            raise StripeError(f"Invalid reason: {reason}", param="reason")
        refund = store.save(
            objects.refund(
                charge_obj=charge, amount=amount, reason=reason or None, metadata=metadata or {}
            )
        )
        before = copy.deepcopy(charge)
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount_captured"]
        charge["refunds"]["data"].insert(0, refund)
        store.save(charge)
        event_emit("refund.created", refund)
        event_emit("charge.refunded", charge, previous=changes(before, charge))
        return refund


# --- The clock --------------------------------------------------------------------------


@dataclass
class AdvanceReport:
    renewed: int = 0
    failed: int = 0
    canceled: int = 0


def clock_advance(*, days: int) -> AdvanceReport:
    """Move the sandbox clock on; renew (or end) every subscription whose period ended."""
    store.clock_advance(days * 86400)
    report = AdvanceReport()
    for sub in store.all_of("subscription"):
        # At most a few years of periods per call, however far the clock moved.
        for _ in range(120):
            sub = store.get(sub["id"], "subscription")
            if sub["status"] not in LIVE or _period(sub)[1] > store.now():
                break
            renewed = subscription_renew(sub["id"])
            if renewed["status"] == "canceled":
                report.canceled += 1
            elif renewed["status"] == "past_due":
                report.failed += 1
            else:
                report.renewed += 1
    return report


# --- Display ----------------------------------------------------------------------------

_SYMBOLS = {"gbp": "£", "usd": "$", "eur": "€"}
_ZERO_DECIMAL = {"jpy", "krw", "vnd", "clp", "isk", "huf"}


def format_amount(amount: int, currency: str) -> str:
    """12.5 GBP in pence -> "£12.50", the way the checkout page shows it."""
    currency = (currency or "").lower()
    value = f"{amount:,}" if currency in _ZERO_DECIMAL else f"{amount / 100:,.2f}"
    sign, value = ("-", value[1:]) if value.startswith("-") else ("", value)
    if symbol := _SYMBOLS.get(currency):
        return f"{sign}{symbol}{value}"
    return f"{sign}{value} {currency.upper()}"
