"""The sandbox's Stripe API for customers."""

from __future__ import annotations

import copy

from django.db import transaction

from devtools.stripe_sandbox import actions, objects, store
from devtools.stripe_sandbox.api.params import (
    field_equals,
    filtered,
    update_fields,
    updated,
)
from devtools.stripe_sandbox.api.router import ID, route
from devtools.stripe_sandbox.events import event_emit
from devtools.stripe_sandbox.models import StripeObject
from devtools.stripe_sandbox.store import Obj, virtual

CUSTOMER_FIELDS = (
    "email",
    "name",
    "description",
    "phone",
    "address",
    "shipping",
    "preferred_locales",
)


@route("POST", "/customers")
def customer_create(params: Obj) -> Obj:
    return actions.customer_create(params)


# The stored type of what is left of a deleted customer: Stripe's `deleted_customer`.
DELETED = "deleted_customer"


@route("GET", f"/customers/{ID}")
def customer_retrieve(params: Obj, id: str) -> Obj:
    """As Stripe: a deleted customer can still be retrieved, as its id and `deleted`."""
    return store.find(id, DELETED) or store.get(id, "customer")


@route("POST", f"/customers/{ID}")
def customer_update(params: Obj, id: str) -> Obj:
    customer = store.get(id, "customer", lock=True)
    before = copy.deepcopy(customer)
    update_fields(customer, params, CUSTOMER_FIELDS)
    if "metadata" in params:
        customer["metadata"] = objects.metadata_merge(customer["metadata"], params["metadata"])
    if invoice_settings := params.get("invoice_settings"):
        customer["invoice_settings"].update(invoice_settings)
    return updated(customer, before, "customer.updated")


@route("DELETE", f"/customers/{ID}")
def customer_delete(params: Obj, id: str) -> Obj:
    """As Stripe: the customer's subscriptions end at once (customer.subscription.deleted
    each, no proration), then the customer is gone (customer.deleted)."""
    with transaction.atomic():
        customer = store.get(id, "customer", lock=True)
        for sub in store.all_of("subscription"):
            if sub["customer"] == id and sub["status"] in actions.LIVE:
                actions.subscription_cancel(sub["id"])
        StripeObject.objects.filter(pk=id).delete()
        # Anything else is refused as for an unknown id; its invoices and payments stay.
        StripeObject.objects.create(
            pk=id,
            type=DELETED,
            data={"id": id, "object": "customer", "deleted": True},
            created=customer["created"],
        )
        event_emit("customer.deleted", customer)
    return {"id": id, "object": "customer", "deleted": True}


@route("GET", "/customers")
def customer_list(params: Obj) -> Obj:
    return filtered("customer", params, "/v1/customers", email=field_equals("email"))


@route("GET", f"/customers/{ID}/(?P<sub>sources|payment_methods|tax_ids|balance_transactions)")
def customer_sublist(params: Obj, id: str, sub: str) -> Obj:
    store.get(id, "customer")
    return store.list_envelope([], f"/v1/customers/{id}/{sub}")


@virtual("customer", "sources")
def _customer_sources(customer: Obj) -> Obj:
    return store.list_envelope([], f"/v1/customers/{customer['id']}/sources")
