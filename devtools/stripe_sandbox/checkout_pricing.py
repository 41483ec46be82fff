"""What a Checkout Session costs once the customer has typed a promotion code and their
billing address: the discounted total and the tax, as the sandbox's Checkout page shows
them before payment and as the completed session carries them (`discounts`,
`total_details.amount_discount`/`amount_tax`, each line item's amounts).
"""

from __future__ import annotations

from dataclasses import dataclass

from devtools.stripe_sandbox import discounts, store, tax
from devtools.stripe_sandbox.store import Obj

# The billing address countries the sandbox's Checkout page offers (a stand-in for
# Stripe's full list: enough to try the UK and elsewhere).
COUNTRIES = (
    ("GB", "United Kingdom"),
    ("IE", "Ireland"),
    ("FR", "France"),
    ("DE", "Germany"),
    ("NL", "Netherlands"),
    ("ES", "Spain"),
    ("US", "United States"),
    ("CA", "Canada"),
    ("AU", "Australia"),
)


@dataclass
class Quote:
    totals: tax.Totals
    promo: Obj | None
    coupon: Obj | None

    @property
    def free(self) -> bool:
        return self.totals.total == 0


def address_required(session: Obj) -> bool:
    return session.get("billing_address_collection") == "required" or bool(
        session["automatic_tax"]["enabled"]
    )


def quote(session: Obj, *, promotion_code: str = "", country: str = "") -> Quote:
    """The session's amounts with `promotion_code` (checked: PromotionRefused says why
    not) and a billing address in `country`; the tax only with automatic tax on."""
    promo = coupon = None
    if promotion_code.strip():
        if not session.get("allow_promotion_codes"):
            raise discounts.PromotionRefused("This checkout does not accept promotion codes.")
        promo, coupon = discounts.promotion_check(
            promotion_code, currency=session["currency"], customer_id=session.get("customer")
        )
    lines = [
        tax.LineTotal(
            amount=li["amount_subtotal"], behavior=tax.behavior_of(li["price"]), discountable=True
        )
        for li in session.get("_line_items", [])
    ]
    totals = tax.lines_total(
        lines,
        coupon=coupon,
        country=country or None,
        taxed=bool(session["automatic_tax"]["enabled"]),
    )
    return Quote(totals=totals, promo=promo, coupon=coupon)


def quote_apply(session: Obj, found: Quote, *, discount: Obj | None) -> None:
    """Write `found` onto the session being completed (and count the code's redemption)."""
    totals = found.totals
    for li, line in zip(session.get("_line_items", []), totals.lines, strict=True):
        li["amount_discount"] = line.discount
        li["amount_tax"] = line.tax
        li["amount_total"] = (
            line.amount - line.discount + (line.tax if line.behavior == "exclusive" else 0)
        )
        if discount is not None:
            # Includable (expand[]=data.discounts), so kept aside: see api/checkout.py.
            li["_discounts"] = [{"amount": line.discount, "discount": _rendered(discount)}]
        if totals.taxed:
            taxable = line.amount - line.discount
            li["_taxes"] = [_breakdown_tax(totals, line.tax, line.behavior, taxable)]
    session["amount_subtotal"] = totals.subtotal
    session["amount_total"] = totals.total
    session["total_details"] = {
        "amount_discount": totals.discount,
        "amount_shipping": 0,
        "amount_tax": totals.tax,
        "_breakdown": breakdown(totals, discount=discount),
    }
    if found.coupon is not None:
        promo_id = found.promo["id"] if found.promo else None
        session["discounts"] = [{"coupon": found.coupon["id"], "promotion_code": promo_id}]
        if found.promo is not None:
            discounts.redeem(found.promo, found.coupon)
    if totals.taxed:
        session["automatic_tax"]["status"] = "complete"


def _rendered(obj: Obj) -> Obj:
    return store.render(obj)


def tax_rate(*, country: str | None, behavior: str, percentage: float) -> Obj:
    """The TaxRate a breakdown names: the sandbox's UK VAT, or a 0 % rate elsewhere."""
    gb = percentage > 0
    return {
        "id": f"txr_sandbox_{'gb_vat' if gb else 'none'}_{behavior}",
        "object": "tax_rate",
        "active": True,
        "country": country,
        "created": 1700000000,
        "description": "Sandbox stand-in for Stripe Tax",
        "display_name": "VAT" if gb else "Tax",
        "effective_percentage": percentage,
        "flat_amount": None,
        "inclusive": behavior == "inclusive",
        "jurisdiction": "United Kingdom" if gb else None,
        "jurisdiction_level": "country" if gb else None,
        "livemode": False,
        "metadata": {},
        "percentage": percentage,
        "rate_type": "percentage",
        "state": None,
        "tax_type": "vat" if gb else None,
    }


def _breakdown_tax(totals: tax.Totals, amount: int, behavior: str, taxable: int) -> Obj:
    percentage = float(totals.rate * 100)
    return {
        "amount": amount,
        "rate": tax_rate(country=totals.country, behavior=behavior, percentage=percentage),
        "taxability_reason": totals.taxability_reason,
        "taxable_amount": taxable - (amount if behavior == "inclusive" else 0),
    }


def breakdown(totals: tax.Totals, *, discount: Obj | None) -> Obj:
    """`total_details.breakdown` (includable): the session's discount and tax amounts."""
    found: Obj = {"discounts": [], "taxes": []}
    if discount is not None:
        found["discounts"].append({"amount": totals.discount, "discount": _rendered(discount)})
    if totals.taxed:
        percentage = float(totals.rate * 100)
        for behavior, (amount, base) in sorted(totals.by_behavior.items()):
            found["taxes"].append(
                {
                    "amount": amount,
                    "rate": tax_rate(
                        country=totals.country, behavior=behavior, percentage=percentage
                    ),
                    "taxability_reason": totals.taxability_reason,
                    "taxable_amount": base,
                }
            )
    return found


def discount_for(session: Obj, found: Quote, customer: Obj) -> Obj | None:
    """The Discount a one-off payment's code makes (named by its session)."""
    if found.coupon is None:
        return None
    return discounts.discount_create(
        coupon=found.coupon,
        promo=found.promo,
        customer_id=customer["id"],
        subscription_id=None,
        checkout_session=session["id"],
        start=store.now(),
    )


def subscription_setup(session: Obj, found: Quote, sub: Obj) -> Obj | None:
    """Carry the session's automatic tax and code onto the subscription it creates: a
    Discount on the subscription (`discounts`), which its invoices apply for as long as
    the coupon's duration covers them."""
    if session["automatic_tax"]["enabled"]:
        sub["automatic_tax"].update(enabled=True, liability={"account": None, "type": "self"})
    if found.coupon is None:
        return None
    discount = discounts.discount_create(
        coupon=found.coupon,
        promo=found.promo,
        customer_id=sub["customer"],
        subscription_id=sub["id"],
        checkout_session=None,
        start=sub["created"],
    )
    sub["discounts"] = [discount["id"]]
    return discount


def tax_ids(session: Obj, value: str, country: str) -> list[Obj]:
    """The VAT number typed in, when the session collects tax ids: `gb_vat` for a UK
    address, `eu_vat` otherwise (Checkout's types for VAT numbers)."""
    value = "".join(value.split()).upper()
    if not value or not (session.get("tax_id_collection") or {}).get("enabled"):
        return []
    return [{"type": "gb_vat" if country == "GB" else "eu_vat", "value": value}]
