from __future__ import annotations

from django.apps import AppConfig


class OnboardingConfig(AppConfig):
    name = "onboarding"
    verbose_name = "Onboarding"

    def ready(self) -> None:
        from anymail.signals import tracking

        from billing.signals import plan_changed
        from onboarding import receivers

        plan_changed.connect(receivers.plan_changed_receive, dispatch_uid="onboarding_welcome")
        tracking.connect(receivers.email_tracking_receive, dispatch_uid="onboarding_tracking")
