from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from billing.portal import configuration_sync
from billing.stripe_api import StripeError


class Command(BaseCommand):
    help = (
        "Create the app's Billing Portal configuration in Stripe (or the sandbox) if it is "
        "missing and update it if it differs: card update, invoice history, cancellation "
        "at the period end with a reason, no plan switching. Safe to run twice. --check "
        "only reports."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--check", action="store_true", help="Report, change nothing.")
        parser.add_argument(
            "--sandbox-only",
            action="store_true",
            help="Do nothing unless the offline sandbox is on.",
        )

    def handle(
        self, *args: Any, check: bool = False, sandbox_only: bool = False, **options: Any
    ) -> None:
        if sandbox_only and not settings.STRIPE_SANDBOX:
            self.stdout.write("Stripe sandbox is off: portal configuration left alone.")
            return
        if not settings.BILLING_ENABLED:
            raise CommandError(
                "Stripe is not configured: set STRIPE_TEST_SECRET_KEY or use the sandbox."
            )
        try:
            result = configuration_sync(check=check)
        except StripeError as exc:
            raise CommandError(f"Stripe refused: {exc}") from exc
        self.stdout.write(result.summary())
