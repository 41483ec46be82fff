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
        from stripe_sandbox.client import sandbox_install

        sandbox_install()
