from __future__ import annotations

from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        # Registers the system checks, connects the one Stripe webhook receiver (dj-stripe's
        # signals, billing/handlers.py's table) and the receiver of allauth's email
        # changes (tasks).
        from billing import checks, stripe_pace, tasks, webhooks  # noqa: F401

        # Every Stripe request of this process keeps the deployment's rate limit (the
        # sandbox, installed later, wraps itself the same way).
        stripe_pace.install()
