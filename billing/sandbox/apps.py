from __future__ import annotations

from django.apps import AppConfig


class SandboxConfig(AppConfig):
    name = "billing.sandbox"
    label = "sandbox"
    verbose_name = "Stripe sandbox"
