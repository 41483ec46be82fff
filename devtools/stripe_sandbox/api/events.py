"""The sandbox's Stripe API for events and webhook endpoints."""

from __future__ import annotations

from functools import reduce
from operator import or_

from django.db.models import Q

from devtools.stripe_sandbox import store
from devtools.stripe_sandbox.api.params import (
    list_param,
)
from devtools.stripe_sandbox.api.router import ID, route
from devtools.stripe_sandbox.models import StripeObject
from devtools.stripe_sandbox.store import Obj, StripeError


@route("GET", f"/events/{ID}")
def event_retrieve(params: Obj, id: str) -> Obj:
    return store.get(id, "event")


# Stripe's Events API lists the last 30 days only, and its `types` filter takes at most
# 20 names, never together with `type`.
EVENTS_KEPT_SECONDS = 30 * 24 * 3600
TYPES_MAX = 20


@route("GET", "/events")
def event_list(params: Obj) -> Obj:
    types = list_param(params, "types")
    if types and params.get("type"):
        raise StripeError("You may pass either `type` or `types`, but not both.", param="types")
    if len(types) > TYPES_MAX:
        raise StripeError(
            f"Invalid array: `types` can contain at most {TYPES_MAX} items.", param="types"
        )
    types = types or ([params["type"]] if params.get("type") else [])
    rows = StripeObject.objects.filter(type="event", created__gte=store.now() - EVENTS_KEPT_SECONDS)
    if types:
        rows = rows.filter(
            reduce(
                or_,
                (
                    Q(data__type__startswith=t[:-1]) if t.endswith("*") else Q(data__type=t)
                    for t in types
                ),
            )
        )
    return store.paginate_rows(rows, params, "/v1/events")


@route("GET", f"/webhook_endpoints/{ID}")
def webhook_endpoint_retrieve(params: Obj, id: str) -> Obj:
    return store.get(id, "webhook_endpoint")


@route("GET", "/webhook_endpoints")
def webhook_endpoint_list(params: Obj) -> Obj:
    return store.paginate(store.all_of("webhook_endpoint"), params, "/v1/webhook_endpoints")
