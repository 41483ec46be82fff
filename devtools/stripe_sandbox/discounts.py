"""Coupons, promotion codes and the discounts they make, as Stripe Billing has them.

A coupon says how much comes off (`percent_off`, or `amount_off` in one `currency`) and
for how long (`duration`: `once` for the first invoice, `repeating` for
`duration_in_months`, `forever`). A promotion code is the customer-facing code of one
coupon (`promotion.coupon`), with its own `active`, `max_redemptions` and `expires_at`.
Redeeming one in Checkout makes a Discount (`di_...`) on the subscription, whose `end`
bounds a repeating coupon.
"""

from __future__ import annotations

import secrets
from decimal import ROUND_HALF_UP, Decimal

from devtools.stripe_sandbox import objects, store
from devtools.stripe_sandbox.store import Obj, StripeError

DURATIONS = ("once", "repeating", "forever")


class PromotionRefused(Exception):
    """A code the Checkout page refuses, with the reason it shows."""


# --- Coupons ----------------------------------------------------------------------------


def coupon_create(params: Obj) -> Obj:
    """POST /v1/coupons, with Stripe's validation of the amount and the duration."""
    percent, amount = params.get("percent_off"), params.get("amount_off")
    if (percent in (None, "")) == (amount in (None, "")):
        raise StripeError(
            "You must pass exactly one of `percent_off` or `amount_off`.", param="percent_off"
        )
    currency = (params.get("currency") or "").lower() or None
    if amount not in (None, ""):
        if not currency:
            raise StripeError(
                "You must specify `currency` when `amount_off` is set.", param="currency"
            )
        amount = _int(amount, "amount_off", minimum=1)
        percent = None
    else:  # exactly one of the two was given: percent_off
        percent = float(params["percent_off"])
        if not 0 < percent <= 100:
            raise StripeError(
                "`percent_off` must be greater than 0 and at most 100.", param="percent_off"
            )
        amount = currency = None
    duration = params.get("duration") or "once"
    if duration not in DURATIONS:
        raise StripeError(f"Invalid duration: {duration}", param="duration")
    months = None
    if duration == "repeating":
        if params.get("duration_in_months") in (None, ""):
            raise StripeError(
                "Missing required param: duration_in_months.", param="duration_in_months"
            )
        months = _int(params["duration_in_months"], "duration_in_months", minimum=1)
    elif params.get("duration_in_months") not in (None, ""):
        raise StripeError(
            "`duration_in_months` can only be set when `duration` is `repeating`.",
            param="duration_in_months",
        )
    coupon_id = params.get("id") or secrets.token_hex(4)
    if store.find(coupon_id, "coupon"):
        raise StripeError("Coupon already exists.", code="resource_already_exists", param="id")
    max_redemptions = params.get("max_redemptions")
    return store.save(
        {
            "id": coupon_id,
            "object": "coupon",
            "amount_off": amount,
            "applies_to": None,
            "created": store.now(),
            "currency": currency,
            "currency_options": None,
            "duration": duration,
            "duration_in_months": months,
            "livemode": False,
            "max_redemptions": _int(max_redemptions, "max_redemptions", minimum=1)
            if max_redemptions not in (None, "")
            else None,
            "metadata": objects.metadata_merge({}, params.get("metadata")),
            "name": params.get("name") or None,
            "percent_off": percent,
            "redeem_by": _int(params["redeem_by"], "redeem_by")
            if params.get("redeem_by")
            else None,
            "times_redeemed": 0,
            "valid": True,
        }
    )


def _int(value: object, param: str, *, minimum: int = 0) -> int:
    number = store.integer(value, param)
    if number < minimum:
        raise StripeError(f"This value must be greater than or equal to {minimum}.", param=param)
    return number


def coupon_valid(coupon: Obj) -> bool:
    """Stripe's `valid`: not past `redeem_by` and not redeemed `max_redemptions` times."""
    if coupon.get("redeem_by") and store.now() > coupon["redeem_by"]:
        return False
    limit = coupon.get("max_redemptions")
    return not (limit and coupon["times_redeemed"] >= limit)


# --- Promotion codes --------------------------------------------------------------------


def promotion_code_create(params: Obj) -> Obj:
    """POST /v1/promotion_codes: `promotion[type]=coupon` + `promotion[coupon]` (this API
    version's shape; earlier ones took a top-level `coupon`), `code`, `active`,
    `max_redemptions`, `expires_at`."""
    promotion = params.get("promotion") or {}
    coupon_id = promotion.get("coupon") if isinstance(promotion, dict) else None
    if not coupon_id:
        raise StripeError("Missing required param: promotion[coupon].", param="promotion")
    coupon = store.find(coupon_id, "coupon")
    if coupon is None:
        raise store.missing("coupon", coupon_id, param="promotion[coupon]", status=400)
    code = params.get("code") or secrets.token_hex(4).upper()
    if not code.isalnum() or len(code) > 500:
        raise StripeError("A code may contain only letters and digits.", param="code")
    if promotion_code_find(code, active_only=True):
        raise StripeError(
            f"An active promotion code with `code: {code}` already exists.", param="code"
        )
    max_redemptions = params.get("max_redemptions")
    return store.save(
        {
            "id": store.new_id("promo"),
            "object": "promotion_code",
            "active": str(params.get("active", "true")).lower() != "false",
            "code": code,
            "created": store.now(),
            "customer": params.get("customer") or None,
            "customer_account": None,
            "expires_at": _int(params["expires_at"], "expires_at")
            if params.get("expires_at")
            else None,
            "livemode": False,
            "max_redemptions": _int(max_redemptions, "max_redemptions", minimum=1)
            if max_redemptions not in (None, "")
            else None,
            "metadata": objects.metadata_merge({}, params.get("metadata")),
            "promotion": {"coupon": coupon["id"], "type": "coupon"},
            "restrictions": {
                "currency_options": {},
                "first_time_transaction": False,
                "minimum_amount": None,
                "minimum_amount_currency": None,
            },
            "times_redeemed": 0,
        }
    )


