"""The sandbox's stand-in for Stripe Tax, and the totals of lines with discounts and tax.

A stand-in, not tax advice: UK VAT at the standard 20 % when the billing address is in
GB, nothing elsewhere (as an account registered only in the UK collects). A price's
`tax_behavior` says whether its amount is before tax (`exclusive`: the tax is added on
top) or includes it (`inclusive`: the tax is carved out of it); `unspecified` counts as
exclusive, the default Stripe applies when the account sets none. Discounts come off
first and the tax is on what is left, as Stripe computes it; every amount is rounded
half up to the minor unit, line by line. A credit line (a proration for unused time)
has negative tax, so a plan change is taxed on the difference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from devtools.stripe_sandbox import discounts, objects, store
from devtools.stripe_sandbox.store import Obj

UK_VAT = Decimal("0.20")


def rate_for(country: str | None) -> Decimal:
    return UK_VAT if (country or "").upper() == "GB" else Decimal(0)


def _round(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def tax_of(amount: int, *, rate: Decimal, behavior: str) -> int:
    """The tax in `amount` (minor units): added on top when exclusive, the part of it
    that is tax when inclusive (4900 inclusive at 20 %: 4900 - 4083 = 817). A credit
    (a negative amount: the unused time of a proration) carries its tax negative, as
    Stripe Tax computes it, rounded as its positive is."""
    if rate == 0 or amount == 0:
        return 0
    if amount < 0:
        return -tax_of(-amount, rate=rate, behavior=behavior)
    if behavior == "inclusive":
        return amount - _round(Decimal(amount) / (1 + rate))
    return _round(Decimal(amount) * rate)


def behavior_of(price: Obj) -> str:
    return "inclusive" if price.get("tax_behavior") == "inclusive" else "exclusive"


@dataclass
class LineTotal:
    amount: int
    behavior: str
    discountable: bool
    discount: int = 0
    tax: int = 0


@dataclass
class Totals:
    lines: list[LineTotal]
    country: str | None
    taxed: bool  # automatic tax on: tax lines are shown (0 outside GB)
    subtotal: int = 0
    discount: int = 0
    tax: int = 0
    tax_exclusive: int = 0
    tax_inclusive: int = 0
    total: int = 0
    by_behavior: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def rate(self) -> Decimal:
        return rate_for(self.country) if self.taxed else Decimal(0)

    @property
    def taxability_reason(self) -> str:
        return "standard_rated" if self.rate else "not_collecting"

    @property
    def total_excluding_tax(self) -> int:
        return self.subtotal - self.discount - self.tax_inclusive

    @property
    def subtotal_excluding_tax(self) -> int:
        return self.subtotal - self.tax_inclusive


def lines_total(
    lines: list[LineTotal], *, coupon: Obj | None, country: str | None, taxed: bool
) -> Totals:
    """Discount (`coupon`, on the discountable lines) then tax (when `taxed`) of `lines`."""
    result = Totals(lines=lines, country=country, taxed=taxed)
    base = sum(line.amount for line in lines if line.discountable and line.amount > 0)
    if coupon is not None and base > 0:
        off = discounts.amount_off(coupon, base)
        # Spread over the lines in proportion to their amounts; the last takes what is left.
        share = [line for line in lines if line.discountable and line.amount > 0]
        left = off
        for index, line in enumerate(share):
            part = left if index == len(share) - 1 else _round(Decimal(off * line.amount) / base)
            line.discount = min(part, line.amount)
            left -= line.discount
    rate = result.rate
    for line in lines:
        line.tax = tax_of(line.amount - line.discount, rate=rate, behavior=line.behavior)
        taxable = line.amount - line.discount
        if line.behavior == "inclusive":
            taxable -= line.tax
        tax, base_amount = result.by_behavior.get(line.behavior, (0, 0))
        result.by_behavior[line.behavior] = (tax + line.tax, base_amount + taxable)
    result.subtotal = sum(line.amount for line in lines)
    result.discount = sum(line.discount for line in lines)
    result.tax_exclusive = sum(line.tax for line in lines if line.behavior == "exclusive")
    result.tax_inclusive = sum(line.tax for line in lines if line.behavior == "inclusive")
    result.tax = result.tax_exclusive + result.tax_inclusive
    result.total = result.subtotal - result.discount + result.tax_exclusive
    return result


def tax_entry(totals: Totals, *, amount: int, behavior: str, taxable: int) -> Obj:
    """One entry of an invoice's `total_taxes` or a line's `taxes`."""
    return {
        "amount": amount,
        "tax_behavior": behavior,
        "tax_rate_details": None,
        "taxability_reason": totals.taxability_reason,
        "taxable_amount": taxable,
        "type": "tax_rate_details",
    }


def _subscription_of(invoice: Obj) -> Obj | None:
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    sub_id = details.get("subscription")
    return store.find(sub_id, "subscription") if sub_id else None


def invoice_apply(
    invoice: Obj,
    *,
    checkout: tuple[Obj | None, bool, str | None] | None = None,
    known: tuple[Obj, Obj] | None = None,
) -> Totals:
    """Set `invoice`'s totals from its lines: the subscription's discount where its
    duration covers this invoice, then the tax when the subscription has automatic tax
    (the customer's address decides the rate). Lines keep their pre-discount `amount`.

    `checkout`: a one-off Checkout's own (discount, automatic tax, billing country), for
    the invoice it creates after payment (`invoice_creation`), which has no subscription.
    `known`: the invoice's subscription and customer, when the caller has just read them
    (else they are read here)."""
    sub: Obj | None
    if known is not None:
        sub, customer = known
    else:
        sub = _subscription_of(invoice)
        customer = store.find(invoice["customer"], "customer") or {}
    taxed = bool(sub and (sub.get("automatic_tax") or {}).get("enabled"))
    country = (customer.get("address") or {}).get("country")
    applied = None
    for discount_id in (sub or {}).get("discounts") or []:
        discount = store.find(discount_id, "discount")
        if discount and discounts.discount_covers(discount, invoice):
            applied = discount
            break
    if checkout is not None:
        applied, taxed, country = checkout[0], checkout[1], checkout[2] or country
    coupon = store.find(applied["source"]["coupon"], "coupon") if applied else None
    lines = invoice["lines"]["data"]
    computed = [
        LineTotal(
            amount=line["amount"],
            behavior=behavior_of(_line_price(line)),
            discountable=line.get("discountable", True),
        )
        for line in lines
    ]
    totals = lines_total(computed, coupon=coupon, country=country, taxed=taxed)
    for line, result in zip(lines, computed, strict=True):
        if applied and line.get("discountable", True):
            line["discounts"] = [applied["id"]]
            line["discount_amounts"] = [{"amount": result.discount, "discount": applied["id"]}]
        if taxed:
            taxable = line["amount"] - result.discount
            if result.behavior == "inclusive":
                taxable -= result.tax
            line["taxes"] = [
                tax_entry(totals, amount=result.tax, behavior=result.behavior, taxable=taxable)
            ]
    invoice["discounts"] = [applied["id"]] if applied else []
    invoice["total_discount_amounts"] = (
        [{"amount": totals.discount, "discount": applied["id"]}] if applied else []
    )
    invoice["total_taxes"] = (
        [
            tax_entry(totals, amount=amount, behavior=behavior, taxable=base)
            for behavior, (amount, base) in sorted(totals.by_behavior.items())
        ]
        if taxed
        else []
    )
    if taxed:
        invoice["automatic_tax"].update(enabled=True, status="complete")
        invoice["customer_address"] = customer.get("address") or (
            {**objects.EMPTY_ADDRESS, "country": country} if country else None
        )
    invoice["subtotal"] = totals.subtotal
    invoice["subtotal_excluding_tax"] = totals.subtotal_excluding_tax
    invoice["total"] = totals.total
    invoice["total_excluding_tax"] = totals.total_excluding_tax
    return totals


def _line_price(line: Obj) -> Obj:
    details = (line.get("pricing") or {}).get("price_details") or {}
    return store.find(details.get("price") or "", "price") or {}
