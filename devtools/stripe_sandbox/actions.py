"""What happens at the sandbox's "Stripe": payments, renewals, cancellations, refunds.

Each workflow changes the stored objects and emits the events Stripe would, in one
transaction. Event order (documented in README.md) follows what Stripe sends. What
happens after a payment over time (3-D Secure, dunning, paying open invoices, incomplete
subscriptions, the clock) is in collection.py.
"""

from __future__ import annotations

import copy
import logging
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db import transaction

from devtools.stripe_sandbox import (
    checkout_pricing,
    delivery,
    invoices,
    objects,
    schedules,
    store,
    tax,
)
from devtools.stripe_sandbox.events import changes, event_emit
from devtools.stripe_sandbox.invoices import PaymentError, product_name
from devtools.stripe_sandbox.models import StripeObject
from devtools.stripe_sandbox.objects import CARD_DECLINED, CARD_OK, format_amount
from devtools.stripe_sandbox.store import Obj, StripeError

logger = logging.getLogger(__name__)

RENEWAL_RETRY_SECONDS = 3 * 86400


def success_url(session: Obj) -> str:
    url: str = session["success_url"]
    return url.replace("{CHECKOUT_SESSION_ID}", session["id"])


# --- Customers --------------------------------------------------------------------------


def customer_create(params: Obj) -> Obj:
    customer = store.save(objects.customer(params))
    event_emit("customer.created", customer)
    return customer


def customer_by_email(email: str) -> Obj:
    found = [c for c in store.all_of("customer") if (c.get("email") or "").lower() == email.lower()]
    if not found:
        raise StripeError(f"No sandbox customer with the email {email}", status=404)
    return found[0]


# --- Payments and invoices --------------------------------------------------------------


def _invoice_collect(
    invoice: Obj,
    *,
    customer: Obj,
    card: str,
    succeed: bool,
    description: str,
    payment_method: str | None = None,
) -> tuple[Obj, Obj] | None:
    """Finalize `invoice` and try to collect it: invoice.finalized, the payment's events,
    then invoice.paid + invoice.payment_succeeded or invoice.payment_failed."""
    from devtools.stripe_sandbox import collection

    collection.invoice_finalize(invoice)
    payment = None
    if invoice["amount_due"] > 0:
        payment = invoices.payment_create(
            customer_id=customer["id"],
            amount=invoice["amount_due"],
            currency=invoice["currency"],
            card=card,
            succeed=succeed,
            description=description,
            payment_method=payment_method,
        )
        # What the includable invoice.confirmation_secret reads.
        invoice["_payment_intent"] = payment[0]["id"]
        invoices.payment_emit(*payment)
    invoice["attempted"] = True
    invoice["attempt_count"] += 1
    if payment is None or succeed:
        invoice["status"] = "paid"
        invoice["amount_paid"] = invoice["amount_due"]
        invoice["amount_remaining"] = 0
        invoice["next_payment_attempt"] = None
        invoice["status_transitions"]["paid_at"] = store.now()
        store.save(invoice)
        event_emit("invoice.paid", invoice)
        event_emit("invoice.payment_succeeded", invoice)
    else:
        invoice["next_payment_attempt"] = store.now() + RENEWAL_RETRY_SECONDS
        store.save(invoice)
        event_emit("invoice.payment_failed", invoice)
    return payment


# --- Checkout ---------------------------------------------------------------------------


def checkout_pay(
    *,
    session_id: str,
    card_number: str,
    authenticated: bool | None = None,
    promotion_code: str = "",
    country: str = "",
    tax_id: str = "",
) -> str:
    """Pay checkout session `session_id` with a test card; returns the success URL.

    `promotion_code` (when the session allows codes) and the billing address `country`
    (the tax, with automatic tax on) set the amount (devtools/stripe_sandbox/checkout_pricing.py);
    a code that is refused raises PromotionRefused. A total of 0 (a 100 %-off code)
    completes with `payment_status` `no_payment_required` and charges nothing.

    4242 4242 4242 4242 pays, 4000 0000 0000 0341 pays now but fails at renewal,
    4000 0000 0000 0002 is declined (nothing is created, the session stays open).
    The 3-D Secure cards (3184, 3155) raise AuthenticationRequired until the customer
    approves (`authenticated=True`) or fails (`False`: nothing is created) the step.
    """
    from devtools.stripe_sandbox import collection

    card = collection.card_check(card_number)
    if collection.needs_authentication(card, on_session=True):
        if authenticated is None:
            raise collection.AuthenticationRequired("Your bank asks you to authenticate.")
        if not authenticated:
            raise PaymentError(
                "We are unable to authenticate your payment method. Please choose a "
                "different payment method and try again."
            )
    with transaction.atomic():
        session = store.get(session_id, "checkout.session", lock=True)
        if session["status"] == "complete":
            return success_url(session)  # paid already (a second click): carry on
        if session["status"] != "open" or store.now() > session["expires_at"]:
            raise PaymentError("This checkout session has expired. Start again from the site.")
        if card == CARD_DECLINED:
            raise PaymentError("Your card was declined. (Test card 4000 0000 0000 0002.)")
        if checkout_pricing.address_required(session) and not country:
            raise PaymentError("Enter the country of your billing address.")
        found = checkout_pricing.quote(session, promotion_code=promotion_code, country=country)
        customer = store.find(session["customer"], "customer") if session["customer"] else None
        address = {**objects.EMPTY_ADDRESS, "country": country} if country else None
        if customer is None:
            customer = customer_create({"email": session.get("customer_email")})
            customer["address"] = address
        elif address and session.get("_customer_update", {}).get("address") == "auto":
            customer["address"] = address
        # The card paid with is kept for later payments (the customer's default).
        customer["_card"] = card
        store.save(customer)
        discount: Obj | None = None
        if session["mode"] == "subscription":
            sub, invoice = _checkout_subscription(session, customer, card, found)
            session["subscription"] = sub["id"]
            session["invoice"] = invoice["id"]
        else:
            discount = checkout_pricing.discount_for(session, found, customer)
            checkout_pricing.quote_apply(session, found, discount=discount)
        if session["mode"] != "subscription" and not found.free:
            pi, charge = invoices.payment_create(
                customer_id=customer["id"],
                amount=session["amount_total"],
                currency=session["currency"],
                card=card,
                succeed=True,
                description=", ".join(
                    product_name(li["price"]) for li in session.get("_line_items", [])
                ),
                metadata=session.get("_payment_intent_metadata", {}),
            )
            invoices.payment_emit(pi, charge)
            session["payment_intent"] = pi["id"]
        if (session.get("invoice_creation") or {}).get("enabled"):
            taxed = bool(session["automatic_tax"]["enabled"])
            invoice = checkout_invoice(
                session, customer, discount=discount, taxed=taxed, country=country
            )
            session["invoice"] = invoice["id"]
        session.update(
            status="complete",
            # A trial delays the payment to its end; a 100 %-off code leaves nothing to pay.
            payment_status=(
                "no_payment_required" if session.get("_trial_period_days") or found.free else "paid"
            ),
            customer=customer["id"],
            customer_details={
                "address": address or objects.EMPTY_ADDRESS,
                "business_name": None,
                "email": customer.get("email") or session.get("customer_email"),
                "individual_name": None,
                "name": customer.get("name"),
                "phone": None,
                "tax_exempt": "none",
                "tax_ids": checkout_pricing.tax_ids(session, tax_id, country),
            },
        )
        store.save(session)
        event_emit("checkout.session.completed", session, previous=None)
        logger.info("Stripe sandbox: checkout %s paid (%s)", session_id, session["mode"])
        return success_url(session)


