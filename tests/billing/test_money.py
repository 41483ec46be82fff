from __future__ import annotations

import pytest

from billing.money import money


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        (4900, "gbp", "£49.00"),
        (123456, "usd", "$1,234.56"),
        (4950, "chf", "49.50 CHF"),
        # Stripe's zero-decimal currencies count whole units, not hundredths.
        (4900, "jpy", "4,900 JPY"),
        (4900, "KRW", "4,900 KRW"),
    ],
)
def test_amounts_in_minor_units_are_shown_in_their_currency(amount, currency, shown):
    assert money(amount, currency) == shown


def test_the_template_filter_is_the_same_function():
    """`{{ amount|money:currency }}` in a template formats as billing.money does."""
    from django.template import Context, Template

    shown = Template("{% load billing %}{{ amount|money:'gbp' }}").render(
        Context({"amount": -2450})
    )
    assert shown == money(-2450, "gbp") == "\u2212£24.50"
