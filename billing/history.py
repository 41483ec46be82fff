"""What the customer has paid and holds: the card on file, every invoice, one-off
purchases and refunds, for the billing page.

All from rows dj-stripe synced from webhooks (`stripe_data`) and our OneOffPurchase
rows: a page load makes no Stripe call. dj-stripe's own helpers are not used (broken on
this API version: docs/djstripe.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from djstripe.models import Charge, Customer, Invoice, PaymentMethod

from accounts.models import User
from billing.models import OneOffPurchase

INVOICE_STATUS_WORDS = {
    "paid": "Paid",
    "open": "Due",
    "void": "Void, not owed",
    "uncollectible": "Written off, not owed",
}
# Invoices that are owed no more.
_CLOSED = frozenset({"void", "uncollectible"})


@dataclass(frozen=True)
class Card:
    brand: str
    last4: str
    exp_month: int
    exp_year: int

    @property
    def brand_label(self) -> str:
        names = {"amex": "American Express", "mastercard": "Mastercard", "visa": "Visa"}
        return names.get(self.brand, self.brand.replace("_", " ").title())

    @property
    def expiry(self) -> str:
        return f"{self.exp_month:02d}/{self.exp_year}"


@dataclass(frozen=True)
class InvoiceRow:
    id: str
    number: str
    date: datetime | None
    amount: int
    currency: str
    status: str
    hosted_url: str
    pdf_url: str
    # What a promotion code took off and the tax in `amount` (added or included).
    discount: int = 0
    tax: int = 0
    tax_inclusive: bool = False

    @property
    def status_words(self) -> str:
        return INVOICE_STATUS_WORDS.get(self.status, self.status.capitalize())


@dataclass(frozen=True)
class RefundRow:
    id: str
    date: datetime | None
    amount: int
    currency: str
    status: str
    description: str


@dataclass(frozen=True)
class PurchaseRow:
    """A one-off purchase and the paid invoice Checkout made for it (its receipt), once
    synced; None for a purchase made before invoices were asked for."""

    purchase: OneOffPurchase
    invoice: InvoiceRow | None


@dataclass
class History:
    card: Card | None = None
    # Stripe names a card, or a live subscription's latest invoice, whose row its webhook
    # has not brought yet (just after Checkout, while the worker catches up): the page
    # says it is on its way rather than that there is none.
    card_pending: bool = False
    invoices_pending: bool = False
    invoices: list[InvoiceRow] = field(default_factory=list)
    purchases: list[PurchaseRow] = field(default_factory=list)
    refunds: list[RefundRow] = field(default_factory=list)


def _ts(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), tz=UTC) if value else None


def _id(value: Any) -> str:
    return (value.get("id") or "") if isinstance(value, Mapping) else (value or "")


def _card(data: Mapping[str, Any] | None) -> Card | None:
    if not data or not data.get("last4"):
        return None
    return Card(
        brand=data.get("brand") or "card",
        last4=data["last4"],
        exp_month=int(data.get("exp_month") or 0),
        exp_year=int(data.get("exp_year") or 0),
    )


def card_on_file(
    customer: Customer, subscriptions: list[Mapping[str, Any]]
) -> tuple[Card | None, bool]:
    """The card the next payment uses: the subscription's default payment method, else
    the customer's (the portal's "Update card" sets it), else the card of the latest
    successful charge (Checkout's card). And whether, finding none, Stripe names a
    payment method whose row its webhook has not brought yet (it is on its way)."""
    named = [_id(s.get("default_payment_method")) for s in subscriptions]
    settings = (customer.stripe_data or {}).get("invoice_settings") or {}
    named = [c for c in [*named, _id(settings.get("default_payment_method"))] if c]
    # The newest of them: a card updated in the portal is newer than Checkout's, and
    # becomes the default of both the customer and their subscriptions.
    methods = PaymentMethod.objects.filter(id__in=named).order_by("-created")
    stored = list(methods.values_list("id", "stripe_data"))
    for _, data in stored:
        if card := _card(data.get("card")):
            return card, False
    charges = Charge.objects.filter(customer=customer, stripe_data__status="succeeded").order_by(
        "-created"
    )
    for data in charges.values_list("stripe_data", flat=True)[:5]:
        details = (data.get("payment_method_details") or {}).get("card")
        if card := _card(details):
            return card, False
    # A stored method that is not a card (a Direct Debit mandate) is not waited for.
    return None, bool(set(named) - {method_id for method_id, _ in stored})


def _invoice_row(data: Mapping[str, Any]) -> InvoiceRow:
    transitions = data.get("status_transitions") or {}
    taxes = data.get("total_taxes") or []
    return InvoiceRow(
        id=data.get("id", ""),
        number=data.get("number") or data.get("id", ""),
        date=_ts(transitions.get("finalized_at") or data.get("created")),
        amount=int(data.get("total") or 0),
        currency=data.get("currency") or "",
        status=data.get("status") or "",
        # The hosted page of a closed invoice still takes a card (an uncollectible one at
        # Stripe): never linked, it is owed no more (billing/dunning_end.py).
        hosted_url="" if data.get("status") in _CLOSED else data.get("hosted_invoice_url") or "",
        pdf_url=data.get("invoice_pdf") or "",
        discount=sum(int(d.get("amount") or 0) for d in data.get("total_discount_amounts") or []),
        tax=sum(int(t.get("amount") or 0) for t in taxes),
        tax_inclusive=any(t.get("tax_behavior") == "inclusive" for t in taxes),
    )


def _refund_rows(charge: Mapping[str, Any]) -> list[RefundRow]:
    refunds = (charge.get("refunds") or {}).get("data") or []
    what = charge.get("description") or "Payment"
    rows = [
        RefundRow(
            id=r.get("id", ""),
            date=_ts(r.get("created")),
            amount=int(r.get("amount") or 0),
            currency=r.get("currency") or charge.get("currency") or "",
            status=r.get("status") or "",
            description=what,
        )
        for r in refunds
    ]
    if not rows and charge.get("amount_refunded"):
        # A charge synced without its refunds sublist still says how much went back.
        rows.append(
            RefundRow(
                id=charge.get("id", ""),
                date=None,
                amount=int(charge["amount_refunded"]),
                currency=charge.get("currency") or "",
                status="succeeded",
                description=what,
            )
        )
    return rows


def billing_history(user: User) -> History:
    """The billing page's facts for `user`, from the synced rows only."""
    purchases = list(OneOffPurchase.objects.filter(user=user))
    history = History(purchases=[PurchaseRow(purchase=p, invoice=None) for p in purchases])
    customer = Customer.objects.filter(subscriber=user).order_by("-created").first()
    if customer is None:
        return history
    subscriptions = list(
        customer.subscriptions.exclude(stripe_data__status__in=["canceled", "incomplete_expired"])
        .order_by("-created")
        .values_list("stripe_data", flat=True)
    )
    history.card, history.card_pending = card_on_file(customer, subscriptions)
    invoices = Invoice.objects.filter(customer=customer).order_by("-created", "-djstripe_id")
    stored = list(invoices.values_list("stripe_data", flat=True))
    history.invoices = [_invoice_row(data) for data in stored if data.get("status") != "draft"]
    latest = {_id(s.get("latest_invoice")) for s in subscriptions} - {""}
    history.invoices_pending = bool(latest - {data.get("id") for data in stored})
    by_id = {row.id: row for row in history.invoices}
    history.purchases = [
        PurchaseRow(purchase=p, invoice=by_id.get(p.invoice_id)) for p in purchases
    ]
    charges = Charge.objects.filter(customer=customer).order_by("-created")
    for data in charges.values_list("stripe_data", flat=True):
        history.refunds += _refund_rows(data)
    return history
