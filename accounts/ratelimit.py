"""Helpers django-axes calls (see the Back-office block of smartflow/settings.py)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest

from accounts.models import normalize_email


def axes_username(request: HttpRequest, credentials: dict[str, Any] | None) -> str:
    """The username an attempt is counted under: the address as the login matches it."""
    username = (credentials or {}).get("username")
    if username is None:
        username = request.POST.get(settings.AXES_USERNAME_FORM_FIELD, "")
    return normalize_email(str(username or ""))


def client_ip(request: HttpRequest) -> str | None:
    """The client's address behind AXES_IPWARE_PROXY_COUNT trusted proxies.

    Each proxy appends the address it received the request from to X-Forwarded-For, so
    with N proxies the client is the N-th entry from the right; anything further left was
    written by the client and could be forged. Fewer entries than proxies means the
    request did not come through them: use the connecting address.
    """
    remote = request.META.get("REMOTE_ADDR")
    count = settings.AXES_IPWARE_PROXY_COUNT or 0
    if count <= 0:
        return remote
    forwarded = [
        part.strip()
        for part in request.headers.get("x-forwarded-for", "").split(",")
        if part.strip()
    ]
    if len(forwarded) < count:
        return remote
    return forwarded[-count]
