"""Receivers of django-allauth's signals (connected in AccountsConfig.ready); a changed
address reaching Stripe is billing's (billing/tasks.py)."""

from __future__ import annotations

from typing import Any

from allauth.account.models import EmailAddress
from allauth.account.signals import password_reset
from django.dispatch import receiver
from django.http import HttpRequest

from accounts.models import User
from accounts.views import phone_code_send_told


def user_signed_up_receive(*, request: HttpRequest, user: User, **kwargs: Any) -> None:
    """A number given with SMS consent at signup gets its confirmation code at once
    (connected in AccountsConfig.ready)."""
    if user.phone_awaits_confirmation:
        phone_code_send_told(request, user)


@receiver(password_reset)
def on_password_reset(sender: Any, user: User, **kwargs: Any) -> None:
    """A password set from a reset link proves the address the link was sent to: the
    account's own (a payer's account made at checkout sets its first password so)."""
    address, _ = EmailAddress.objects.get_or_create(
        user=user, email=user.email, defaults={"primary": True}
    )
    if not address.verified:
        address.verified = True
        address.save(update_fields=["verified"])
