"""A customer's payments in time order, for staff (the user page in the admin): invoices,
payment attempts and failures, authentications asked for, refunds, disputes and one-off
purchases; and the customer's own requests about their subscription (a cancellation at
the period end, with the reason given, and its withdrawal; a change planned for the
renewal, and its withdrawal), which change no plan when made and so are not in the plan
history.

Read from what dj-stripe has synced (each row's `stripe_data`) and OneOffPurchase, never
from Stripe, so the page costs a few queries and shows what the app acted on. Amounts are
formatted in their currency (billing.money), never minor units.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from djstripe.models import (
    Charge,
    Customer,
    Dispute,
    Event,
    Invoice,
    PaymentIntent,
    Price,
    Refund,
    SubscriptionSchedule,
)

from accounts.models import User
from billing.models import OneOffPurchase
from billing.money import money
from billing.plans import price_plan

LIMIT = 200  # per kind: a page for staff, not an export


@dataclass(frozen=True)
class Entry:
    at: datetime
    # invoice, payment, failure, authentication, refund, dispute, purchase, request
    # (the customer's), subscription (its end)
    kind: str
    what: str
    amount: str
    stripe_id: str
    link: str = ""


def _ts(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), tz=UTC) if value else None


def _id(value: Any) -> str:
    return value.get("id", "") if isinstance(value, dict) else (value or "")


def _money(data: dict[str, Any], key: str = "amount") -> str:
    return money(data.get(key), data.get("currency") or "")


def _words(value: Any) -> str:
    return str(value or "").replace("_", " ")


def _invoice_entries(data: dict[str, Any]) -> list[Entry]:
    number = data.get("number") or data["id"]
    link = data.get("hosted_invoice_url") or ""
    entries = []
    created = _ts(data.get("created"))
    if created:
        reason = _words(data.get("billing_reason"))
        entries.append(
            Entry(
                created,
                "invoice",
                f"Invoice {number} issued" + (f" ({reason})" if reason else ""),
                _money(data, "amount_due"),
                data["id"],
                link,
            )
        )
    transitions = data.get("status_transitions") or {}
    status = data.get("status")
    if status == "paid" and (paid := _ts(transitions.get("paid_at"))):
        entries.append(
            Entry(
                paid,
                "invoice",
                f"Invoice {number} paid",
                _money(data, "amount_paid"),
                data["id"],
                link,
            )
        )
    elif status == "open" and data.get("attempt_count"):
        retry = _ts(data.get("next_payment_attempt"))
        when = _ts(transitions.get("finalized_at")) or created
        if when:
            entries.append(
                Entry(
                    when,
                    "failure",
                    f"Invoice {number} unpaid after {data['attempt_count']} attempt(s); "
                    + (f"next retry {retry:%Y-%m-%d %H:%M} UTC" if retry else "no retry scheduled"),
                    _money(data, "amount_remaining"),
                    data["id"],
                    link,
                )
            )
    elif status in {"void", "uncollectible"}:
        when = _ts(transitions.get("voided_at") or transitions.get("marked_uncollectible_at"))
        if when:
            entries.append(
                Entry(
                    when,
                    "invoice",
                    f"Invoice {number} {status}",
                    _money(data, "amount_remaining"),
                    data["id"],
                    link,
                )
            )
    return entries


def _charge_entry(data: dict[str, Any]) -> Entry | None:
    created = _ts(data.get("created"))
    if not created:
        return None
    card = (data.get("payment_method_details") or {}).get("card") or {}
    card_text = f" ({card.get('brand', 'card')} ···{card['last4']})" if card.get("last4") else ""
    if data.get("status") == "failed":
        why = data.get("failure_message") or (data.get("outcome") or {}).get("seller_message") or ""
        return Entry(
            created,
            "failure",
            f"Payment failed{card_text}" + (f": {why}" if why else ""),
            _money(data),
            data["id"],
        )
    if data.get("status") == "succeeded":
        return Entry(
            created,
            "payment",
            f"Payment succeeded{card_text}",
            _money(data),
            data["id"],
            data.get("receipt_url") or "",
        )
    return Entry(
        created,
        "payment",
        f"Payment {_words(data.get('status'))}{card_text}",
        _money(data),
        data["id"],
    )


def _day(value: Any) -> str:
    when = _ts(value)
    return f"{when:%Y-%m-%d}" if when else "the period end"


def _subscription_entries(event: Event) -> list[Entry]:
    """What a synced subscription event says the customer asked for or got: a
    cancellation requested or withdrawn (`previous_attributes` tells which), an end."""
    data = event.data or {}
    sub = data.get("object") or {}
    previous = data.get("previous_attributes") or {}
    details = sub.get("cancellation_details") or {}
    if event.type == "customer.subscription.deleted":
        reason = _words(details.get("reason"))
        feedback = _words(details.get("feedback"))
        return [
            Entry(
                event.created,
                "subscription",
                f"Subscription {sub.get('id')} ended"
                + (f" ({reason})" if reason else "")
                + (f"; reason given: {feedback}" if feedback else ""),
                "",
                sub.get("id", ""),
            )
        ]
    if "cancel_at_period_end" not in previous and "cancel_at" not in previous:
        return []
    was = bool(previous.get("cancel_at_period_end", sub.get("cancel_at_period_end"))) or bool(
        previous.get("cancel_at", sub.get("cancel_at"))
    )
    now = bool(sub.get("cancel_at_period_end") or sub.get("cancel_at"))
    if now and not was:
        feedback = _words(details.get("feedback"))
        what = f"Cancellation requested: the subscription ends {_day(sub.get('cancel_at'))}" + (
            f"; reason given: {feedback}" if feedback else ""
        )
    elif was and not now:
        what = "Cancellation withdrawn: the subscription renews"
    else:
        return []
    return [Entry(event.created, "request", what, "", sub.get("id", ""))]


def _plan_words(price_id: str) -> str:
    data = Price.objects.filter(id=price_id).values_list("stripe_data", flat=True).first() or {}
    sold = price_plan(price_id=price_id, lookup_key=data.get("lookup_key"))
    return f"{sold[0].label} {sold[1]}" if sold else price_id


def _schedule_entries(data: dict[str, Any]) -> list[Entry]:
    """A change planned for the renewal (the app's downgrade: a schedule whose second
    phase is the new price), and its withdrawal before it took effect."""
    phases = data.get("phases") or []
    created = _ts(data.get("created"))
    if len(phases) < 2 or not created:
        return []
    starts = phases[1].get("start_date")
    items = phases[1].get("items") or []
    target = _plan_words(_id(items[0].get("price"))) if items else "another price"
    entries = [
        Entry(
            created,
            "request",
            f"Change to {target} planned from {_day(starts)}",
            "",
            data.get("id", ""),
        )
    ]
    released = data.get("released_at")
    if released and (not starts or int(released) < int(starts)):
        entries.append(
            Entry(
                _ts(released) or created,
                "request",
                f"Planned change to {target} withdrawn",
                "",
                data.get("id", ""),
            )
        )
    return entries


def _request_entries(customers: list[str]) -> list[Entry]:
    entries: list[Entry] = []
    events = Event.objects.filter(
        type__in=["customer.subscription.updated", "customer.subscription.deleted"],
        data__object__customer__in=customers,
    ).order_by("-created")
    for event in events[:LIMIT]:
        entries += _subscription_entries(event)
    schedules = SubscriptionSchedule.objects.filter(customer__id__in=customers).values_list(
        "stripe_data", flat=True
    )
    for data in schedules[:LIMIT]:
        entries += _schedule_entries(data)
    return entries


def payment_timeline(user: User) -> list[Entry]:
    """`user`'s payment history, oldest first."""
    customers = list(Customer.objects.filter(subscriber=user).values_list("id", flat=True))
    entries: list[Entry] = []
    charge_ids: list[str] = []
    if customers:
        for data in Invoice.objects.filter(customer_id__in=customers).values_list(
            "stripe_data", flat=True
        )[:LIMIT]:
            entries += _invoice_entries(data)
        for data in Charge.objects.filter(customer_id__in=customers).values_list(
            "stripe_data", flat=True
        )[:LIMIT]:
            charge_ids.append(data["id"])
            if entry := _charge_entry(data):
                entries.append(entry)
        intents = PaymentIntent.objects.filter(customer_id__in=customers).values_list(
            "stripe_data", flat=True
        )
        for data in intents[:LIMIT]:
            # Waiting for the customer's bank (3-D Secure): no charge says so.
            if data.get("status") == "requires_action" and (created := _ts(data.get("created"))):
                entries.append(
                    Entry(
                        created,
                        "authentication",
                        "Authentication needed (3-D Secure)",
                        _money(data),
                        data["id"],
                    )
                )
        entries += _request_entries(customers)
    if charge_ids:
        for data in Refund.objects.filter(stripe_data__charge__in=charge_ids).values_list(
            "stripe_data", flat=True
        )[:LIMIT]:
            if created := _ts(data.get("created")):
                reason = _words(data.get("reason"))
                entries.append(
                    Entry(
                        created,
                        "refund",
                        f"Refund {_words(data.get('status'))}" + (f" ({reason})" if reason else ""),
                        _money(data),
                        data["id"],
                    )
                )
        for data in Dispute.objects.filter(stripe_data__charge__in=charge_ids).values_list(
            "stripe_data", flat=True
        )[:LIMIT]:
            if created := _ts(data.get("created")):
                entries.append(
                    Entry(
                        created,
                        "dispute",
                        f"Dispute opened ({_words(data.get('reason'))}): "
                        f"now {_words(data.get('status'))}",
                        _money(data),
                        data["id"],
                    )
                )
    for purchase in OneOffPurchase.objects.filter(user=user)[:LIMIT]:
        amount = money(purchase.amount, purchase.currency)
        entries.append(
            Entry(
                purchase.paid_at,
                "purchase",
                f"One-off {purchase.get_plan_display()} bought",
                amount,
                purchase.payment_intent_id or purchase.checkout_session_id,
            )
        )
        if purchase.refunded_at:
            entries.append(
                Entry(
                    purchase.refunded_at,
                    "refund",
                    f"One-off {purchase.get_plan_display()} refunded: plan withdrawn",
                    amount,
                    purchase.payment_intent_id,
                )
            )
    return sorted(entries, key=lambda e: e.at)