def _checkout_subscription(session: Obj, customer: Obj, card: str, found: Any) -> tuple[Obj, Obj]:
    sub = objects.subscription(
        customer_id=customer["id"],
        currency=session["currency"],
        metadata=session.get("_subscription_metadata", {}),
        card=card,
    )
    # The code's discount and automatic tax go on the subscription: its invoices use them.
    discount = checkout_pricing.subscription_setup(session, found, sub)
    checkout_pricing.quote_apply(session, found, discount=discount)
    # Checkout saves the card as a PaymentMethod attached to the customer and makes it
    # the subscription's default payment method (what its charges name, too).
    pm = store.save(objects.payment_method(card=card, customer_id=customer["id"]))
    event_emit("payment_method.attached", pm)
    sub["default_payment_method"] = pm["id"]
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
    trial_days = session.get("_trial_period_days")
    if trial_days:
        trial_start(sub, days=trial_days)
    invoices.subscription_save(sub)
    event_emit("customer.subscription.created", sub)

    period = invoices.items_period(sub)
    invoice = invoices.invoice_new(customer, sub, reason="subscription_create", period=period)
    invoice["lines"]["data"] = [
        _trial_line(invoice, sub, item, period)
        if trial_days
        else invoices.item_line(invoice, sub, item, period)
        for item in sub["items"]["data"]
    ]
    # One-time prices bought with the subscription are charged once, on its first invoice.
    for li in session.get("_line_items", []):
        if not li["price"].get("recurring"):
            invoice["lines"]["data"].append(
                objects.invoice_line(
                    invoice_id=invoice["id"],
                    price_obj=li["price"],
                    quantity=li["quantity"],
                    amount=li["amount_total"],
                    period=(period[0], period[0]),
                    subscription_id=None,
                    subscription_item_id=None,
                    description=f"{li['quantity']} × {product_name(li['price'])}",
                )
            )
    invoices.invoice_totals(invoice)
    store.save(invoice)
    event_emit("invoice.created", invoice)
    sub["latest_invoice"] = invoice["id"]
    invoices.subscription_save(sub)
    _invoice_collect(
        invoice,
        customer=customer,
        card=card,
        succeed=True,
        description="Subscription creation",
        payment_method=pm["id"],
    )
    return sub, invoice


def checkout_invoice(
    session: Obj, customer: Obj, *, discount: Obj | None, taxed: bool, country: str
) -> Obj:
    """The paid invoice Checkout makes once a payment-mode session with
    `invoice_creation[enabled]` is paid, as Stripe does: the session's lines, its discount
    and tax (so its total is what was charged), `invoice_data`'s metadata, description
    and footer; invoice.created, invoice.finalized, invoice.paid,
    invoice.payment_succeeded. The caller sets the session's `invoice`."""
    from devtools.stripe_sandbox import collection

    now = store.now()
    invoice = objects.invoice(
        customer_obj=customer,
        currency=session["currency"],
        subscription_obj=None,
        billing_reason="manual",
        period=(now, now),
    )
    store.save(customer)  # its next_invoice_sequence
    data = (session.get("invoice_creation") or {}).get("invoice_data") or {}
    invoice.update(
        metadata=dict(data.get("metadata") or {}),
        description=data.get("description"),
        footer=data.get("footer"),
    )
    invoice["lines"]["data"] = [
        objects.invoice_line(
            invoice_id=invoice["id"],
            price_obj=li["price"],
            quantity=li["quantity"],
            amount=li["amount_subtotal"],
            period=(now, now),
            subscription_id=None,
            subscription_item_id=None,
            description=f"{li['quantity']} × {product_name(li['price'])}",
        )
        for li in session.get("_line_items", [])
    ]
    total = tax.invoice_apply(invoice, checkout=(discount, taxed, country or None)).total
    invoice.update(amount_due=total, amount_remaining=total, starting_balance=0, ending_balance=0)
    store.save(invoice)
    event_emit("invoice.created", invoice)
    collection.invoice_finalize(invoice)
    invoice.update(
        status="paid", attempted=True, amount_paid=total, amount_remaining=0, auto_advance=False
    )
    invoice["_payment_intent"] = session.get("payment_intent")
    invoice["status_transitions"]["paid_at"] = now
    store.save(invoice)
    event_emit("invoice.paid", invoice)
    event_emit("invoice.payment_succeeded", invoice)
    if discount is not None:
        discount["invoice"] = invoice["id"]
        store.save(discount)
    return invoice


