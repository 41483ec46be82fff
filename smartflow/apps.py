from __future__ import annotations

from django.apps import AppConfig


class SmartFlowConfig(AppConfig):
    name = "smartflow"
    verbose_name = "SmartFlow"

    def ready(self) -> None:
        from smartflow import checks  # noqa: F401 (registers the deployment checks)
