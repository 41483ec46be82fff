from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django import template
from django.conf import settings
from typing_extensions import TypeIs

from accounts.models import User
from billing.money import money
from billing.offers import choices_for, trial_days
from billing.outlook import long_date as _long_date
from billing.outlook import outlook_for
from billing.plans import FEATURE_LABELS, plan_allows
from billing.pricing import plan_rows
from billing.pricing import total_vat_words as _total_vat_words
from billing.pricing import vat_words as _vat_words
from billing.standing import access_for, pending_for

register = template.Library()


@register.filter
def has_feature(user: object, name: str) -> bool:
    """`{% if user|has_feature:"ai_concierge" %}`: the same matrix as the views."""
    return _signed_in(user) and plan_allows(user.plan, name)


# `{{ amount|money:currency }}` (billing/money.py).
register.filter("money", money)


@register.simple_tag
def vat_words(price: object) -> str:
    """`{% vat_words price %}` after a price: "+ VAT", "incl. VAT" or nothing
    (billing.pricing.vat_words). `price` is a synced Price or a Stripe Price's JSON."""
    data = getattr(price, "stripe_data", price)
    behavior = data.get("tax_behavior") if isinstance(data, dict) else None
    return _vat_words(tax_behavior=behavior)


@register.simple_tag
def total_vat_words(tax: int | None, currency: str) -> str:
    """`{% total_vat_words quote.tax quote.currency %}` after an amount Stripe charges:
    "incl. £9.80 VAT" or nothing (billing.pricing.total_vat_words)."""
    return _total_vat_words(tax=tax or 0).format(tax=money(tax, currency))


@register.filter
def feature_label(name: str) -> str:
    return FEATURE_LABELS.get(name, name.replace("_", " ").capitalize())


def _signed_in(user: object) -> TypeIs[User]:
    """The context's `user` (absent outside a request) is a signed-in customer."""
    return bool(getattr(user, "is_authenticated", False))


@register.inclusion_tag("billing/_plan_cards.html", takes_context=True)
def plan_cards(context: template.Context) -> dict[str, Any]:
    """The three plans with their synced prices, monthly, yearly and once side by side,
    and, for a signed-in user, a button for each purchase that would raise their plan
    (billing.offers); sign-up buttons for visitors."""
    user = context.get("user")
    if _signed_in(user):
        rows = plan_rows(choices_for(user), trial_days=trial_days(user))
    else:  # a visitor's first subscription would start with the trial
        rows = plan_rows(None, trial_days=max(settings.BILLING_TRIAL_DAYS, 0))
    return {
        "plans": rows,
        "user": user,
        "csrf_token": context.get("csrf_token"),
    }


@register.filter
def long_date(moment: datetime | None) -> str:
    """`{{ invoice.date|long_date }}`: "1 February 2027"."""
    return _long_date(moment) if moment else ""


@register.inclusion_tag("billing/_outlook.html")
def subscription_outlook(user: object) -> dict[str, Any]:
    """What comes next for the user's subscription (billing/outlook.py), in one line."""
    return {"outlook": outlook_for(user) if _signed_in(user) else None}


@register.inclusion_tag("billing/_standing.html")
def account_standing(user: object) -> dict[str, Any]:
    """What the customer holds, why and until when, and what is pending
    (billing/standing.py: `access_for`, `pending_for`): the dashboard and the billing
    page read this one place."""
    if not _signed_in(user):
        return {"access": None, "pending": None}
    return {"access": access_for(user), "pending": pending_for(user)}


@register.filter
def unix_date(value: int | None) -> str:
    """A Unix time from Stripe as "2 December 2026, 14:05 UTC"."""
    if not value:
        return ""
    return datetime.fromtimestamp(int(value), tz=UTC).strftime("%-d %B %Y, %H:%M UTC")
