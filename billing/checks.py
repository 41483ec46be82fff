"""Billing's system checks (registered in BillingConfig.ready())."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core import checks
from django.db import DatabaseError


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


# What a secret key of each mode starts with: a standard (sk_) or a restricted (rk_) key.
_KEY_PREFIXES = {True: ("sk_live_", "rk_live_"), False: ("sk_test_", "rk_test_")}


@checks.register(checks.Tags.security, deploy=True)
def stripe_key_in_deployment(**kwargs: Any) -> list[checks.CheckMessage]:
    """A deployment talks to Stripe: without the key of its mode billing is off (no
    checkout, no webhook processing), which suits a development machine, never a site."""
    if settings.STRIPE_SANDBOX:
        return []  # billing.E001 says what is wrong
    live = settings.STRIPE_LIVE_MODE
    name = "STRIPE_LIVE_SECRET_KEY" if live else "STRIPE_TEST_SECRET_KEY"
    key = settings.STRIPE_LIVE_SECRET_KEY if live else settings.STRIPE_TEST_SECRET_KEY
    if key.startswith(_KEY_PREFIXES[live]):
        return []
    mode = "live" if live else "test"
    problem = (
        f"is not a {mode}-mode secret key: Stripe refuses it, or it works on the other "
        "mode's customers and payments"
        if key
        else "is not set: billing is off, so nobody can pay and Stripe's webhooks are not processed"
    )
    return [
        checks.Error(
            f"{name} {problem} (STRIPE_LIVE_MODE is {'on' if live else 'off'}).",
            hint=f"Set {name} to the {mode}-mode secret key from Stripe's dashboard "
            f"({' or '.join(p + '...' for p in _KEY_PREFIXES[live])}); a live site also "
            "sets STRIPE_LIVE_MODE=true (docs/deploy.md).",
            id="billing.E002",
        )
    ]


@checks.register(checks.Tags.security, checks.Tags.database, deploy=True)
def webhook_secret_in_deployment(
    databases: Sequence[str] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Stripe's events reach the app only through an enabled endpoint with its signing
    secret (stored by `billing_webhook --secret`): without one every webhook is refused
    and no payment changes a plan. The secret is in the database, so this runs with
    `check --deploy --database default` only, as Django runs every database check."""
    if not databases or "default" not in databases:
        return []
    from djstripe.models import WebhookEndpoint

    try:
        signed = WebhookEndpoint.objects.filter(
            status="enabled", secret__startswith="whsec_", livemode=settings.STRIPE_LIVE_MODE
        ).exists()
    except DatabaseError as exc:
        return [
            checks.Error(
                f"The Stripe webhook endpoint could not be read: {exc}",
                hint="Run `manage.py migrate` first.",
                id="billing.E003",
            )
        ]
    if signed:
        return []
    mode = "live" if settings.STRIPE_LIVE_MODE else "test"
    return [
        checks.Error(
            f"No enabled {mode}-mode Stripe webhook endpoint has a signing secret: every "
            "webhook is refused, so no payment, renewal or cancellation reaches the app.",
            hint="Add the endpoint in Stripe's dashboard (Developers, Webhooks) and run "
            "`manage.py billing_webhook --secret whsec_...` with its signing secret "
            "(docs/deploy.md).",
            id="billing.E003",
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
                    id="billing.E004",
                )
            )
    return errors
