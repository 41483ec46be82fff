"""An offline stand-in for Stripe's API, installed as stripe-python's HTTP client when
settings.STRIPE_SANDBOX is on. See devtools/stripe_sandbox/README.md."""

from __future__ import annotations

from django.apps import AppConfig
from django.conf import settings


class SandboxConfig(AppConfig):
    name = "devtools.stripe_sandbox"
    # The label it had at the top level: its migrations, tables and "sandbox:" URLs.
    label = "sandbox"
    verbose_name = "Stripe sandbox"

    def ready(self) -> None:
        if not settings.STRIPE_SANDBOX:
            return
        import logging

        from devtools.stripe_sandbox.client import sandbox_install

        sandbox_install()
        # Always said, so that a surprising run can be replayed with the same seed.
        logging.getLogger("devtools.stripe_sandbox").info(
            "Stripe sandbox: webhook delivery %s, seed %s (STRIPE_SANDBOX_SEED=%s replays it)",
            settings.STRIPE_SANDBOX_DELIVERY,
            settings.STRIPE_SANDBOX_SEED,
            settings.STRIPE_SANDBOX_SEED,
        )
