"""The sandbox's Stripe API for coupons and promotion codes
(devtools/stripe_sandbox/discounts.py)."""

from __future__ import annotations

import copy

from devtools.stripe_sandbox import discounts, objects, store
from devtools.stripe_sandbox.api.params import as_bool, field_equals, filtered, flag_is
from devtools.stripe_sandbox.api.router import ID, route
from devtools.stripe_sandbox.events import changes, event_emit
from devtools.stripe_sandbox.store import Obj


@route("POST", "/coupons")
def coupon_create(params: Obj) -> Obj:
    coupon = discounts.coupon_create(params)
    event_emit("coupon.created", coupon)
    return coupon


@route("GET", f"/coupons/{ID}")
def coupon_retrieve(params: Obj, id: str) -> Obj:
    return store.get(id, "coupon")


@route("GET", "/coupons")
def coupon_list(params: Obj) -> Obj:
    return filtered("coupon", params, "/v1/coupons")


@route("POST", "/promotion_codes")
def promotion_code_create(params: Obj) -> Obj:
    promo = discounts.promotion_code_create(params)
    event_emit("promotion_code.created", promo)
    return promo


@route("GET", f"/promotion_codes/{ID}")
def promotion_code_retrieve(params: Obj, id: str) -> Obj:
    return store.get(id, "promotion_code", kind="promotion code")


@route("POST", f"/promotion_codes/{ID}")
def promotion_code_update(params: Obj, id: str) -> Obj:
    """Only `active` and `metadata` can change, as at Stripe."""
    promo = store.get(id, "promotion_code", kind="promotion code", lock=True)
    before = copy.deepcopy(promo)
    if "active" in params:
        promo["active"] = as_bool(params["active"])
    if "metadata" in params:
        promo["metadata"] = objects.metadata_merge(promo["metadata"], params["metadata"])
    if diff := changes(before, promo):
        store.save(promo)
        event_emit("promotion_code.updated", promo, previous=diff)
    return promo


@route("GET", "/promotion_codes")
def promotion_code_list(params: Obj) -> Obj:
    return filtered(
        "promotion_code",
        params,
        "/v1/promotion_codes",
        active=flag_is("active"),
        code=lambda obj, value: obj["code"].lower() == str(value).lower(),
        coupon=lambda obj, value: obj["promotion"]["coupon"] == value,
        customer=field_equals("customer"),
    )
