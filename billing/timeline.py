"""A customer's payments in time order, for staff (the user page in the admin): invoices,
payment attempts and failures, authentications asked for, refunds, disputes and one-off
purchases.

Read from what dj-stripe has synced (each row's `stripe_data`) and OneOffPurchase, never
from Stripe, so the page costs a few queries and shows what the app acted on. Amounts are
formatted in their currency (billing.templatetags.billing.money), never minor units.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from djstripe.models import Charge, Customer, Dispute, Invoice, PaymentIntent, Refund

from accounts.models import User
from billing.models import OneOffPurchase
from billing.templatetags.billing import money

LIMIT = 200  # per kind: a page for staff, not an export


@dataclass(frozen=True)
class Entry:
    at: datetime
    kind: str  # invoice, payment, failure, authentication, refund, dispute, purchase
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
