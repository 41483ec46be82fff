"""Billing's system checks (registered in BillingConfig.ready())."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks


@checks.register(checks.Tags.security, deploy=True)
def sandbox_off_in_deployment(**kwargs: Any) -> list[checks.CheckMessage]:
    """The offline sandbox must never run where customers can reach it.

    Its checkout page accepts test card 4242 for any plan and its webhooks are real
    plan changes, so with the sandbox on anyone gets any plan for free. Only `--deploy`
    runs this: `make bench` runs the sandbox with DEBUG off on purpose.
    """
    if not settings.STRIPE_SANDBOX:
        return []
    return [
        checks.Error(
            "STRIPE_SANDBOX is on: the offline Stripe sandbox takes the place of Stripe, so "
            "anyone can get any plan with test card 4242 and no payment is ever taken.",
            hint="Unset STRIPE_SANDBOX (or set it to 0) and configure a Stripe key "
            "(STRIPE_LIVE_SECRET_KEY with STRIPE_LIVE_MODE=true, or STRIPE_TEST_SECRET_KEY).",
            id="billing.E001",
        )
    ]


@checks.register(checks.Tags.security, deploy=True)
def webhook_debug_header_off_in_deployment(**kwargs: Any) -> list[checks.CheckMessage]:
    """STRIPE_WEBHOOK_DEBUG_HEADER lets the webhook pass X-Djstripe-Webhook-Secret on to
    dj-stripe, which with DEBUG on takes it in place of the endpoint's secret."""
    if not settings.STRIPE_WEBHOOK_DEBUG_HEADER:
        return []
    return [
        checks.Warning(
            "STRIPE_WEBHOOK_DEBUG_HEADER is on: should DEBUG ever be on too, anyone can sign "
            "Stripe webhook events with a secret of their own (X-Djstripe-Webhook-Secret).",
            hint="Unset STRIPE_WEBHOOK_DEBUG_HEADER; it is for Stripe CLI forwarding on a "
            "development machine only.",
            id="billing.W001",
        )
    ]


@checks.register()
def billing_rate_limits_valid(**kwargs: Any) -> list[checks.CheckMessage]:
    """BILLING_RATE_LIMITS parses, so that no checkout fails on a typo in it."""
    from allauth.core.internal.ratelimit import parse_rates

    errors: list[checks.CheckMessage] = []
    for action in ("checkout", "preview"):
        value = settings.BILLING_RATE_LIMITS.get(action)
        try:
            rates = parse_rates(value)
            valid = isinstance(value, str) and all(rate.per in ("user", "ip") for rate in rates)
        except ValueError:
            valid = False
        if not valid:
            errors.append(
                checks.Error(
                    f"BILLING_RATE_LIMITS[{action!r}] is {value!r}, not a list of rates.",
                    hint='Write rates as "<amount>/<period>/<user or ip>", comma-separated, '
                    'e.g. "10/m/user,60/h/ip" (periods: s, m, h, d).',
                    id="billing.E002",
                )
            )
    return errors
