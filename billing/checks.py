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
