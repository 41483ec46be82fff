from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def sandbox(request: HttpRequest) -> dict[str, bool]:
    """Every page says so when payments are not real."""
    return {"stripe_sandbox": settings.STRIPE_SANDBOX}