def promotion_code_find(code: str, *, active_only: bool = False) -> Obj | None:
    """The promotion code whose `code` is `code`; Stripe compares them case-insensitively.
    An active one wins over inactive ones with the same code."""
    found = [p for p in store.all_of("promotion_code") if p["code"].lower() == code.lower()]
    found.sort(key=lambda p: not p["active"])
    if active_only:
        found = [p for p in found if p["active"]]
    return found[0] if found else None


def promotion_check(code: str, *, currency: str, customer_id: str | None) -> tuple[Obj, Obj]:
    """The promotion code and coupon that `code` redeems in a session of `currency`, or
    PromotionRefused with the reason (unknown, inactive, expired, used up)."""
    promo = promotion_code_find(code.strip())
    if promo is None:
        raise PromotionRefused("This code is invalid.")
    coupon = store.get(promo["promotion"]["coupon"], "coupon")
    if not promo["active"]:
        raise PromotionRefused("This code is no longer active.")
    if promo.get("expires_at") and store.now() > promo["expires_at"]:
        raise PromotionRefused("This code has expired.")
    if coupon.get("redeem_by") and store.now() > coupon["redeem_by"]:
        raise PromotionRefused("This code has expired.")
    limit = promo.get("max_redemptions")
    if (limit and promo["times_redeemed"] >= limit) or not coupon_valid(coupon):
        raise PromotionRefused("This code has already been used the maximum number of times.")
    if promo.get("customer") and promo["customer"] != customer_id:
        raise PromotionRefused("This code is not valid for this customer.")
    if coupon.get("amount_off") and coupon["currency"] != currency:
        raise PromotionRefused(f"This code cannot be used with {currency.upper()}.")
    return promo, coupon


def redeem(promo: Obj, coupon: Obj) -> None:
    """Count one redemption on the code and on its coupon."""
    promo["times_redeemed"] += 1
    coupon["times_redeemed"] += 1
    coupon["valid"] = coupon_valid(coupon)
    store.save(promo)
    store.save(coupon)


# --- Discounts --------------------------------------------------------------------------


def discount_create(
    *,
    coupon: Obj,
    promo: Obj | None,
    customer_id: str,
    subscription_id: str | None,
    checkout_session: str | None,
    start: int,
) -> Obj:
    end = None
    if coupon["duration"] == "repeating":
        end = store.month_add(start, "month", coupon["duration_in_months"])
    return store.save(
        {
            "id": store.new_id("di"),
            "object": "discount",
            # Stripe: set only for a session in payment mode, not in subscription mode.
            "checkout_session": checkout_session,
            "customer": customer_id,
            "customer_account": None,
            "end": end,
            "invoice": None,
            "invoice_item": None,
            "promotion_code": promo["id"] if promo else None,
            "source": {"coupon": coupon["id"], "type": "coupon"},
            "start": start,
            "subscription": subscription_id,
            "subscription_item": None,
        }
    )


def discount_covers(discount: Obj, invoice: Obj) -> bool:
    """Whether `discount` applies to `invoice`: a `once` coupon only to the subscription's
    first invoice, a `repeating` one to invoices for periods starting before its `end`,
    a `forever` one to all."""
    coupon = store.find(discount["source"]["coupon"], "coupon") or {}
    duration = coupon.get("duration")
    if duration == "once":
        return invoice.get("billing_reason") == "subscription_create"
    if duration == "repeating":
        return bool(discount.get("end")) and invoice["period_start"] < discount["end"]
    return duration == "forever"


def amount_off(coupon: Obj, amount: int) -> int:
    """What `coupon` takes off `amount` (minor units): a percentage rounded half up to
    the minor unit, or a fixed amount never more than `amount`."""
    if amount <= 0:
        return 0
    if coupon.get("percent_off"):
        off = (Decimal(amount) * Decimal(str(coupon["percent_off"])) / 100).quantize(
            Decimal(1), rounding=ROUND_HALF_UP
        )
        return min(int(off), amount)
    return min(coupon.get("amount_off") or 0, amount)


def coupon_describe(coupon: Obj) -> str:
    """ "20% off for 3 months", "£5.00 off once": what the pages say of a coupon."""
    if coupon.get("percent_off"):
        what = f"{Decimal(str(coupon['percent_off'])).normalize():f}% off"
    else:
        what = f"{objects.format_amount(coupon['amount_off'], coupon['currency'])} off"
    if coupon["duration"] == "repeating":
        months = coupon["duration_in_months"]
        return f"{what} for {months} month{'s' if months != 1 else ''}"
    return f"{what} {'once' if coupon['duration'] == 'once' else 'forever'}"
