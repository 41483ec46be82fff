""" "Download my data": everything SmartFlow holds about one customer, as one JSON
document (UK GDPR articles 15 and 20: access and portability).

Read from our own rows and dj-stripe's synced copies of Stripe's objects: no Stripe call,
so the download works while Stripe is down. docs/personal-data.md lists what is in it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from django.utils import timezone
from djstripe.models import Charge, Customer, Invoice, PaymentIntent, Subscription

from accounts.models import User
from billing.models import OneOffPurchase, PlanChange, PlanOverride
from onboarding.models import OnboardingMessage
from onboarding.notices import notice_email_render, notice_sms_render
from onboarding.welcome import SUBJECT as WELCOME_SUBJECT
from onboarding.welcome import welcome_email_render, welcome_sms_render

FORMAT = "smartflow-personal-data/1"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _ts(value: Any) -> str | None:
    return datetime.fromtimestamp(int(value), tz=UTC).isoformat() if value else None


def _id(value: Any) -> str:
    return (value.get("id") or "") if isinstance(value, Mapping) else (value or "")


def personal_data_export(*, user: User) -> dict[str, Any]:
    """The customer's personal data as a JSON-ready dict: profile, consents, plan
    history, Stripe customers, subscriptions, invoices, payments and messages."""
    customers = list(Customer.objects.filter(subscriber=user).order_by("created"))
    return {
        "format": FORMAT,
        "generated_at": timezone.now().isoformat(),
        "profile": {
            "id": user.pk,
            "email": user.email,
            "phone": str(user.phone) if user.phone else "",
            "date_joined": _iso(user.date_joined),
            "last_login": _iso(user.last_login),
            "plan": user.plan,
            "plan_name": user.get_plan_display(),
        },
        "consents": {
            "sms_opt_in": user.sms_opt_in,
            "sms_number": str(user.phone) if user.sms_opt_in and user.phone else "",
        },
        "plan_history": [_plan_change(c) for c in PlanChange.objects.filter(user=user)],
        "complimentary_plans": [
            {
                "plan": o.plan,
                "reason": o.reason,
                "granted_at": _iso(o.created_at),
                "expires_at": _iso(o.expires_at),
                "revoked_at": _iso(o.revoked_at),
            }
            for o in PlanOverride.objects.filter(user=user)
        ],
        "one_off_purchases": [
            {
                "plan": p.plan,
                "amount": p.amount,
                "currency": p.currency,
                "paid_at": _iso(p.paid_at),
                "refunded_at": _iso(p.refunded_at),
                "invoice": p.invoice_id,
            }
            for p in OneOffPurchase.objects.filter(user=user)
        ],
        "stripe_customers": [_customer(c.stripe_data or {}) for c in customers],
        "subscriptions": [
            _subscription(data)
            for data in Subscription.objects.filter(customer__in=customers)
            .order_by("created")
            .values_list("stripe_data", flat=True)
        ],
        "invoices": [
            _invoice(data)
            for data in Invoice.objects.filter(customer__in=customers)
            .order_by("created")
            .values_list("stripe_data", flat=True)
            if data.get("status") != "draft"
        ],
        "payments": [
            _charge(data)
            for data in Charge.objects.filter(customer__in=customers)
            .order_by("created")
            .values_list("stripe_data", flat=True)
        ],
        "payment_intents": [
            _payment_intent(data)
            for data in PaymentIntent.objects.filter(customer__in=customers)
            .order_by("created")
            .values_list("stripe_data", flat=True)
        ],
        "messages": [
            _message(m, user)
            for m in OnboardingMessage.objects.filter(user=user).order_by("created_at", "id")
        ],
    }


def _plan_change(change: PlanChange) -> dict[str, Any]:
    return {
        "at": _iso(change.created_at),
        "from": change.old_plan,
        "to": change.new_plan,
        "source": change.source,
        # Staff are named as staff, not by their own address.
        "by_staff": change.actor_id is not None and change.actor_id != change.user_id,
        "reason": change.reason,
    }


def _customer(data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": data.get("id", ""),
        "email": data.get("email"),
        "name": data.get("name"),
        "phone": data.get("phone"),
        "address": data.get("address"),
        "created": _ts(data.get("created")),
    }


def _subscription(data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": data.get("id", ""),
        "status": data.get("status"),
        "created": _ts(data.get("created")),
        "canceled_at": _ts(data.get("canceled_at")),
        "ended_at": _ts(data.get("ended_at")),
        "prices": [
            _id(item.get("price") or {}) for item in (data.get("items") or {}).get("data") or []
        ],
    }


def _invoice(data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": data.get("id", ""),
        "number": data.get("number"),
        "status": data.get("status"),
        "currency": data.get("currency"),
        "total": data.get("total"),
        "amount_paid": data.get("amount_paid"),
        "amount_due": data.get("amount_due"),
        "created": _ts(data.get("created")),
        "paid_at": _ts((data.get("status_transitions") or {}).get("paid_at")),
        "hosted_invoice_url": data.get("hosted_invoice_url"),
        "invoice_pdf": data.get("invoice_pdf"),
        "customer_name": data.get("customer_name"),
        "customer_email": data.get("customer_email"),
        "customer_address": data.get("customer_address"),
    }


def _charge(data: Mapping[str, Any]) -> dict[str, Any]:
    card = (data.get("payment_method_details") or {}).get("card") or {}
    return {
        "id": data.get("id", ""),
        "amount": data.get("amount"),
        "amount_refunded": data.get("amount_refunded"),
        "currency": data.get("currency"),
        "status": data.get("status"),
        "created": _ts(data.get("created")),
        "description": data.get("description"),
        "card": {"brand": card.get("brand"), "last4": card.get("last4")} if card else None,
        "billing_details": data.get("billing_details"),
        "receipt_url": data.get("receipt_url"),
    }


def _payment_intent(data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": data.get("id", ""),
        "amount": data.get("amount"),
        "currency": data.get("currency"),
        "status": data.get("status"),
        "created": _ts(data.get("created")),
    }


def _message(message: OnboardingMessage, user: User) -> dict[str, Any]:
    subject, body = _message_words(message, user)
    return {
        "channel": message.channel,
        "kind": message.get_template_display(),
        "status": message.status,
        "recipient": message.recipient,
        "created_at": _iso(message.created_at),
        "sent_at": _iso(message.sent_at),
        "subject": subject,
        "body": body,
    }


def _message_words(message: OnboardingMessage, user: User) -> tuple[str, str]:
    """What the message says, rendered again from its stored facts (SmartFlow keeps no
    copy of the text: it is rendered when sent, onboarding/outbox.py)."""
    Template = OnboardingMessage.Template
    if message.body_purged_at is not None or message.template == Template.PHONE_CODE:
        # Words removed by retention; a phone code is never kept anywhere.
        return "", ""
    if message.template == Template.ACCOUNT:
        # Stored rendered, with one-time links (confirm, reset): the subject only.
        return str((message.context or {}).get("subject", "")), ""
    welcome = message.template == Template.WELCOME
    if message.channel == OnboardingMessage.Channel.SMS:
        if welcome:
            return "", welcome_sms_render(plan=message.plan)
        return "", notice_sms_render(message)
    if welcome:
        if not user.has_usable_password():
            # Its text holds a fresh set-password link: never put one in a file.
            return WELCOME_SUBJECT, ""
        until = (message.context or {}).get("until")
        email = welcome_email_render(user=user, plan=message.plan, until=until)
    else:
        email = notice_email_render(message)
    return email.subject, email.text
