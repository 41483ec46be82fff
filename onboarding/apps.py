from __future__ import annotations

from django.apps import AppConfig


class OnboardingConfig(AppConfig):
    name = "onboarding"
    verbose_name = "Onboarding"

    def ready(self) -> None:
        from anymail.signals import tracking

        from accounts.phone import phone_code_requested
        from billing.signals import customer_notice, plan_changed
        from onboarding import checks, receivers  # noqa: F401 (checks registers itself)

        plan_changed.connect(receivers.plan_changed_receive, dispatch_uid="onboarding_welcome")
        customer_notice.connect(
            receivers.customer_notice_receive, dispatch_uid="onboarding_customer_notice"
        )
        phone_code_requested.connect(
            receivers.phone_code_receive, dispatch_uid="onboarding_phone_code"
        )
        tracking.connect(receivers.email_tracking_receive, dispatch_uid="onboarding_tracking")