def trial_start(sub: Obj, *, days: int) -> None:
    """A subscription that starts with `days` free days, as Stripe makes it from
    `trial_period_days`: `trialing`, trial_start/trial_end, its first period is the trial
    (the items' period ends at trial_end, the billing cycle anchor is trial_end) and the
    first real invoice comes when the clock reaches it (subscription_renew)."""
    start = sub["created"]
    end = start + days * 86400
    sub.update(status="trialing", trial_start=start, trial_end=end, billing_cycle_anchor=end)
    for item in sub["items"]["data"]:
        item["current_period_start"], item["current_period_end"] = start, end


def _trial_line(invoice: Obj, sub: Obj, item: Obj, period: tuple[int, int]) -> Obj:
    """The first invoice of a trial bills the trial itself, at £0 (as Stripe does)."""
    line = invoices.item_line(invoice, sub, item, period)
    line["amount"] = 0
    line["description"] = f"Trial period for {product_name(item['price'])}"
    for key in ("subtotal", "total"):
        if key in line:
            line[key] = 0
    return line


# Stripe sends customer.subscription.trial_will_end three days before a trial ends.
TRIAL_WILL_END_SECONDS = 3 * 86400


def trial_will_end(sub_id: str) -> Obj:
    """customer.subscription.trial_will_end, once per trial, when the clock is three days
    before trial_end (or at once, for a trial shorter than that)."""
    with transaction.atomic():
        sub = store.get(sub_id, "subscription", lock=True)
        if sub["status"] != "trialing" or sub.get("_trial_will_end_sent") == sub["trial_end"]:
            return sub
        sub["_trial_will_end_sent"] = sub["trial_end"]
        store.save(sub)
        event_emit("customer.subscription.trial_will_end", sub)
        return sub


# --- Subscriptions ----------------------------------------------------------------------

LIVE = {"active", "past_due", "trialing", "unpaid"}


def _live_subscription(sub_id: str) -> Obj:
    sub = store.get(sub_id, "subscription", lock=True)
    if sub["status"] not in LIVE:
        raise StripeError(
            f"The subscription {sub_id} is {sub['status']}: it can no longer be changed.",
            param="subscription",
        )
    return sub


def subscription_renew(
    sub_id: str, *, fail: bool | None = None, finalize_at_once: bool = True
) -> Obj:
    """Start the next period of `sub_id` and invoice it. The payment fails if `fail`, or
    (when None) if the subscription's card is 4000 0000 0000 0341. A subscription set to
    cancel at period end ends instead, as Stripe ends it.

    The clock (`advance`) passes `finalize_at_once=False`: the invoice is a draft for
    Stripe's hour (`automatically_finalizes_at`), then finalized and charged
    (collection.renewal_finalize). Called directly (the `renew`/`fail` commands), the draft
    is finalized and charged at once, as `POST /v1/invoices/{id}/finalize` would."""
    with transaction.atomic():
        sub = _live_subscription(sub_id)
        if sub["cancel_at_period_end"]:
            # Pending prorations are collected at the end of the period (issue 12, #4).
            canceled = subscription_cancel(sub_id)
            if pending_items(sub_id):
                _final_invoice(canceled)
            return canceled
        customer = store.get(sub["customer"], "customer")
        before = copy.deepcopy(sub)
        # A schedule's next phase starts here: its prices are the ones this renewal bills.
        if schedules.phase_transition(sub) == "cancel":
            invoices.subscription_save(sub)
            return subscription_cancel(sub_id)
        for item in sub["items"]["data"]:
            recurring = item["price"]["recurring"]
            item["current_period_start"] = item["current_period_end"]
            item["current_period_end"] = store.month_add(
                item["current_period_start"], recurring["interval"], recurring["interval_count"]
            )
        if sub["status"] == "trialing":
            # The trial is over: the subscription is active and its first real invoice
            # is charged now (a declined card makes it past_due, into dunning).
            sub["status"] = "active"
        period = invoices.items_period(sub)
        invoice = invoices.invoice_new(customer, sub, reason="subscription_cycle", period=period)
        invoice["lines"]["data"] = [
            invoices.item_line(invoice, sub, item, period) for item in sub["items"]["data"]
        ]
        pending_items_bill(invoice, sub)  # pending prorations go on the renewal (issue 12, #4)
        invoices.invoice_totals(invoice)
        sub["latest_invoice"] = invoice["id"]
        invoices.subscription_save(sub)
        event_emit("customer.subscription.updated", sub, previous=changes(before, sub))
        from devtools.stripe_sandbox import collection

        if not finalize_at_once:
            collection.renewal_schedule(invoice)
        store.save(invoice)
        event_emit("invoice.created", invoice)
        if not finalize_at_once:
            return sub
        # Paid, declined (past_due, retried on the clock) or waiting for 3-D Secure.
        collection.renewal_collect(sub, invoice, customer, decline=fail)
        return sub


