"""The sandbox's stand-ins for Stripe's hosted pages: Checkout and the customer portal.

Like Stripe's, they are reachable by whoever holds the URL (the id is the secret), so
they need no login; forms are CSRF protected like every other page of the site.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from stripe_sandbox import actions, bank_debits, store
from stripe_sandbox.forms import BankDebitForm, CardForm, PortalActionForm
from stripe_sandbox.store import Obj, StripeError


def _stored_or_404(object_id: str, type: str) -> Obj:
    obj = store.find(object_id, type)
    if obj is None:
        raise Http404(f"No such {type}")
    return obj


def _line_view(price: Obj, quantity: int) -> dict[str, Any]:
    recurring = price.get("recurring")
    return {
        "name": actions.product_name(price),
        "quantity": quantity,
        "amount": actions.format_amount(price["unit_amount"] * quantity, price["currency"]),
        "interval": f"per {recurring['interval']}" if recurring else "one-off",
    }


@require_http_methods(["GET", "POST"])
def checkout(request: HttpRequest, session_id: str) -> HttpResponse:
    session = _stored_or_404(session_id, "checkout.session")
    if session["status"] == "complete":
        return redirect(actions.success_url(session))
    form = CardForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            return redirect(
                actions.checkout_pay(
                    session_id=session_id, card_number=form.cleaned_data["card_number"]
                )
            )
        except actions.PaymentError as exc:
            form.add_error("card_number", str(exc))
    context = {
        "session": session,
        "lines": [_line_view(li["price"], li["quantity"]) for li in session.get("_line_items", [])],
        "total": actions.format_amount(session["amount_total"], session["currency"]),
        "form": form,
        "open": session["status"] == "open",
        **_bank_debit_context(session, BankDebitForm()),
    }
    return render(request, "sandbox/checkout.html", context, status=400 if form.errors else 200)


def _bank_debit_context(session: Obj, form: BankDebitForm) -> dict[str, Any]:
    return {
        "bank_form": form,
        "bank_debit": session["currency"] == "gbp",  # Bacs takes GBP only
        "bank_accounts": bank_debits.ACCOUNT_NOTES,
    }


@require_http_methods(["POST"])
def checkout_bank_debit(request: HttpRequest, session_id: str) -> HttpResponse:
    """Pay by Bacs Direct Debit: the session completes unpaid, the bank answers later."""
    session = _stored_or_404(session_id, "checkout.session")
    if session["status"] == "complete":
        return redirect(actions.success_url(session))
    form = BankDebitForm(request.POST)
    if form.is_valid():
        try:
            return redirect(
                bank_debits.checkout_pay_bank_debit(
                    session_id=session_id,
                    sort_code=form.cleaned_data["sort_code"],
                    account_number=form.cleaned_data["account_number"],
                )
            )
        except actions.PaymentError as exc:
            form.add_error("account_number", str(exc))
    context = {
        "session": session,
        "lines": [_line_view(li["price"], li["quantity"]) for li in session.get("_line_items", [])],
        "total": actions.format_amount(session["amount_total"], session["currency"]),
        "form": CardForm(),
        "open": session["status"] == "open",
        **_bank_debit_context(session, form),
    }
    return render(request, "sandbox/checkout.html", context, status=400)


def _portal_subscriptions(customer_id: str) -> list[dict[str, Any]]:
    switchable = [p for p in store.all_of("price") if p["active"] and p.get("recurring")]
    rows = []
    for sub in store.all_of("subscription"):
        if sub["customer"] != customer_id or sub["status"] not in actions.LIVE:
            continue
        item = sub["items"]["data"][0]
        rows.append(
            {
                "sub": sub,
                "line": _line_view(item["price"], item["quantity"]),
                "period_end": store.ts_datetime(item["current_period_end"]),
                "choices": [
                    (p["id"], _line_view(p, 1))
                    for p in switchable
                    if p["id"] != item["price"]["id"] and p["currency"] == sub["currency"]
                ],
            }
        )
    return rows


def _portal_act(portal: Obj, data: PortalActionForm) -> None:
    sub_id = data.cleaned_data["subscription"]
    sub = store.find(sub_id, "subscription")
    if sub is None or sub["customer"] != portal["customer"]:
        raise Http404("No such subscription for this customer")
    action = data.cleaned_data["action"]
    if action == "cancel_now":
        actions.subscription_cancel(sub_id)
    elif action == "cancel_at_period_end":
        actions.subscription_cancel_at_period_end(sub_id)
    else:
        actions.subscription_switch(sub_id, price_id=data.cleaned_data["price"])


@require_http_methods(["GET", "POST"])
def portal(request: HttpRequest, session_id: str) -> HttpResponse:
    portal_session = _stored_or_404(session_id, "billing_portal.session")
    if request.method == "POST":
        form = PortalActionForm(request.POST)
        if form.is_valid():
            try:
                _portal_act(portal_session, form)
                return redirect(portal_session["return_url"])
            except StripeError as exc:
                messages.error(request, exc.message)
        else:
            messages.error(request, "Choose an action (and a plan to switch to).")
    context = {
        "portal": portal_session,
        "customer": store.find(portal_session["customer"], "customer") or {},
        "rows": _portal_subscriptions(portal_session["customer"]),
    }
    return render(request, "sandbox/portal.html", context)
