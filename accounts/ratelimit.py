"""Helpers django-axes calls (see the Back-office block of smartflow/settings.py)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest

from accounts.models import normalize_email

# AccessAttempt.username's length: a longer name is cut, not a 500 on PostgreSQL.
_USERNAME_MAX = 255


def axes_username(request: HttpRequest, credentials: dict[str, Any] | None) -> str:
    """The username an attempt is counted under: the address as the login matches it.

    allauth's login authenticates with `email=` and posts the field "login"; the admin's
    login uses `username=` and "username" (AXES_USERNAME_FORM_FIELD and the fields below
    cover both). Cut to what django-axes can store: two over-long names sharing their first
    255 characters share a lockout, which only ever locks out more.
    """
    credentials = credentials or {}
    username = credentials.get("username") or credentials.get("email")
    if username is None:
        username = request.POST.get(settings.AXES_USERNAME_FORM_FIELD) or request.POST.get(
            "username", ""
        )
    return normalize_email(str(username or ""))[:_USERNAME_MAX]


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