def subscription_cancel(
    sub_id: str, *, reason: str = "cancellation_requested", feedback: str | None = None
) -> Obj:
    """End `sub_id` now: status canceled, customer.subscription.deleted. `feedback` is the
    reason a customer chose in the portal."""
    with transaction.atomic():
        sub = _live_subscription(sub_id)
        ts = store.now()
        if sub.get("schedule"):
            schedules.schedule_canceled(store.get(sub["schedule"], "subscription_schedule"))
        sub["status"] = "canceled"
        sub["canceled_at"] = sub.get("canceled_at") or ts
        sub["ended_at"] = ts
        sub["cancellation_details"] = {"comment": None, "feedback": feedback, "reason": reason}
        invoices.subscription_save(sub)
        event_emit("customer.subscription.deleted", sub)
        from devtools.stripe_sandbox import collection

        collection.collection_stop(sub["id"])
        return sub


def schedule_cancel(schedule_id: str) -> Obj:
    """POST /v1/subscription_schedules/{id}/cancel: the schedule and its subscription end
    now."""
    with transaction.atomic():
        schedule = schedules.live_schedule(schedule_id)
        sub_id = schedule["subscription"]
        schedules.schedule_canceled(schedule)
        subscription_cancel(sub_id)
        return store.get(schedule_id, "subscription_schedule")


def subscription_cancel_at_period_end(
    sub_id: str, *, cancel: bool = True, feedback: str | None = None
) -> Obj:
    """Set (or undo) cancellation at the end of the current period (`feedback`: the
    reason a customer chose in the portal)."""
    with transaction.atomic():
        sub = _live_subscription(sub_id)
        before = copy.deepcopy(sub)
        sub["cancel_at_period_end"] = cancel
        sub["cancel_at"] = invoices.items_period(sub)[1] if cancel else None
        sub["canceled_at"] = store.now() if cancel else None
        sub["cancellation_details"] = {
            "comment": None,
            "feedback": feedback if cancel else None,
            "reason": "cancellation_requested" if cancel else None,
        }
        if changes(before, sub):
            invoices.subscription_save(sub)
            event_emit("customer.subscription.updated", sub, previous=changes(before, sub))
        return sub


def subscription_update(sub_id: str, params: Obj) -> Obj:
    """POST /v1/subscriptions/{id}: metadata, description, cancel_at_period_end, items,
    with Stripe's `proration_behavior`, `proration_date` and `payment_behavior`."""
    with transaction.atomic():
        sub = _live_subscription(sub_id)
        before = copy.deepcopy(sub)
        if "metadata" in params:
            sub["metadata"] = objects.metadata_merge(sub["metadata"], params["metadata"])
        if "description" in params:
            sub["description"] = params["description"] or None
        if sub.get("schedule") and ("cancel_at_period_end" in params or "cancel_at" in params):
            raise schedules.managed_error(sub)
        if "cancel_at_period_end" in params:
            cancel = str(params["cancel_at_period_end"]).lower() == "true"
            sub["cancel_at_period_end"] = cancel
            sub["cancel_at"] = invoices.items_period(sub)[1] if cancel else None
            sub["canceled_at"] = store.now() if cancel else None
        proration = _proration_behavior(params.get("proration_behavior"))
        payment_behavior = params.get("payment_behavior") or "allow_incomplete"
        if payment_behavior not in PAYMENT_BEHAVIORS:
            raise StripeError(
                f"Invalid payment_behavior: {payment_behavior}", param="payment_behavior"
            )
        ts = _proration_date(sub, params.get("proration_date"), param="proration_date")
        changed = _switch_items(sub, params.get("items") or [])
        if changed and (proration, payment_behavior) == PAY_FIRST:
            return _update_if_paid(sub, before, changed, ts=ts)
        reset = cycle_resets(changed, sub)
        # Computed on the old period, before a new interval resets it.
        prorations = _proration_items(sub, changed, ts=ts) if proration != "none" else []
        if reset:
            cycle_reset(sub)
        if changes(before, sub):
            invoices.subscription_save(sub)
            event_emit("customer.subscription.updated", sub, previous=changes(before, sub))
        for ii in prorations:
            store.save(ii)
            event_emit("invoiceitem.created", ii)
        if reset or (changed and proration == "always_invoice"):
            _proration_invoice(sub, new_period=reset)
        return store.get(sub["id"], "subscription")


def subscription_switch(sub_id: str, *, price_id: str) -> Obj:
    """Move the (first) item of `sub_id` to `price_id`, with a paid proration invoice."""
    sub = store.get(sub_id, "subscription")
    item_id = sub["items"]["data"][0]["id"]
    return subscription_update(
        sub_id,
        {"items": [{"id": item_id, "price": price_id}], "proration_behavior": "always_invoice"},
    )


# What an item was before a change: {item id: (old price, old quantity)}.
Changed = dict[str, tuple[Obj, int]]


