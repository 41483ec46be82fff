"""The sandbox's invoices and payments, built: a PaymentIntent and its charge, an
invoice for a subscription's period, its lines and totals.

The builders that the workflows share (actions.py: checkout, renewals, changes;
collection.py: retries, 3-D Secure, the clock; bank_debits.py: debits settling), below
all three, so that none of them reaches into another for them.
"""

from __future__ import annotations

import re

from devtools.stripe_sandbox import objects, store, tax
from devtools.stripe_sandbox.events import event_emit
from devtools.stripe_sandbox.store import Obj


class PaymentError(Exception):
    """A payment the sandbox checkout page refuses, with the message to show."""


def card_normalize(card_number: str) -> str:
    return re.sub(r"[\s-]", "", card_number or "")


def payment_create(
    *,
    customer_id: str | None,
    amount: int,
    currency: str,
    card: str,
    succeed: bool,
    description: str,
    metadata: dict[str, str] | None = None,
    payment_method: str | None = None,
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
    if payment_method:
        pi["payment_method"] = charge["payment_method"] = payment_method
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


def payment_emit(pi: Obj, charge: Obj) -> None:
    if charge["status"] == "succeeded":
        event_emit("charge.succeeded", charge)
        event_emit("payment_intent.succeeded", pi)
    else:
        event_emit("charge.failed", charge)
        event_emit("payment_intent.payment_failed", pi)


def item_line(invoice: Obj, sub: Obj, item: Obj, period: tuple[int, int]) -> Obj:
    price = item["price"]
    each = objects.format_amount(price["unit_amount"], price["currency"])
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
    name: str = product.get("name") or price["id"]
    return name


def invoice_totals(invoice: Obj, *, known: tuple[Obj, Obj] | None = None) -> None:
    # The subscription's discount and automatic tax, if any (devtools/stripe_sandbox/tax.py).
    total = tax.invoice_apply(invoice, known=known).total
    invoice["amount_due"] = invoice["amount_remaining"] = max(total, 0)
    invoice["starting_balance"] = 0
    invoice["ending_balance"] = 0 if total >= 0 else total


def invoice_new(customer: Obj, sub: Obj, *, reason: str, period: tuple[int, int]) -> Obj:
    invoice = objects.invoice(
        customer_obj=customer,
        currency=sub["currency"],
        subscription_obj=sub,
        billing_reason=reason,
        period=period,
    )
    store.save(customer)
    return invoice


def subscription_save(sub: Obj) -> Obj:
    # Items are retrievable on their own too (GET /v1/subscription_items/si_...).
    for item in sub["items"]["data"]:
        store.save(item)
    return store.save(sub)


def items_period(sub: Obj) -> tuple[int, int]:
    items = sub["items"]["data"]
    return (
        min(i["current_period_start"] for i in items),
        max(i["current_period_end"] for i in items),
    )
