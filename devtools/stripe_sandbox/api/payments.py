"""The sandbox's Stripe API for invoices, payments, charges, refunds."""

from __future__ import annotations

from devtools.stripe_sandbox import actions, collection, objects, store
from devtools.stripe_sandbox.api.params import (
    field_equals,
    filtered,
    int_param,
)
from devtools.stripe_sandbox.api.router import ID, route
from devtools.stripe_sandbox.store import Obj, StripeError


@route("GET", f"/invoices/{ID}")
def invoice_retrieve(params: Obj, id: str) -> Obj:
    return store.get(id, "invoice")


@route("POST", f"/invoices/{ID}/pay")
def invoice_pay(params: Obj, id: str) -> Obj:
    """Pay an open invoice now (off-session, as a server call is), with `payment_method`
    or the customer's default card; a decline is Stripe's 402 card_error."""
    card = None
    if pm_id := params.get("payment_method"):
        card = collection.card_from_payment_method(pm_id, param="payment_method")
    outcome = collection.invoice_pay(id, card=card, on_session=False)
    if outcome == collection.FAILED:
        raise StripeError(
            "Your card was declined.", status=402, type="card_error", code="card_declined"
        )
    if outcome == collection.ACTION_REQUIRED:
        raise StripeError(
            "This payment requires authentication: the customer completes it on the "
            "hosted invoice page.",
            status=402,
            type="card_error",
            code="invoice_payment_intent_requires_action",
        )
    return store.get(id, "invoice")


@route("POST", f"/invoices/{ID}/void")
def invoice_void(params: Obj, id: str) -> Obj:
    return collection.invoice_void(id)


@route("POST", f"/invoices/{ID}/mark_uncollectible")
def invoice_mark_uncollectible(params: Obj, id: str) -> Obj:
    return collection.invoice_mark_uncollectible(id)


@route("GET", f"/payment_methods/{ID}")
def payment_method_retrieve(params: Obj, id: str) -> Obj:
    return store.get(id, "payment_method")


@route("GET", f"/invoices/{ID}/lines")
def invoice_lines(params: Obj, id: str) -> Obj:
    return store.paginate(
        store.get(id, "invoice")["lines"]["data"], params, f"/v1/invoices/{id}/lines"
    )


@store.virtual("invoice", "confirmation_secret")
def _invoice_confirmation_secret(invoice: Obj) -> Obj | None:
    """Sent only on expand[]: the client secret of the invoice's payment intent."""
    pi = store.find(invoice.get("_payment_intent") or "", "payment_intent")
    return {"client_secret": pi["client_secret"], "type": "payment_intent"} if pi else None


def _invoice_subscription(invoice: Obj, value: str) -> bool:
    details = ((invoice.get("parent") or {}).get("subscription_details")) or {}
    return details.get("subscription") == value


@route("GET", "/invoices")
def invoice_list(params: Obj) -> Obj:
    return filtered(
        "invoice",
        params,
        "/v1/invoices",
        customer=field_equals("customer"),
        status=field_equals("status"),
        subscription=_invoice_subscription,
    )


def _invoice_payment(invoice: Obj) -> Obj | None:
    """The invoice's payment as Stripe's InvoicePayment shows it: one per invoice with a
    PaymentIntent (its latest attempt), `paid` once the intent succeeded. Made from the
    stored invoice, with an id derived from the invoice's so that it is stable."""
    pi = store.find(invoice.get("_payment_intent") or "", "payment_intent")
    if pi is None:
        return None
    status = {"succeeded": "paid", "canceled": "canceled"}.get(pi["status"], "open")
    paid = status == "paid"
    return {
        "id": "inpay_" + invoice["id"].removeprefix("in_"),
        "object": "invoice_payment",
        "amount_paid": pi["amount"] if paid else None,
        "amount_requested": pi["amount"],
        "created": pi["created"],
        "currency": pi["currency"],
        "invoice": invoice["id"],
        "is_default": True,
        "livemode": False,
        "payment": {"payment_intent": pi["id"], "type": "payment_intent"},
        "status": status,
        "status_transitions": {
            "canceled_at": pi.get("canceled_at") if status == "canceled" else None,
            "paid_at": (invoice.get("status_transitions") or {}).get("paid_at") if paid else None,
        },
    }


@store.virtual("invoice", "payments")
def _invoice_payments(invoice: Obj) -> Obj:
    """Sent only on expand[]: the invoice's payments (Stripe's includable field)."""
    payment = _invoice_payment(invoice)
    return store.list_envelope(
        [payment] if payment else [], f"/v1/invoice_payments?invoice={invoice['id']}"
    )


@route("GET", "/invoice_payments")
def invoice_payment_list(params: Obj) -> Obj:
    """Stripe's InvoicePayment list (`invoice`, `status`): how this API version links an
    invoice to the PaymentIntent that paid it."""
    invoice_id, status = params.get("invoice"), params.get("status")
    payments = [
        payment
        for invoice in store.all_of("invoice")
        if not invoice_id or invoice["id"] == invoice_id
        if (payment := _invoice_payment(invoice))
        if not status or payment["status"] == status
    ]
    return store.paginate(payments, params, "/v1/invoice_payments")


@route("GET", f"/invoice_payments/{ID}")
def invoice_payment_retrieve(params: Obj, id: str) -> Obj:
    invoice = store.find("in_" + id.removeprefix("inpay_"), "invoice")
    payment = _invoice_payment(invoice) if invoice else None
    if payment is None:
        raise store.missing("invoice_payment", id)
    return payment


@route("GET", f"/payment_intents/{ID}")
def payment_intent_retrieve(params: Obj, id: str) -> Obj:
    return store.get(id, "payment_intent")


@route("GET", "/payment_intents")
def payment_intent_list(params: Obj) -> Obj:
    return filtered(
        "payment_intent", params, "/v1/payment_intents", customer=field_equals("customer")
    )


@route("GET", f"/charges/{ID}")
def charge_retrieve(params: Obj, id: str) -> Obj:
    return store.get(id, "charge")


@route("GET", "/charges")
def charge_list(params: Obj) -> Obj:
    return filtered(
        "charge",
        params,
        "/v1/charges",
        customer=field_equals("customer"),
        payment_intent=field_equals("payment_intent"),
    )


@route("POST", "/refunds")
def refund_create(params: Obj) -> Obj:
    amount = (
        int_param(params, "amount", minimum=1) if params.get("amount") not in (None, "") else None
    )
    return actions.refund_create(
        charge_id=params.get("charge") or None,
        payment_intent_id=params.get("payment_intent") or None,
        amount=amount,
        reason=params.get("reason") or None,
        metadata=objects.metadata_merge({}, params.get("metadata")),
    )


@route("GET", f"/refunds/{ID}")
def refund_retrieve(params: Obj, id: str) -> Obj:
    return store.get(id, "refund")


@route("GET", "/refunds")
def refund_list(params: Obj) -> Obj:
    return filtered(
        "refund",
        params,
        "/v1/refunds",
        charge=field_equals("charge"),
        payment_intent=field_equals("payment_intent"),
    )
