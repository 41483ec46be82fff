from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from billing.dunning import dunning_for


def dunning(request: HttpRequest) -> dict[str, Any]:
    """`dunning` on every page of a signed-in customer whose renewal is failing or waits
    for authentication (billing/dunning.py), for the banner in base.html. Lazy, so a
    response that renders no banner costs no query; otherwise one query for a customer
    paid up, three for one in dunning, and never a Stripe call. Not on the sandbox's
    pages, which stand in for Stripe's hosted ones."""
    match = getattr(request, "resolver_match", None)
    if match is not None and match.app_name == "sandbox":
        return {}
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"dunning": SimpleLazyObject(lambda: dunning_for(user))}
