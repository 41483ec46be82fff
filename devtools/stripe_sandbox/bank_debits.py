"""Bacs Direct Debit in the sandbox's Checkout: a delayed-notification payment method.

As at Stripe, paying by bank debit completes the Checkout Session at once with
`payment_status: "unpaid"` (`checkout.session.completed`) while the payment is
`processing`; the bank's answer comes days later. Here it comes SETTLE_DAYS later on the
sandbox clock (when `stripe_sandbox advance` passes it): the payment's events, then
`checkout.session.async_payment_succeeded` (session `paid`) or
`checkout.session.async_payment_failed` (session stays `unpaid`). In subscription mode the
subscription is `incomplete` while its first invoice's payment is processing, and turns
`active` when it is paid; a failed debit leaves the invoice open and the subscription
`incomplete`.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

from django.db import transaction

from devtools.stripe_sandbox import actions, invoices, objects, store
from devtools.stripe_sandbox.events import changes, event_emit
from devtools.stripe_sandbox.store import Obj

logger = logging.getLogger(__name__)

SETTLE_DAYS = 3
SORT_CODE = "108800"
ACCOUNT_SUCCEEDS = "00012345"
ACCOUNT_FAILS = "33333335"
# What each does, in the words the checkout page and the README use.
ACCOUNT_NOTES = (
    (ACCOUNT_SUCCEEDS, "the debit succeeds 3 days later"),
    (ACCOUNT_FAILS, "the debit fails 3 days later (insufficient funds)"),
)


def _digits(value: str) -> str:
    return re.sub(r"[\s-]", "", value or "")


def _bacs_details(charge: Obj, account: str) -> None:
    charge["payment_method_details"] = {
        "type": "bacs_debit",
        "bacs_debit": {
            "expected_debit_date": None,
            "fingerprint": "SandboxBacs" + account[-4:],
            "last4": account[-4:],
            "mandate": None,
            "sort_code": SORT_CODE,
        },
    }


def _processing_payment(
    *, customer: Obj, amount: int, currency: str, account: str, **kw: Any
) -> Obj:
    """A PaymentIntent `processing` with a `pending` charge (charge.pending,
    payment_intent.processing); returns the payment intent."""
    pi = objects.payment_intent(
        amount=amount,
        currency=currency,
        customer_id=customer["id"],
        metadata=kw.get("metadata") or {},
        description=kw.get("description") or "",
    )
    pi["payment_method_types"] = ["bacs_debit"]
    charge = objects.charge(pi=pi, card=account, succeeded=False)
    _bacs_details(charge, account)
    charge.update(
        status="pending",
        failure_code=None,
        failure_message=None,
        outcome=None,
        captured=True,
        amount_captured=amount,
    )
    pi.update(status="processing", latest_charge=charge["id"], processing=None)
    store.save(charge)
    store.save(pi)
    event_emit("charge.pending", charge)
    event_emit("payment_intent.processing", pi)
    return pi


def checkout_pay_bank_debit(*, session_id: str, sort_code: str, account_number: str) -> str:
    """Pay checkout session `session_id` by Bacs Direct Debit; returns the success URL."""
    sort_code, account = _digits(sort_code), _digits(account_number)
    if sort_code != SORT_CODE or account not in {ACCOUNT_SUCCEEDS, ACCOUNT_FAILS}:
        raise invoices.PaymentError(
            "The sandbox accepts only its test bank account: sort code 10-88-00 with "
            f"account {ACCOUNT_SUCCEEDS} (succeeds) or {ACCOUNT_FAILS} (fails)."
        )
    with transaction.atomic():
        session = store.get(session_id, "checkout.session", lock=True)
        if session["status"] == "complete":
            return actions.success_url(session)
        if session["status"] != "open" or store.now() > session["expires_at"]:
            raise invoices.PaymentError(
                "This checkout session has expired. Start again from the site."
            )
        if session["currency"] != "gbp":
            raise invoices.PaymentError("Bacs Direct Debit takes payments in GBP only.")
        customer = store.find(session["customer"], "customer") if session["customer"] else None
        if customer is None:
            customer = actions.customer_create({"email": session.get("customer_email")})
        debit: Obj = {
            "settles_at": store.now() + SETTLE_DAYS * 86400,
            "succeeds": account == ACCOUNT_SUCCEEDS,
            "invoice": None,
            "subscription": None,
            "settled": None,
        }
        if session["mode"] == "subscription":
            sub, invoice, pi = _subscription_start(session, customer, account)
            session.update(subscription=sub["id"], invoice=invoice["id"])
            debit.update(subscription=sub["id"], invoice=invoice["id"])
        else:
            pi = _processing_payment(
                customer=customer,
                amount=session["amount_total"],
                currency=session["currency"],
                account=account,
                metadata=session.get("_payment_intent_metadata", {}),
                description=", ".join(
                    invoices.product_name(li["price"]) for li in session.get("_line_items", [])
                ),
            )
            session["payment_intent"] = pi["id"]
        debit["payment_intent"] = pi["id"]
        session.update(
            status="complete",
            payment_status="unpaid",
            customer=customer["id"],
            customer_details={
                "address": objects.EMPTY_ADDRESS,
                "email": customer.get("email") or session.get("customer_email"),
                "name": customer.get("name"),
                "phone": None,
                "tax_exempt": "none",
                "tax_ids": [],
            },
            _bank_debit=debit,
        )
        store.save(session)
        event_emit("checkout.session.completed", session)
        logger.info("Stripe sandbox: checkout %s paid by bank debit (processing)", session_id)
        return actions.success_url(session)


def _subscription_start(session: Obj, customer: Obj, account: str) -> tuple[Obj, Obj, Obj]:
    sub = objects.subscription(
        customer_id=customer["id"],
        currency=session["currency"],
        metadata=session.get("_subscription_metadata", {}),
        card=objects.CARD_OK,  # renewals are collected as with the card that pays
    )
    sub["status"] = "incomplete"
    sub["payment_settings"]["payment_method_types"] = ["bacs_debit"]
    for li in session.get("_line_items", []):
        if li["price"].get("recurring"):
            sub["items"]["data"].append(
                objects.subscription_item(
                    price_obj=li["price"],
                    subscription_id=sub["id"],
                    quantity=li["quantity"],
                    start=sub["created"],
                )
            )
    invoices.subscription_save(sub)
    event_emit("customer.subscription.created", sub)
    period = invoices.items_period(sub)
    invoice = invoices.invoice_new(customer, sub, reason="subscription_create", period=period)
    invoice["lines"]["data"] = [
        invoices.item_line(invoice, sub, item, period) for item in sub["items"]["data"]
    ]
    invoices.invoice_totals(invoice)
    store.save(invoice)
    event_emit("invoice.created", invoice)
    sub["latest_invoice"] = invoice["id"]
    invoices.subscription_save(sub)
    ts = store.now()
    invoice["status"] = "open"
    invoice["effective_at"] = ts
    invoice["status_transitions"]["finalized_at"] = ts
    store.save(invoice)
    event_emit("invoice.finalized", invoice)
    pi = _processing_payment(
        customer=customer,
        amount=invoice["amount_due"],
        currency=invoice["currency"],
        account=account,
        description="Subscription creation",
    )
    return sub, invoice, pi


def settle_due() -> int:
    """Settle every bank debit whose answer is due on the sandbox clock; how many."""
    due = [
        s["id"]
        for s in store.all_of("checkout.session")
        if (debit := s.get("_bank_debit"))
        and debit["settled"] is None
        and debit["settles_at"] <= store.now()
    ]
    return sum(1 for session_id in due if settle(session_id))


def settle(session_id: str) -> bool:
    """The bank's answer for the session's debit, with the events Stripe sends."""
    with transaction.atomic():
        session = store.get(session_id, "checkout.session", lock=True)
        debit = session.get("_bank_debit")
        if not debit or debit["settled"] is not None:
            return False
        pi = store.get(debit["payment_intent"], "payment_intent", lock=True)
        charge = store.get(pi["latest_charge"], "charge", lock=True)
        succeeds = debit["succeeds"]
        if succeeds:
            charge.update(status="succeeded", paid=True)
            charge["outcome"] = {
                "advice_code": None,
                "network_advice_code": None,
                "network_decline_code": None,
                "network_status": "approved_by_network",
                "reason": None,
                "risk_level": "not_assessed",
                "seller_message": "Payment complete.",
                "type": "authorized",
            }
            pi.update(status="succeeded", amount_received=pi["amount"])
            store.save(charge)
            store.save(pi)
            event_emit("charge.succeeded", charge)
            event_emit("payment_intent.succeeded", pi)
        else:
            charge.update(
                status="failed",
                paid=False,
                captured=False,
                amount_captured=0,
                failure_code="insufficient_funds",
                failure_message="The bank account has insufficient funds.",
            )
            pi.update(
                status="requires_payment_method",
                last_payment_error={
                    "type": "invalid_request_error",
                    "code": "insufficient_funds",
                    "decline_code": None,
                    "charge": charge["id"],
                    "message": "The bank account has insufficient funds.",
                },
            )
            store.save(charge)
            store.save(pi)
            event_emit("charge.failed", charge)
            event_emit("payment_intent.payment_failed", pi)
        if debit["invoice"]:
            _invoice_settle(debit, succeeds)
        elif succeeds and (session.get("invoice_creation") or {}).get("enabled"):
            # A one-off's invoice comes once the money has arrived, as with a card. The
            # bank debit page takes no code or address: no discount, no tax.
            customer = store.get(session["customer"], "customer", lock=True)
            invoice = actions.checkout_invoice(
                session, customer, discount=None, taxed=False, country=""
            )
            session["invoice"] = invoice["id"]
        debit["settled"] = "succeeded" if succeeds else "failed"
        event_type = "checkout.session.async_payment_failed"
        if succeeds:
            session["payment_status"] = "paid"
            event_type = "checkout.session.async_payment_succeeded"
        store.save(session)
        event_emit(event_type, session)
        logger.info("Stripe sandbox: bank debit of %s %s", session_id, debit["settled"])
        return True


def _invoice_settle(debit: Obj, succeeds: bool) -> None:
    invoice = store.get(debit["invoice"], "invoice", lock=True)
    invoice["attempted"] = True
    invoice["attempt_count"] += 1
    if not succeeds:
        store.save(invoice)
        event_emit("invoice.payment_failed", invoice)
        return
    invoice.update(status="paid", amount_paid=invoice["amount_due"], amount_remaining=0)
    invoice["next_payment_attempt"] = None
    invoice["status_transitions"]["paid_at"] = store.now()
    store.save(invoice)
    event_emit("invoice.paid", invoice)
    event_emit("invoice.payment_succeeded", invoice)
    sub = store.get(debit["subscription"], "subscription", lock=True)
    if sub["status"] == "incomplete":
        before = copy.deepcopy(sub)
        sub["status"] = "active"
        invoices.subscription_save(sub)
        event_emit("customer.subscription.updated", sub, previous=changes(before, sub))