def _switch_items(sub: Obj, items: list[Obj]) -> Changed:
    """Apply `items[i][id]` + `items[i][price]`/`[quantity]`; returns the changed items'
    old price and quantity."""
    changed: Changed = {}
    by_id = {item["id"]: item for item in sub["items"]["data"]}
    for index, change in enumerate(items):
        item = by_id.get(change.get("id", ""))
        if item is None:
            raise StripeError(
                f"No such subscription item: '{change.get('id')}'",
                param=f"items[{index}][id]",
                code="resource_missing",
            )
        old = (item["price"], item["quantity"])
        if change.get("price") and change["price"] != item["price"]["id"]:
            price = store.find(change["price"], "price")
            if price is None or not price.get("recurring"):
                raise StripeError(
                    f"No such recurring price: '{change['price']}'",
                    param=f"items[{index}][price]",
                    code="resource_missing",
                )
            if not price["active"]:
                raise StripeError(
                    f"The price {price['id']} is not active.", param=f"items[{index}][price]"
                )
            if price["currency"] != sub["currency"]:
                raise StripeError(
                    "All prices on a subscription must have the same currency.",
                    param=f"items[{index}][price]",
                )
            item["price"] = price
            item["plan"] = objects.plan_of(price)
        if change.get("quantity"):
            item["quantity"] = int(change["quantity"])
        if (item["price"]["id"], item["quantity"]) != (old[0]["id"], old[1]):
            changed[item["id"]] = old
    return changed


def _cycle(price: Obj) -> tuple[str, int]:
    recurring = price.get("recurring") or {}
    return recurring.get("interval") or "", int(recurring.get("interval_count") or 1)


def cycle_resets(changed: Changed, sub: Obj) -> bool:
    """Whether the change moves an item to a price of another billing interval (monthly
    to yearly, say). Stripe then resets the billing cycle anchor to now and invoices at
    once, whatever `proration_behavior` says ("Changing prices", billing periods): the
    unused time is credited and the new price billed for a whole period from now."""
    by_id = {item["id"]: item for item in sub["items"]["data"]}
    return any(
        _cycle(by_id[item_id]["price"]) != _cycle(old_price)
        for item_id, (old_price, _quantity) in changed.items()
        if item_id in by_id
    )


def cycle_reset(sub: Obj, items: list[Obj] | None = None) -> None:
    """Start every item's period now (`items`: those, else the subscription's), at its
    price's interval, and move the billing cycle anchor to now."""
    ts = store.now()
    for item in sub["items"]["data"] if items is None else items:
        interval, count = _cycle(item["price"])
        item["current_period_start"] = ts
        item["current_period_end"] = store.month_add(ts, interval, count)
    if items is None:
        sub["billing_cycle_anchor"] = ts


# --- Prorations -------------------------------------------------------------------------
#
# As Stripe's "Prorations" guide describes them: a change mid-period credits the unused
# time on the old price and charges the remaining time on the new one, "calculated down to
# the second" from the proration date (default: now on the sandbox clock) and the item's
# current period. Each is an invoice item (`proration: true`) of its own, rounded to the
# currency's minor unit on its own (half away from zero). `create_prorations` leaves them
# pending (`invoice: null`) for the next invoice; `always_invoice` bills them at once.

PRORATION_BEHAVIORS = {"create_prorations", "always_invoice", "none"}
PAYMENT_BEHAVIORS = {
    "allow_incomplete",
    "default_incomplete",
    "error_if_incomplete",
    "pending_if_incomplete",
}
# Only an update that invoices now can wait for its payment ("Pending updates").
PAY_FIRST = ("always_invoice", "pending_if_incomplete")
# "Pending updates reference" (Expiration): the trial end or the current period end,
# whichever comes first, but never more than 23 hours after the update call.
PENDING_UPDATE_SECONDS = 23 * 3600


def _proration_behavior(value: str | None) -> str:
    behavior = value or "create_prorations"
    if behavior not in PRORATION_BEHAVIORS:
        raise StripeError(f"Invalid proration_behavior: {behavior}", param="proration_behavior")
    return behavior


def _proration_date(sub: Obj, value: Any, *, param: str) -> int:
    """The moment prorations are computed for: `proration_date` if given (it must fall in
    the current period, as Stripe requires), else now on the sandbox clock."""
    if value in (None, ""):
        return store.now()
    ts = store.integer(value, param)
    start, end = invoices.items_period(sub)
    if not start <= ts <= end:
        raise StripeError(
            "The proration date must be within the subscription's current period.", param=param
        )
    return ts


def prorated(amount: int, *, remaining: int, total: int) -> int:
    """`amount` for `remaining` of `total` seconds, in the minor unit, half away from zero.

    FlowKit £49.00 (4900) with 15 of 30 days left: 2450."""
    if total <= 0:
        return 0
    remaining = max(0, min(remaining, total))
    exact = Decimal(amount) * Decimal(remaining) / Decimal(total)
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _proration_items(sub: Obj, changed: Changed, *, ts: int) -> list[Obj]:
    """The credit and debit invoice items of each changed item, unsaved."""
    made: list[Obj] = []
    when = datetime.fromtimestamp(ts, tz=UTC).strftime("%d %b %Y")
    for item in sub["items"]["data"]:
        if item["id"] not in changed:
            continue
        old_price, old_quantity = changed[item["id"]]
        start, end = item["current_period_start"], item["current_period_end"]
        lines = [(old_price, old_quantity, -1, "Unused time on")]
        # A new interval is billed for a whole new period (cycle_reset), not prorated.
        if _cycle(item["price"]) == _cycle(old_price):
            lines.append((item["price"], item["quantity"], 1, "Remaining time on"))
        for price, quantity, sign, label in lines:
            amount = prorated(
                price["unit_amount"] * quantity, remaining=end - ts, total=end - start
            )
            what = product_name(price) if quantity == 1 else f"{quantity} × {product_name(price)}"
            made.append(
                objects.invoice_item(
                    customer_id=sub["customer"],
                    price_obj=price,
                    quantity=quantity,
                    amount=sign * amount,
                    period=(ts, end),
                    subscription_id=sub["id"],
                    subscription_item_id=item["id"],
                    description=f"{label} {what} after {when}",
                )
            )
    return made


