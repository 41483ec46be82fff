from __future__ import annotations

from django import template

from billing.plans import FEATURE_LABELS, plan_allows
from billing.pricing import plan_rows

register = template.Library()

_SYMBOLS = {"gbp": "£", "usd": "$", "eur": "€"}
# Stripe's zero-decimal currencies: amounts are whole units, not hundredths.
_ZERO_DECIMAL = frozenset(
    {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga"}
    | {"pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"}
)


@register.filter
def has_feature(user, name: str) -> bool:
    """`{% if user|has_feature:"ai_concierge" %}`: the same matrix as the views."""
    return bool(getattr(user, "is_authenticated", False)) and plan_allows(user.plan, name)


@register.filter
def money(amount: int | None, currency: str) -> str:
    """Minor units to a price: 4900, "gbp" -> "£49.00"; 4950, "chf" -> "49.50 CHF";
    4900, "jpy" -> "4,900 JPY"."""
    if amount is None:
        return ""
    zero_decimal = (currency or "").lower() in _ZERO_DECIMAL
    value = f"{amount:,}" if zero_decimal else f"{amount / 100:,.2f}"
    symbol = _SYMBOLS.get((currency or "").lower())
    return f"{symbol}{value}" if symbol else f"{value} {currency.upper()}"


@register.filter
def feature_label(name: str) -> str:
    return FEATURE_LABELS.get(name, name.replace("_", " ").capitalize())


@register.inclusion_tag("billing/_plan_cards.html", takes_context=True)
def plan_cards(context: template.Context) -> dict:
    """The three plans with their synced prices and buy (or sign-up) buttons."""
    return {
        "plans": plan_rows(),
        "user": context.get("user"),
        "csrf_token": context.get("csrf_token"),
    }
