"""An offline stand-in for Stripe's API, installed as stripe-python's HTTP client when
settings.STRIPE_SANDBOX is on. See stripe_sandbox/README.md."""

from __future__ import annotations

from django.apps import AppConfig
from django.conf import settings


class SandboxConfig(AppConfig):
    name = "stripe_sandbox"
    label = "sandbox"
    verbose_name = "Stripe sandbox"

    def ready(self) -> None:
        if not settings.STRIPE_SANDBOX:
            return
        import logging

        from stripe_sandbox.client import sandbox_install

        sandbox_install()
        # Always said, so that a surprising run can be replayed with the same seed.
        logging.getLogger("stripe_sandbox").info(
            "Stripe sandbox: webhook delivery %s, seed %s (STRIPE_SANDBOX_SEED=%s replays it)",
            settings.STRIPE_SANDBOX_DELIVERY,
            settings.STRIPE_SANDBOX_SEED,
            settings.STRIPE_SANDBOX_SEED,
        )