def _proration_items_create(sub: Obj, changed: Changed, *, ts: int) -> list[Obj]:
    made = _proration_items(sub, changed, ts=ts)
    for ii in made:
        store.save(ii)
        event_emit("invoiceitem.created", ii)
    return made


def pending_items(sub_id: str) -> list[Obj]:
    """The subscription's invoice items no invoice has billed yet, oldest first."""
    items = store.select(
        "invoiceitem",
        lambda ii: (
            ii["invoice"] is None
            and ((ii.get("parent") or {}).get("subscription_details") or {}).get("subscription")
            == sub_id
        ),
    )
    return sorted(items, key=lambda ii: (ii["date"], ii["amount"]))


def invoice_item_delete(ii: Obj) -> Obj:
    """DELETE /v1/invoiceitems/{id} of a pending item: it is billed by no invoice."""
    StripeObject.objects.filter(pk=ii["id"]).delete()
    event_emit("invoiceitem.deleted", ii)
    return {"id": ii["id"], "object": "invoiceitem", "deleted": True}


def _invoice_item_line(invoice: Obj, ii: Obj) -> Obj:
    """The line an invoice bills an invoice item with (Stripe's proration lines name the
    subscription item and the invoice item in `parent.subscription_item_details`)."""
    details = ii["parent"]["subscription_details"]
    price = store.find(ii["pricing"]["price_details"]["price"], "price") or {
        "id": ii["pricing"]["price_details"]["price"],
        "currency": ii["currency"],
        "product": ii["pricing"]["price_details"]["product"],
        "unit_amount_decimal": ii["pricing"]["unit_amount_decimal"],
    }
    line = objects.invoice_line(
        invoice_id=invoice["id"],
        price_obj=price,
        quantity=ii["quantity"],
        amount=ii["amount"],
        period=(ii["period"]["start"], ii["period"]["end"]),
        subscription_id=details["subscription"],
        subscription_item_id=details["subscription_item"],
        description=ii["description"],
        proration=ii["proration"],
    )
    line["parent"]["subscription_item_details"]["invoice_item"] = ii["id"]
    line["discountable"] = ii["discountable"]
    line["pricing"]["unit_amount_decimal"] = ii["pricing"]["unit_amount_decimal"]
    return line


def pending_items_bill(invoice: Obj, sub: Obj, *, save: bool = True) -> None:
    """Put the subscription's pending invoice items on `invoice` (before its totals are
    computed); with `save`, they are marked as billed by it."""
    for ii in pending_items(sub["id"]):
        invoice["lines"]["data"].append(_invoice_item_line(invoice, ii))
        if save:
            ii["invoice"] = invoice["id"]
            store.save(ii)


def _proration_invoice(
    sub: Obj,
    *,
    reason: str = "subscription_update",
    past_due_on_failure: bool = True,
    new_period: bool = False,
    items: list[Obj] | None = None,
) -> Obj:
    """Invoice the subscription's pending prorations now and charge the card on file
    (`always_invoice`). A declined card leaves the invoice open and, as with Stripe's
    default `allow_incomplete`, the subscription `past_due`. With `new_period` (a new
    billing interval reset the cycle), the invoice also bills the period that starts
    now for `items` (else the subscription's)."""
    customer = store.get(sub["customer"], "customer")
    ts = store.now()
    invoice = invoices.invoice_new(customer, sub, reason=reason, period=(ts, ts))
    pending_items_bill(invoice, sub)
    if new_period:
        billed = sub["items"]["data"] if items is None else items
        period = (ts, max(i["current_period_end"] for i in billed))
        invoice["lines"]["data"] += [invoices.item_line(invoice, sub, i, period) for i in billed]
    invoices.invoice_totals(invoice)
    store.save(invoice)
    event_emit("invoice.created", invoice)
    # A plan change is paid now, off-session, with the card on file, as any payment after
    # the card was set up: 0341 (attaches, then every charge fails) and 0002 are declined,
    # 3184 waits for 3-D Secure (invoice.payment_action_required).
    from devtools.stripe_sandbox import collection

    collection.invoice_finalize(invoice)
    collection.invoice_attempt(
        invoice,
        customer=customer,
        card=collection.card_of(customer, sub) or CARD_OK,
        description="Subscription update",
    )
    before = copy.deepcopy(sub)
    sub["latest_invoice"] = invoice["id"]
    if past_due_on_failure and invoice["status"] == "open" and sub["status"] == "active":
        sub["status"] = "past_due"
    invoices.subscription_save(sub)
    if sub["status"] != before["status"]:
        event_emit("customer.subscription.updated", sub, previous=changes(before, sub))
    return invoice


def _update_if_paid(sub: Obj, before: Obj, changed: Changed, *, ts: int) -> Obj:
    """`payment_behavior=pending_if_incomplete` ("Pending updates"): invoice the change now;
    apply it only if that invoice is paid, else keep the old items and record the change
    as `pending_update` (the invoice stays open; paying it applies the update)."""
    reset = cycle_resets(changed, sub)
    _proration_items_create(sub, changed, ts=ts)
    new_items = copy.deepcopy(sub["items"]["data"])
    if reset:
        cycle_reset(sub, new_items)
    sub["items"] = copy.deepcopy(before["items"])
    invoice = _proration_invoice(sub, past_due_on_failure=False, new_period=reset, items=new_items)
    sub = store.get(sub["id"], "subscription")
    if invoice["status"] == "paid":
        sub["items"]["data"] = new_items
        if reset:
            sub["billing_cycle_anchor"] = new_items[0]["current_period_start"]
        invoices.subscription_save(sub)
        event_emit("customer.subscription.updated", sub, previous=changes(before, sub))
        return sub
    end = invoices.items_period(sub)[1]
    sub["pending_update"] = {
        "billing_cycle_anchor": new_items[0]["current_period_start"] if reset else None,
        "expires_at": min(store.now() + PENDING_UPDATE_SECONDS, end, sub.get("trial_end") or end),
        "subscription_items": new_items,
        "trial_end": None,
        "trial_from_plan": None,
    }
    invoices.subscription_save(sub)
    event_emit("customer.subscription.updated", sub, previous=changes(before, sub))
    return sub


