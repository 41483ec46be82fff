"""What the customer messages other than the welcome say (billing.signals.customer_notice
and the plan ending), rendered at send time from templates/onboarding/<template>_*.

A message's `context` holds the facts as billing read them (amounts in minor units with
their currency, Stripe's times as Unix seconds, Stripe's links); this module turns them
into words. Subjects are fixed: staff and customers search their mail for them.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.template.loader import render_to_string
from django.urls import Resolver404, resolve, reverse

from accounts.phone import CODE_LIFETIME
from billing.money import money
from billing.plans import Plan
from onboarding.models import OnboardingMessage
from onboarding.welcome import Email, date_long

Template = OnboardingMessage.Template

SUBJECTS: dict[str, str] = {
    Template.PAYMENT_FAILED: "Your SmartFlow payment failed",
    Template.PAYMENT_ACTION_REQUIRED: "Please confirm your SmartFlow payment",
    Template.PAYMENT_RECOVERED: "Payment received: your SmartFlow plan is active",
    Template.CANCELLATION_SCHEDULED: "Your SmartFlow plan will end on {ends_on}",
    Template.PLAN_ENDED: "Your SmartFlow plan has ended",
    Template.REFUND: "Your SmartFlow refund",
    Template.TRIAL_ENDING: "Your SmartFlow trial ends on {trial_ends_on}",
    Template.DUPLICATE_SUBSCRIPTION: "You were subscribed twice: we cancelled the second",
    Template.BANK_DEBIT_FAILED: "Your SmartFlow bank debit did not go through",
    Template.SUBSCRIPTION_RESUMED: "Your SmartFlow cancellation is undone",
    Template.UPGRADE_DECLINED: "Your SmartFlow upgrade did not go through",
    Template.PLAN_UPGRADED: "You're now on SmartFlow {plan_name}",
    Template.PLAN_DOWNGRADED: "Your SmartFlow plan changed to {plan_name}",
    Template.COMP_GRANTED: "Complimentary SmartFlow {plan_name}",
    Template.COMP_ENDED: "Your complimentary SmartFlow {old_plan_name} has ended",
    Template.PAID_AFTER_END_REFUNDED: "We refunded a payment for a plan that had ended",
}

# The moments worth a text message to customers who opted in: money they must act on,
# and the plan changes that used to be welcomed with one (an upgrade, a comp).
SMS_TEMPLATES = frozenset(
    {
        Template.PAYMENT_FAILED,
        Template.PAYMENT_ACTION_REQUIRED,
        Template.UPGRADE_DECLINED,
        Template.PLAN_UPGRADED,
        Template.COMP_GRANTED,
    }
)


def _absolute(path: str) -> str:
    return f"{settings.SITE_URL}{path}"


def billing_url() -> str:
    """Where the customer manages their card from a link in a message: the billing page
    when the app has one at /billing/, else the dashboard."""
    try:
        resolve("/billing/")
    except Resolver404:
        return _absolute(reverse("accounts:dashboard"))
    return _absolute("/billing/")


def notice_context(message: OnboardingMessage) -> dict[str, Any]:
    """The words and links `message`'s templates show."""
    facts = message.context or {}
    currency = facts.get("currency", "")

    def amount(key: str) -> str:
        value = facts.get(key)
        return money(int(value), currency) if value is not None else ""

    def day(key: str) -> str:
        value = facts.get(key)
        return date_long(int(value)) if value else ""

    plan_after = facts.get("plan_after")
    refunded, paid = facts.get("amount_refunded"), facts.get("charge_amount")
    part = "whole" if refunded == paid else "rest" if facts.get("full") else "part"
    return {
        "plan_name": Plan(message.plan).label,
        "old_plan_name": Plan(facts["old_plan"]).label if facts.get("old_plan") else "",
        "plan_after_name": Plan(plan_after).label if plan_after else "",
        "kept_plan_name": Plan(facts["kept_plan"]).label if facts.get("kept_plan") else "",
        "bought_plan_name": Plan(facts["bought_plan"]).label
        if facts.get("bought_plan") in Plan.values
        else "",
        "amount_due": amount("amount_due"),
        "amount_paid": amount("amount_paid"),
        "amount_refunded": amount("amount_refunded"),
        "charge_amount": amount("charge_amount"),
        "part": part,  # of the payment this refund gives back: whole, the rest, part
        "next_attempt_on": day("next_payment_attempt"),
        "plan_ends_on": day("plan_ends_at"),  # a failed renewal's grace end
        "ended_on": day("ended_at"),  # the plan ended (plan_ended)
        "amount_unpaid": amount("amount_unpaid"),
        "collection_over": bool(facts.get("collection_over")),
        "ends_on": day("ends_at"),
        "subscription_ends_on": day("subscription_ends_at"),
        "trial_ends_on": day("trial_end"),
        "amount": amount("amount"),
        "per": "year" if facts.get("interval") == "year" else "month",
        "reason": facts.get("reason", ""),
        # A change of plan (billing.messages) and a resumed subscription.
        "to_plan_name": Plan(facts["to_plan"]).label if facts.get("to_plan") else "",
        "from_on": day("from"),
        "until_on": day("until"),
        "expires_on": day("expires_at"),
        "renews_on": day("renews_at"),
        "next_amount": amount("next_amount"),
        "next_charge_on": day("next_charge_at"),
        "oneoff": bool(facts.get("oneoff")),
        "charged_nothing": facts.get("amount_paid") == 0,
        "hosted_invoice_url": facts.get("hosted_invoice_url", ""),
        "billing_url": billing_url(),
        "dashboard_url": _absolute(reverse("accounts:dashboard")),
        "pricing_url": _absolute(reverse("billing:pricing")),
    }


