"""The sandbox's stand-ins for Stripe's hosted pages: Checkout, the customer portal and
the hosted invoice page (with its printable version).

Like Stripe's, they are reachable by whoever holds the URL (the id is the secret), so
they need no login; forms are CSRF protected like every other page of the site.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from devtools.stripe_sandbox import (
    actions,
    bank_debits,
    checkout_pricing,
    collection,
    discounts,
    invoices,
    objects,
    portal_configurations,
    store,
    tax,
)
from devtools.stripe_sandbox.forms import (
    BankDebitForm,
    CardForm,
    CheckoutExtrasForm,
    PortalActionForm,
)
from devtools.stripe_sandbox.store import Obj, StripeError


def _stored_or_404(object_id: str, type: str) -> Obj:
    obj = store.find(object_id, type)
    if obj is None:
        raise Http404(f"No such {type}")
    return obj


def _line_view(price: Obj, quantity: int) -> dict[str, Any]:
    recurring = price.get("recurring")
    return {
        "name": invoices.product_name(price),
        "quantity": quantity,
        "amount": objects.format_amount(price["unit_amount"] * quantity, price["currency"]),
        "interval": f"per {recurring['interval']}" if recurring else "one-off",
    }


def _extras_form(data: Any = None) -> CheckoutExtrasForm:
    return CheckoutExtrasForm(data, countries=checkout_pricing.COUNTRIES)


def _quote_of(session: Obj, extras: CheckoutExtrasForm) -> checkout_pricing.Quote:
    """The amounts with what the customer typed; a refused code becomes the field's
    error (and the amounts are shown without it), as Stripe Checkout shows it."""
    data = extras.cleaned_data if extras.is_bound and extras.is_valid() else {}
    code, country = data.get("promotion_code") or "", data.get("country") or ""
    if code:
        try:
            return checkout_pricing.quote(session, promotion_code=code, country=country)
        except discounts.PromotionRefused as exc:
            extras.add_error("promotion_code", str(exc))
    return checkout_pricing.quote(session, country=country)


def _checkout_context(
    session: Obj, form: CardForm, extras: CheckoutExtrasForm, found: checkout_pricing.Quote
) -> dict[str, Any]:
    def money(amount: int) -> str:
        return objects.format_amount(amount, session["currency"])

    totals = found.totals
    taxed = bool(session["automatic_tax"]["enabled"])
    # A trial (subscription_data[trial_period_days]) is shown as Stripe's Checkout shows
    # it: nothing due today, then the total per period once the free days are over.
    trial_days = session.get("_trial_period_days") or 0
    recurring = next(
        (
            li["price"]["recurring"]
            for li in session.get("_line_items", [])
            if li["price"].get("recurring")
        ),
        None,
    )
    return {
        "cards": [(objects.card_display(n), note) for n, note in objects.CARD_NOTES],
        "session": session,
        "lines": [_line_view(li["price"], li["quantity"]) for li in session.get("_line_items", [])],
        "subtotal": money(totals.subtotal),
        "discount": money(totals.discount) if found.coupon else None,
        "discount_label": f"{found.promo['code']}: {discounts.coupon_describe(found.coupon)}"
        if found.coupon and found.promo
        else "",
        "taxed": taxed,
        "tax_known": taxed and bool(totals.country),
        "tax": money(totals.tax),
        "tax_label": f"VAT ({totals.rate * 100:.0f}%)" if totals.rate else "Tax (0%)",
        "tax_inclusive": totals.tax_inclusive > 0,
        "total": money(0 if trial_days else totals.total),
        "free": found.free,
        "trial_days": trial_days,
        "after_trial": money(totals.total) if trial_days else "",
        "after_trial_per": f"per {recurring['interval']}" if recurring else "",
        "form": form,
        "extras": extras,
        "promotion_codes": bool(session.get("allow_promotion_codes")),
        "address": checkout_pricing.address_required(session),
        "tax_ids": bool((session.get("tax_id_collection") or {}).get("enabled")),
        "open": session["status"] == "open",
        **_bank_debit_context(session, BankDebitForm()),
    }


@require_http_methods(["GET", "HEAD", "POST"])
def checkout(request: HttpRequest, session_id: str) -> HttpResponse:
    session = _stored_or_404(session_id, "checkout.session")
    if session["status"] == "complete":
        return redirect(actions.success_url(session))
    applying = request.POST.get("action") == "apply"
    form = CardForm(None if applying else (request.POST or None))
    extras = _extras_form(request.POST or None)
    authenticate = False
    found = _quote_of(session, extras)
    if request.method == "POST" and not applying and form.is_valid() and not extras.errors:
        answer = request.POST.get("authenticate")
        try:
            return redirect(
                actions.checkout_pay(
                    session_id=session_id,
                    card_number=form.cleaned_data["card_number"],
                    authenticated=None if answer is None else answer == "approve",
                    promotion_code=extras.cleaned_data["promotion_code"],
                    country=extras.cleaned_data["country"],
                    tax_id=extras.cleaned_data["tax_id"],
                )
            )
        except collection.AuthenticationRequired:
            authenticate = True  # 3-D Secure: the bank's step, then pay or not
        except discounts.PromotionRefused as exc:
            extras.add_error("promotion_code", str(exc))
        except invoices.PaymentError as exc:
            if "billing address" in str(exc):
                extras.add_error("country", str(exc))
            else:
                form.add_error("card_number", str(exc))
    context = {"authenticate": authenticate, **_checkout_context(session, form, extras, found)}
    failed = bool(form.errors or extras.errors)
    return render(request, "sandbox/checkout.html", context, status=400 if failed else 200)


def _bank_debit_context(session: Obj, form: BankDebitForm) -> dict[str, Any]:
    return {
        "bank_form": form,
        # Bacs takes GBP only; the sandbox's bank debit computes no tax (nor codes).
        "bank_debit": session["currency"] == "gbp" and not session["automatic_tax"]["enabled"],
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
        except invoices.PaymentError as exc:
            form.add_error("account_number", str(exc))
    extras = _extras_form()
    context = {
        **_checkout_context(session, CardForm(), extras, _quote_of(session, extras)),
        "bank_form": form,
    }
    return render(request, "sandbox/checkout.html", context, status=400)


def _portal_configuration(portal_session: Obj) -> Obj:
    """The configuration the session was created with (sessions made before the sandbox
    kept configurations fall back to the default, as Stripe's would)."""
    config = store.find(portal_session.get("configuration") or "", "billing_portal.configuration")
    return config or portal_configurations.default()


def _portal_subscriptions(customer_id: str, config: Obj) -> list[dict[str, Any]]:
    allowed = portal_configurations.switchable_prices(config)
    switchable = [
        p
        for p in store.all_of("price")
        if p["id"] in allowed and p["active"] and p.get("recurring")
    ]
    rows = []
    for sub in store.all_of("subscription"):
        if sub["customer"] != customer_id or sub["status"] not in actions.LIVE:
            continue
        item = sub["items"]["data"][0]
        rows.append(
            {
                "sub": sub,
                "cancel_credit": _cancel_credit(sub, config),
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


def _cancel_credit(sub: Obj, config: Obj) -> str:
    """What an immediate cancellation credits for the unused time ("" when it credits
    nothing), shown before the customer clicks, as Stripe's portal shows it."""
    cancel = config["features"]["subscription_cancel"]
    if cancel["mode"] != "immediately" or cancel["proration_behavior"] != "create_prorations":
        return ""
    items = sub["items"]["data"]
    unused = {item["id"]: (item["price"], item["quantity"]) for item in items}
    credit = -sum(
        ii["amount"]
        for ii in actions._proration_items(sub, unused, ts=store.now())
        if ii["amount"] < 0
    )
    return objects.format_amount(credit, sub["currency"]) if credit else ""


class PortalRefused(Exception):
    """An action the session's configuration does not offer: nothing is changed."""


def _portal_subscription(portal: Obj, sub_id: str) -> Obj:
    sub = store.find(sub_id, "subscription")
    if sub is None or sub["customer"] != portal["customer"]:
        raise Http404("No such subscription for this customer")
    return sub


def _switch_preview(sub: Obj, price_id: str, config: Obj) -> dict[str, Any]:
    """What a plan switch costs, from the sandbox's own invoice preview (as Stripe's
    portal shows the amount before the customer confirms)."""
    update = config["features"]["subscription_update"]
    proration = update["proration_behavior"]
    item = sub["items"]["data"][0]
    preview = actions.invoice_preview(
        {
            "subscription": sub["id"],
            "subscription_details": {
                "items": [{"id": item["id"], "price": price_id}],
                "proration_behavior": proration,
            },
        }
    )
    price = store.get(price_id, "price")
    return {
        "sub": sub,
        "price_id": price_id,
        "line": _line_view(price, item["quantity"]),
        "charged_now": proration == "always_invoice",
        "amount": objects.format_amount(preview["amount_due"], preview["currency"]),
        "next_date": store.ts_datetime(item["current_period_end"]),
    }


def _portal_act(portal: Obj, config: Obj, data: PortalActionForm) -> dict[str, Any] | None:
    """Carry out the customer's action as the configuration allows it; a switch is only
    previewed until confirmed (the preview is returned to be shown)."""
    sub = _portal_subscription(portal, data.cleaned_data["subscription"])
    features = config["features"]
    action = data.cleaned_data["action"]
    cancel = features["subscription_cancel"]
    if action in ("cancel_now", "cancel_at_period_end"):
        wanted = "immediately" if action == "cancel_now" else "at_period_end"
        if not cancel["enabled"] or cancel["mode"] != wanted:
            raise PortalRefused("This portal does not offer that cancellation.")
        feedback = data.cleaned_data.get("reason") or None
        if feedback and (
            not cancel["cancellation_reason"]["enabled"]
            or feedback not in cancel["cancellation_reason"]["options"]
        ):
            raise PortalRefused("Choose one of the reasons offered.")
        if wanted == "immediately":
            prorate = cancel["proration_behavior"] == "create_prorations"
            actions.subscription_cancel_now(
                sub["id"], invoice_now=prorate, prorate=prorate, feedback=feedback
            )
        else:
            actions.subscription_cancel_at_period_end(sub["id"], feedback=feedback)
        return None
    if action == "renew":
        if not sub["cancel_at_period_end"]:
            raise PortalRefused("This subscription is not set to cancel.")
        actions.subscription_cancel_at_period_end(sub["id"], cancel=False)
        return None
    price_id = data.cleaned_data["price"]
    if price_id not in portal_configurations.switchable_prices(config):
        raise PortalRefused("This portal does not offer plan changes.")
    if action == "switch":
        return _switch_preview(sub, price_id, config)
    item_id = sub["items"]["data"][0]["id"]
    actions.subscription_update(
        sub["id"],
        {
            "items": [{"id": item_id, "price": price_id}],
            "proration_behavior": features["subscription_update"]["proration_behavior"],
        },
    )
    return None


def _card_update(request: HttpRequest, portal_session: Obj) -> bool:
    """The portal's "Update card": the new card becomes the customer's default."""
    form = CardForm(request.POST)
    try:
        if not form.is_valid():
            raise invoices.PaymentError("Enter a card number.")
        card = collection.card_check(form.cleaned_data["card_number"])
        if card == objects.CARD_DECLINED:
            raise invoices.PaymentError("Your card was declined.")
    except invoices.PaymentError as exc:
        messages.error(request, str(exc))
        return False
    collection.customer_card_set(portal_session["customer"], card)
    messages.success(request, f"Card ending {card[-4:]} saved: it pays what is due from now on.")
    return True


def _card_view(customer: Obj) -> str | None:
    card = customer.get("_card")
    return f"Visa ending {card[-4:]}" if card else None


@require_http_methods(["GET", "HEAD", "POST"])
def portal(request: HttpRequest, session_id: str) -> HttpResponse:
    portal_session = _stored_or_404(session_id, "billing_portal.session")
    config = _portal_configuration(portal_session)
    features = config["features"]
    status = 200
    preview = None
    if request.method == "POST" and request.POST.get("action") == "update_card":
        if not features["payment_method_update"]["enabled"]:
            messages.error(request, "This portal does not offer card updates.")
            status = 403
        else:
            _card_update(request, portal_session)
            return redirect(request.path)
    elif request.method == "POST":
        form = PortalActionForm(request.POST)
        if form.is_valid():
            try:
                preview = _portal_act(portal_session, config, form)
                if preview is None:
                    return redirect(portal_session["return_url"])
            except PortalRefused as exc:
                messages.error(request, str(exc))
                status = 403
            except StripeError as exc:
                messages.error(request, exc.message)
        else:
            messages.error(request, "Choose an action (and a plan to switch to).")
    customer = store.find(portal_session["customer"], "customer") or {}
    history = features["invoice_history"]["enabled"]
    invoices = [i for i in store.all_of("invoice") if i["customer"] == portal_session["customer"]]
    cancel = features["subscription_cancel"]
    context = {
        "portal": portal_session,
        "features": features,
        "customer": customer,
        "card": _card_view(customer),
        "card_form": CardForm(),
        "rows": _portal_subscriptions(portal_session["customer"], config),
        "cancel_reasons": [
            (reason, REASON_LABELS.get(reason, reason))
            for reason in cancel["cancellation_reason"]["options"]
        ]
        if cancel["cancellation_reason"]["enabled"]
        else [],
        "preview": preview,
        "open_invoices": [_invoice_view(i) for i in invoices if i["status"] == "open"]
        if history
        else [],
        "past_invoices": [_invoice_view(i) for i in invoices if i["status"] == "paid"]
        if history
        else [],
    }
    return render(request, "sandbox/portal.html", context, status=status)


# Stripe's portal wording of each cancellation reason.
REASON_LABELS = {
    "customer_service": "Customer service was less than expected",
    "low_quality": "Quality was less than expected",
    "missing_features": "Some features are missing",
    "other": "Other reason",
    "switched_service": "I'm switching to a different service",
    "too_complex": "Ease of use was less than expected",
    "too_expensive": "It's too expensive",
    "unused": "I don't use the service enough",
}


# --- The hosted invoice page ------------------------------------------------------------


def _invoice_view(invoice: Obj) -> dict[str, Any]:
    def money(amount: int) -> str:
        return objects.format_amount(amount, invoice["currency"])

    pi = store.find(invoice.get("_payment_intent") or "", "payment_intent") or {}
    return {
        "invoice": invoice,
        "lines": [
            {
                "description": line["description"],
                "amount": money(line["amount"]),
                "start": store.ts_datetime(line["period"]["start"]),
                "end": store.ts_datetime(line["period"]["end"]),
            }
            for line in invoice["lines"]["data"]
        ],
        "subtotal": money(invoice["subtotal"]),
        "discounts": [
            {"label": _discount_label(d["discount"]), "amount": money(d["amount"])}
            for d in invoice.get("total_discount_amounts") or []
        ],
        "taxes": [
            {
                "label": _tax_label(t, invoice["customer_address"]),
                "amount": money(t["amount"]),
            }
            for t in invoice.get("total_taxes") or []
        ],
        "total": money(invoice["total"]),
        "amount_due": money(invoice["amount_due"]),
        "amount_remaining": money(invoice["amount_remaining"]),
        "created": store.ts_datetime(invoice["created"]),
        "paid_at": store.ts_datetime(invoice["status_transitions"]["paid_at"]),
        "next_attempt": store.ts_datetime(invoice.get("next_payment_attempt")),
        "needs_authentication": invoice["status"] == "open"
        and pi.get("status") == "requires_action",
        "declined": invoice["status"] == "open" and bool(pi.get("last_payment_error")),
        "url": invoice.get("hosted_invoice_url"),
    }


def _discount_label(discount_id: str) -> str:
    discount = store.find(discount_id, "discount") or {}
    coupon = store.find((discount.get("source") or {}).get("coupon") or "", "coupon")
    promo = store.find(discount.get("promotion_code") or "", "promotion_code")
    if coupon is None:
        return "Discount"
    described = discounts.coupon_describe(coupon)
    return f"{promo['code']}: {described}" if promo else described


def _tax_label(entry: Obj, address: Obj | None) -> str:
    rate = tax.rate_for((address or {}).get("country"))
    label = f"VAT ({rate * 100:.0f}%)" if rate else "Tax (0%)"
    return f"{label} included" if entry["tax_behavior"] == "inclusive" else label


def _invoice_act(request: HttpRequest, invoice: Obj) -> None:
    action = request.POST.get("action")
    if action == "authenticate_fail":
        collection.authentication_fail(invoice["id"])
        messages.error(request, "Authentication failed: the invoice is still unpaid.")
        return
    card = None
    if action == "pay_card":
        form = CardForm(request.POST)
        if not form.is_valid():
            raise invoices.PaymentError("Enter a card number.")
        card = collection.card_check(form.cleaned_data["card_number"])
    outcome = collection.invoice_pay(
        invoice["id"],
        card=card,
        # A card typed in now is being set up (3155 asks for 3-D Secure); the saved one not.
        on_session=card is not None,
        authenticated=action == "authenticate_approve",
    )
    if outcome == collection.PAID:
        messages.success(request, "Payment received: the invoice is paid.")
    elif outcome == collection.FAILED:
        messages.error(request, "Your card was declined.")


@require_http_methods(["GET", "POST"])
def invoice(request: HttpRequest, invoice_id: str) -> HttpResponse:
    stored = _stored_or_404(invoice_id, "invoice")
    if stored["status"] == "draft":
        raise Http404("This invoice is not finalized yet")
    if request.method == "POST":
        try:
            _invoice_act(request, stored)
        except (invoices.PaymentError, StripeError) as exc:
            messages.error(request, getattr(exc, "message", str(exc)))
        return redirect(request.path)
    customer = store.find(stored["customer"], "customer") or {}
    context = {**_invoice_view(stored), "card": _card_view(customer), "form": CardForm()}
    return render(request, "sandbox/invoice.html", context)


def invoice_pdf(request: HttpRequest, invoice_id: str) -> HttpResponse:
    """The printable invoice: an HTML page styled for print (Stripe's is a PDF file)."""
    stored = _stored_or_404(invoice_id, "invoice")
    if stored["status"] == "draft":
        raise Http404("This invoice is not finalized yet")
    return render(request, "sandbox/invoice_pdf.html", _invoice_view(stored))