def pending_update_settle(invoice: Obj) -> Obj | None:
    """After `invoice` is paid: apply the pending update it was raised for, if any and not
    expired (customer.subscription.updated, customer.subscription.pending_update_applied).
    Whatever pays an open invoice (a retry, the hosted invoice page) calls this."""
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    sub = store.find(details.get("subscription") or "", "subscription")
    if not sub or not sub.get("pending_update") or sub["latest_invoice"] != invoice["id"]:
        return None
    if sub["pending_update"]["expires_at"] < store.now():
        return None
    before = copy.deepcopy(sub)
    sub["items"]["data"] = sub["pending_update"]["subscription_items"]
    if anchor := sub["pending_update"].get("billing_cycle_anchor"):
        sub["billing_cycle_anchor"] = anchor
    sub["pending_update"] = None
    if sub["status"] == "past_due":
        sub["status"] = "active"
    invoices.subscription_save(sub)
    event_emit("customer.subscription.updated", sub, previous=changes(before, sub))
    event_emit("customer.subscription.pending_update_applied", sub)
    return sub


def pending_updates_expire() -> int:
    """Discard every pending update whose `expires_at` has passed on the clock: its invoice
    is voided ("Pending updates reference", Expiration). Returns how many."""
    expired = 0
    for sub in store.all_of("subscription"):
        pending = sub.get("pending_update")
        if not pending or pending["expires_at"] > store.now():
            continue
        with transaction.atomic():
            sub = store.get(sub["id"], "subscription", lock=True)
            invoice = store.find(sub["latest_invoice"] or "", "invoice")
            if invoice and invoice["status"] == "open":
                invoice["status"] = "void"
                invoice["amount_remaining"] = 0
                invoice["next_payment_attempt"] = None
                invoice["status_transitions"]["voided_at"] = store.now()
                store.save(invoice)
                event_emit("invoice.voided", invoice)
            before = copy.deepcopy(sub)
            sub["pending_update"] = None
            invoices.subscription_save(sub)
            event_emit("customer.subscription.updated", sub, previous=changes(before, sub))
            event_emit("customer.subscription.pending_update_expired", sub)
            expired += 1
    return expired


def subscription_cancel_now(
    sub_id: str, *, invoice_now: bool, prorate: bool, feedback: str | None = None
) -> Obj:
    """DELETE /v1/subscriptions/{id} with Stripe's `prorate` and `invoice_now`.

    Per Stripe's API reference ("Cancel a subscription"): `prorate` creates a proration
    invoice item crediting the unused time until the period end; `invoice_now` generates a
    final invoice with the un-invoiced pending prorations (so none stay pending). Without
    `invoice_now` the pending invoice items stay on the customer, uninvoiced.
    """
    with transaction.atomic():
        sub = _live_subscription(sub_id)
        ts = store.now()
        if prorate:
            items = sub["items"]["data"]
            credits: Changed = {item["id"]: (item["price"], item["quantity"]) for item in items}
            for ii in _proration_items(sub, credits, ts=ts):
                if ii["amount"] < 0:  # the credit only: nothing is charged after cancellation
                    store.save(ii)
                    event_emit("invoiceitem.created", ii)
        sub = subscription_cancel(sub_id, feedback=feedback)
        if invoice_now and pending_items(sub_id):
            _final_invoice(sub)
        return store.get(sub_id, "subscription")


def _final_invoice(sub: Obj) -> Obj:
    """The invoice that bills the pending prorations of a subscription that ends. A credit
    larger than the charges leaves `amount_due` 0 and a negative `ending_balance`."""
    return _proration_invoice(sub, reason="subscription_cycle")


