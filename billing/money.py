"""Amounts as customers read them: Stripe's minor units in their currency.

A leaf: imports nothing from billing, so that any module (a rule, a message, the
template filter `money` in billing/templatetags/billing.py) can format an amount.
"""

from __future__ import annotations

_SYMBOLS = {"gbp": "£", "usd": "$", "eur": "€"}
# Stripe's zero-decimal currencies: amounts are whole units, not hundredths.
_ZERO_DECIMAL = frozenset(
    {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga"}
    | {"pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"}
)


def money(amount: int | None, currency: str) -> str:
    """Minor units to a price: 4900, "gbp" -> "£49.00"; 4950, "chf" -> "49.50 CHF";
    4900, "jpy" -> "4,900 JPY"."""
    if amount is None:
        return ""
    if amount < 0:  # a credit: "−£24.50", not "£-24.50"
        return "\u2212" + money(-amount, currency)
    zero_decimal = (currency or "").lower() in _ZERO_DECIMAL
    value = f"{amount:,}" if zero_decimal else f"{amount / 100:,.2f}"
    symbol = _SYMBOLS.get((currency or "").lower())
    return f"{symbol}{value}" if symbol else f"{value} {currency.upper()}"