def notice_email_render(message: OnboardingMessage) -> Email:
    """The email for a non-welcome `message`, as plain text and HTML."""
    context = notice_context(message)
    name = f"onboarding/{message.template}_email"
    return Email(
        subject=SUBJECTS[message.template].format(**context),
        text=render_to_string(f"{name}.txt", context),
        html=render_to_string(f"{name}.html", context),
    )


def notice_sms_render(message: OnboardingMessage, *, opt_out_notice: bool = False) -> str:
    """The SMS of a notice (SMS_TEMPLATES); with `opt_out_notice` it ends by
    saying how to opt out (the first SMS to a number)."""
    context = notice_context(message) | {"opt_out_notice": opt_out_notice}
    return render_to_string(f"onboarding/{message.template}_sms.txt", context).strip()


def phone_code_sms_render(*, code: str, opt_out_notice: bool = False) -> str:
    """The SMS carrying a code that confirms a mobile number (accounts/phone.py)."""
    minutes = int(CODE_LIFETIME.total_seconds() // 60)
    context = {"code": code, "minutes": minutes, "opt_out_notice": opt_out_notice}
    return render_to_string("onboarding/phone_code_sms.txt", context).strip()


# A change between two plans: the summary names both.
_CHANGE_TEMPLATES = frozenset(
    {Template.PLAN_UPGRADED, Template.PLAN_DOWNGRADED, Template.COMP_GRANTED}
)


def message_summary(message: OnboardingMessage) -> str:
    """One line for staff: what the message said, e.g. "£49.00 due, invoice in_123,
    next retry 4 December 2026" (the admin's list and the user's page)."""
    if message.body_purged_at is not None:
        return f"(words removed by retention on {message.body_purged_at:%Y-%m-%d})"
    facts = message.context or {}
    if message.template == Template.PHONE_CODE:
        return f"code for {facts.get('phone', '')}"  # the code itself is never kept
    if message.template == Template.ACCOUNT:
        # The subject only: the text holds one-time links.
        return str(facts.get("subject", ""))
    if message.template == Template.WELCOME:
        until = facts.get("until")
        return f"{message.get_plan_display()}" + (
            f", comp until {date_long(until)}" if until else ""
        )
    words = notice_context(message)
    parts: list[str] = []
    for key, label in (
        ("amount_due", "due"),
        ("amount_paid", "paid"),
        ("amount_refunded", "refunded"),
    ):
        if words[key]:
            parts.append(f"{words[key]} {label}")
    if message.template in _CHANGE_TEMPLATES:
        parts.append(f"{words['old_plan_name']} to {message.get_plan_display()}")
    elif words["old_plan_name"]:
        parts.append(
            f"{words['old_plan_name']} ended"
            + (f" ({facts['reason']})" if facts.get("reason") else "")
        )
    for key in ("invoice_id", "charge_id"):
        if facts.get(key):
            parts.append(f"{key.split('_')[0]} {facts[key]}")
    if facts.get("attempt_count"):
        parts.append(f"attempt {facts['attempt_count']}")
    if words["next_attempt_on"]:
        parts.append(f"next retry {words['next_attempt_on']}")
    if words["ends_on"]:
        parts.append(f"ends {words['ends_on']}")
    if words["from_on"]:
        parts.append(f"from {words['from_on']}")
    if words["until_on"]:
        parts.append(f"until {words['until_on']}")
    if words["next_amount"]:
        parts.append(f"next {words['next_amount']} on {words['next_charge_on']}")
    if words["renews_on"]:
        parts.append(
            f"renews {words['renews_on']}" + (f" for {words['amount']}" if words["amount"] else "")
        )
    if words["trial_ends_on"]:
        parts.append(f"trial ends {words['trial_ends_on']}, then {words['amount']}/{words['per']}")
    return ", ".join(parts)
