from __future__ import annotations

from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        # Registers the system checks and connects the Stripe webhook receivers
        # (dj-stripe's signals) and the receiver of allauth's email changes (tasks).
        from billing import checks, tasks, webhooks  # noqa: F401
