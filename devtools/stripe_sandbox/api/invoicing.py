"""The sandbox's Stripe API for invoice items (pending prorations) and the invoice
preview. Paying an open invoice is in api/payments.py."""

from __future__ import annotations

from devtools.stripe_sandbox import actions, store
from devtools.stripe_sandbox.api.params import as_bool, field_equals, filtered
from devtools.stripe_sandbox.api.router import ID, route
from devtools.stripe_sandbox.store import Obj, StripeError


@route("POST", "/invoices/create_preview", read_only=True)
def invoice_create_preview(params: Obj) -> Obj:
    return actions.invoice_preview(params)


def _invoice_is(ii: Obj, value: str) -> bool:
    return ii.get("invoice") == value


def _pending_is(ii: Obj, value: str) -> bool:
    return (ii.get("invoice") is None) is as_bool(value)


@route("GET", "/invoiceitems")
def invoice_item_list(params: Obj) -> Obj:
    return filtered(
        "invoiceitem",
        params,
        "/v1/invoiceitems",
        customer=field_equals("customer"),
        invoice=_invoice_is,
        pending=_pending_is,
    )


@route("GET", f"/invoiceitems/{ID}")
def invoice_item_retrieve(params: Obj, id: str) -> Obj:
    return store.get(id, "invoiceitem", kind="invoiceitem")


@route("DELETE", f"/invoiceitems/{ID}")
def invoice_item_delete(params: Obj, id: str) -> Obj:
    ii = store.get(id, "invoiceitem", kind="invoiceitem")
    if ii["invoice"] is not None:
        raise StripeError(
            "Invoice items that are on an invoice can't be deleted.", param="invoiceitem"
        )
    return actions.invoice_item_delete(ii)
