"""Receivers of django-allauth's signals, connected in AccountsConfig.ready()."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from accounts.models import User
from accounts.views import phone_code_send_told


def user_signed_up_receive(*, request: HttpRequest, user: User, **kwargs: Any) -> None:
    """A number given with SMS consent at signup gets its confirmation code at once."""
    if user.phone_awaits_confirmation:
        phone_code_send_told(request, user)
