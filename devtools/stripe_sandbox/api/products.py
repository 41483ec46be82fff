"""The sandbox's Stripe API for products and prices."""

from __future__ import annotations

import copy
import re

from devtools.stripe_sandbox import objects, store
from devtools.stripe_sandbox.api.params import (
    as_bool,
    filtered,
    flag_is,
    int_param,
    list_param,
    required,
    update_fields,
    updated,
)
from devtools.stripe_sandbox.api.router import ID, route
from devtools.stripe_sandbox.events import event_emit
from devtools.stripe_sandbox.store import Obj, StripeError


@route("POST", "/products")
def product_create(params: Obj) -> Obj:
    required(params, "name")
    if params.get("id") and store.find(params["id"]):
        raise StripeError(
            f"Product already exists: {params['id']}", param="id", code="resource_already_exists"
        )
    product = store.save(objects.product(params))
    event_emit("product.created", product)
    return product


@route("GET", f"/products/{ID}")
def product_retrieve(params: Obj, id: str) -> Obj:
    return store.get(id, "product")


@route("POST", f"/products/{ID}")
def product_update(params: Obj, id: str) -> Obj:
    product = store.get(id, "product", lock=True)
    before = copy.deepcopy(product)
    update_fields(product, params, ("name", "description", "active", "default_price", "url"))
    if "metadata" in params:
        product["metadata"] = objects.metadata_merge(product["metadata"], params["metadata"])
    return updated(product, before, "product.updated")


@route("GET", "/products")
def product_list(params: Obj) -> Obj:
    return filtered(
        "product",
        params,
        "/v1/products",
        active=flag_is("active"),
        ids=lambda obj, ids: obj["id"] in (ids if isinstance(ids, list) else [ids]),
    )


@route("GET", f"/products/{ID}/features")
def product_features(params: Obj, id: str) -> Obj:
    store.get(id, "product")
    return store.list_envelope([], f"/v1/products/{id}/features")


@route("POST", "/prices")
def price_create(params: Obj) -> Obj:
    currency = required(params, "currency")
    if not re.fullmatch(r"[a-zA-Z]{3}", currency):
        raise StripeError(f"Invalid currency: {currency}", param="currency")
    unit_amount = int_param(params, "unit_amount")
    product: Obj | None
    if product_data := params.get("product_data"):
        product = store.save(objects.product(product_data))
        event_emit("product.created", product)
    else:
        product = store.find(required(params, "product"), "product")
        if product is None:
            raise store.missing("product", params["product"], param="product", status=400)
    recurring = params.get("recurring")
    if recurring is not None and recurring.get("interval") not in {"day", "week", "month", "year"}:
        raise StripeError(
            "Invalid recurring[interval]: must be one of day, week, month, or year",
            param="recurring[interval]",
        )
    if params.get("tax_behavior") not in (None, "", "exclusive", "inclusive", "unspecified"):
        raise StripeError(
            "Invalid tax_behavior: must be one of exclusive, inclusive, or unspecified",
            param="tax_behavior",
        )
    lookup_key = params.get("lookup_key")
    if lookup_key:
        holders = store.select("price", lambda p: p.get("lookup_key") == lookup_key)
        if holders and not as_bool(params.get("transfer_lookup_key")):
            raise StripeError(
                f"A price (`{holders[0]['id']}`) already uses that lookup key.",
                param="lookup_key",
            )
        for holder in holders:
            before = copy.deepcopy(holder)
            holder["lookup_key"] = None
            updated(holder, before, "price.updated")
    price = store.save(objects.price(params, unit_amount=unit_amount, product_id=product["id"]))
    event_emit("price.created", price)
    return price


@route("GET", f"/prices/{ID}")
def price_retrieve(params: Obj, id: str) -> Obj:
    return store.get(id, "price")


@route("POST", f"/prices/{ID}")
def price_update(params: Obj, id: str) -> Obj:
    price = store.get(id, "price", lock=True)
    before = copy.deepcopy(price)
    update_fields(price, params, ("active", "nickname", "lookup_key"))
    if "metadata" in params:
        price["metadata"] = objects.metadata_merge(price["metadata"], params["metadata"])
    return updated(price, before, "price.updated")


@route("GET", "/prices")
def price_list(params: Obj) -> Obj:
    lookup_keys = list_param(params, "lookup_keys")
    items = store.select(
        "price",
        lambda p: (
            (not lookup_keys or p.get("lookup_key") in lookup_keys)
            and ("active" not in params or p["active"] is as_bool(params["active"]))
            and (not params.get("product") or p["product"] == params["product"])
            and (not params.get("type") or p["type"] == params["type"])
            and (not params.get("currency") or p["currency"] == params["currency"].lower())
            and (
                not (params.get("recurring") or {}).get("interval")
                or (p.get("recurring") or {}).get("interval") == params["recurring"]["interval"]
            )
        ),
    )
    return store.paginate(items, params, "/v1/prices")