def invoice_preview(params: Obj) -> Obj:
    """POST /v1/invoices/create_preview: what Stripe would invoice next for a subscription,
    optionally after `subscription_details[items]` changes, computed without saving or
    charging anything.

    With `proration_behavior=always_invoice` the preview is the invoice the change would
    create now (its prorations); otherwise it is the next renewal invoice, with the pending
    and previewed prorations and the next period at the new prices.
    """
    details = params.get("subscription_details") or {}
    sub_id = params.get("subscription")
    if not sub_id:
        raise StripeError("Missing required param: subscription.", param="subscription")
    # Read afresh from the store, the subscription and customer are the preview's own
    # to change: nothing saves them.
    sub = store.get(sub_id, "subscription", kind="subscription")
    for item in sub["items"]["data"]:
        # A subscription a test stored as API versions before 2025-03-31.basil laid it
        # out (the period on the subscription, none on its items): previewed as today's.
        item.setdefault("current_period_start", sub.get("current_period_start"))
        item.setdefault("current_period_end", sub.get("current_period_end"))
    if params.get("customer") and params["customer"] != sub["customer"]:
        raise StripeError(
            f"The subscription {sub_id} does not belong to {params['customer']}.",
            param="customer",
        )
    proration = _proration_behavior(details.get("proration_behavior"))
    ts = _proration_date(
        sub, details.get("proration_date"), param="subscription_details[proration_date]"
    )
    changed = _switch_items(sub, details.get("items") or [])
    customer = store.get(sub["customer"], "customer")
    previewed = _proration_items(sub, changed, ts=ts) if proration != "none" else []
    reset = cycle_resets(changed, sub)
    if reset:
        # A new interval invoices now (whatever proration_behavior says): the credit,
        # then the new price for a whole period from now.
        cycle_reset(sub)
        proration = "always_invoice"
    if proration == "always_invoice":
        invoice = objects.invoice(
            customer_obj=customer,
            currency=sub["currency"],
            subscription_obj=sub,
            billing_reason="subscription_update",
            period=(ts, ts),
        )
    else:
        start, end = invoices.items_period(sub)
        if not details.get("items"):
            # The renewal bills what a schedule puts in place at the period's end.
            schedules.next_phase_apply(sub, at=end)
        for item in sub["items"]["data"]:
            recurring = item["price"]["recurring"]
            item["current_period_start"] = item["current_period_end"]
            item["current_period_end"] = store.month_add(
                item["current_period_start"], recurring["interval"], recurring["interval_count"]
            )
        invoice = objects.invoice(
            customer_obj=customer,
            currency=sub["currency"],
            subscription_obj=sub,
            billing_reason="upcoming",
            period=(start, end),
        )
    invoice["id"] = store.new_id("upcoming_in")
    invoice["number"] = None
    invoice["lines"]["url"] = f"/v1/invoices/{invoice['id']}/lines"
    pending_items_bill(invoice, sub, save=False)
    for ii in previewed:
        invoice["lines"]["data"].append(_invoice_item_line(invoice, ii))
    if reset:
        period = invoices.items_period(sub)
        for item in sub["items"]["data"]:
            invoice["lines"]["data"].append(invoices.item_line(invoice, sub, item, period))
    if proration != "always_invoice":
        period = invoices.items_period(sub)
        for item in sub["items"]["data"]:
            invoice["lines"]["data"].append(invoices.item_line(invoice, sub, item, period))
        invoice["created"] = invoice["period_end"]
        invoice["next_payment_attempt"] = invoice["period_end"]
    for line in invoice["lines"]["data"]:
        line["invoice"] = invoice["id"]
    # (Older API versions' upcoming invoice carried subscription_proration_date; this
    # version's Invoice has no such field: tests/devtools/stripe_sandbox/test_conformance.py.)
    # The preview changed the subscription's items and periods and the customer's invoice
    # sequence, not what the discount and tax follow (discounts, automatic tax, address).
    invoices.invoice_totals(invoice, known=(sub, customer))
    return invoice


def subscription_latest(customer_id: str, *, live_only: bool = True) -> Obj:
    subs = [
        s
        for s in store.all_of("subscription")
        if s["customer"] == customer_id and (not live_only or s["status"] in LIVE)
    ]
    if not subs:
        raise StripeError(f"The customer {customer_id} has no live subscription.", status=404)
    return subs[0]


# --- Refunds ----------------------------------------------------------------------------


def refund_create(
    *,
    charge_id: str | None = None,
    payment_intent_id: str | None = None,
    amount: int | None = None,
    reason: str | None = None,
    metadata: dict[str, str] | None = None,
) -> Obj:
    """Refund (part of) a charge: refund.created, charge.refunded."""
    with transaction.atomic():
        if payment_intent_id and not charge_id:
            pi = store.get(payment_intent_id, "payment_intent")
            charge_id = pi.get("latest_charge")
            if not charge_id:
                raise StripeError(
                    f"The PaymentIntent {payment_intent_id} has no charge to refund.",
                    param="payment_intent",
                )
        if not charge_id:
            raise StripeError("One of charge or payment_intent is required.", param="charge")
        charge = store.get(charge_id, "charge", lock=True)
        remaining = charge["amount_captured"] - charge["amount_refunded"]
        if remaining <= 0:
            raise StripeError(
                f"Charge {charge_id} has already been refunded.", code="charge_already_refunded"
            )
        amount = remaining if amount is None else amount
        if not 0 < amount <= remaining:
            raise StripeError(
                f"Refund amount ({format_amount(amount, charge['currency'])}) is greater than "
                f"unrefunded amount on charge ({format_amount(remaining, charge['currency'])})",
                param="amount",
            )
        if reason not in (None, "", "duplicate", "fraudulent", "requested_by_customer"):
            raise StripeError(f"Invalid reason: {reason}", param="reason")
        refund = store.save(
            objects.refund(
                charge_obj=charge, amount=amount, reason=reason or None, metadata=metadata or {}
            )
        )
        before = copy.deepcopy(charge)
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount_captured"]
        charge["refunds"]["data"].insert(0, refund)
        store.save(charge)
        event_emit("refund.created", refund)
        event_emit("charge.refunded", charge, previous=changes(before, charge))
        return refund


# --- The clock --------------------------------------------------------------------------


def clock_advance(*, days: int = 0, hours: int = 0) -> Any:
    """Move the sandbox clock on; what falls due on the way happens at its own time
    (renewals, period-end cancellations, retries, expiries: collection.clock_advance)."""
    from devtools.stripe_sandbox import bank_debits, collection

    report = collection.clock_advance(days * 86400 + hours * 3600)
    # Pending updates (payment_behavior=pending_if_incomplete) 23 hours old lapse.
    pending_updates_expire()
    report.settled = bank_debits.settle_due()  # bank debits three days old
    report.retries = delivery.retries_due()  # webhook retries now due
    return report
