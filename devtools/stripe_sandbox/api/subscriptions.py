"""The sandbox's Stripe API for subscriptions."""

from __future__ import annotations

from devtools.stripe_sandbox import actions, collection, store
from devtools.stripe_sandbox.api.params import (
    as_bool,
    required,
)
from devtools.stripe_sandbox.api.router import ID, route
from devtools.stripe_sandbox.store import Obj


@route("POST", "/subscriptions")
def subscription_create(params: Obj) -> Obj:
    return collection.subscription_create(params)


@route("GET", f"/subscriptions/{ID}")
def subscription_retrieve(params: Obj, id: str) -> Obj:
    return store.get(id, "subscription")


@route("POST", f"/subscriptions/{ID}")
def subscription_update(params: Obj, id: str) -> Obj:
    return actions.subscription_update(id, params)


@route("DELETE", f"/subscriptions/{ID}")
def subscription_cancel(params: Obj, id: str) -> Obj:
    return actions.subscription_cancel_now(
        id,
        invoice_now=as_bool(params.get("invoice_now")),
        prorate=as_bool(params.get("prorate")),
    )


@route("GET", "/subscriptions")
def subscription_list(params: Obj) -> Obj:
    status = params.get("status") or ""

    def wanted(sub: Obj) -> bool:
        sub_status: str = sub["status"]
        if status == "all":
            return True
        if status:
            return sub_status == status
        return sub_status not in {"canceled", "incomplete_expired"}

    items = store.select(
        "subscription",
        lambda s: (
            wanted(s)
            and (not params.get("customer") or s["customer"] == params["customer"])
            and (
                not params.get("price")
                or any(i["price"]["id"] == params["price"] for i in s["items"]["data"])
            )
        ),
    )
    return store.paginate(items, params, "/v1/subscriptions")


@route("GET", f"/subscription_items/{ID}")
def subscription_item_retrieve(params: Obj, id: str) -> Obj:
    return store.get(id, "subscription_item")


@route("GET", "/subscription_items")
def subscription_item_list(params: Obj) -> Obj:
    sub = store.get(required(params, "subscription"), "subscription")
    return store.paginate(sub["items"]["data"], params, "/v1/subscription_items")
