"""The back-office's system checks (registered in BackofficeConfig.ready())."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks


@checks.register(checks.Tags.security, deploy=True)
def staff_2fa_required_in_deployment(**kwargs: Any) -> list[checks.CheckMessage]:
    """With DEBUG off, staff sign in with a second factor (backoffice/staff_2fa.py): a
    staff password alone can comp plans, export customers, and for a superuser read the
    Stripe keys."""
    if settings.DEBUG or settings.STAFF_2FA_REQUIRED:
        return []
    return [
        checks.Error(
            "STAFF_2FA_REQUIRED is off with DEBUG off: staff reach the back-office with a "
            "password alone.",
            hint="Remove STAFF_2FA_REQUIRED=false from the environment (it defaults to on "
            "unless DEBUG). docs/staff-2fa.md says how staff enrol.",
            id="backoffice.E001",
        )
    ]
