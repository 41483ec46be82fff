"""Deployment checks that belong to no one app (registered in SmartFlowConfig.ready()).

The secret key needs none: with DEBUG off the settings refuse a missing or weak one
before any check runs (smartflow/settings.py).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks


@checks.register(checks.Tags.security, deploy=True)
def staff_two_factor_in_deployment(**kwargs: Any) -> list[checks.CheckMessage]:
    """Staff can comp plans, process webhooks again and export customers, and superusers
    see the Stripe keys: with DEBUG off a stolen staff password must not be enough.
    STAFF_2FA_REQUIRED (default: on unless DEBUG) comes with the staff two-factor login;
    unset, as before that exists, two-factor is off and this fails."""
    if settings.DEBUG or getattr(settings, "STAFF_2FA_REQUIRED", False):
        return []
    return [
        checks.Error(
            "Staff two-factor login is off (STAFF_2FA_REQUIRED): a staff password alone "
            "opens the admin, with customers' data, plan overrides and Stripe's keys.",
            hint="Unset STAFF_2FA_REQUIRED (on by default with DEBUG off) or set it to true.",
            id="smartflow.E001",
        )
    ]
