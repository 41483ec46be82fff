"""Receivers of django-allauth's signals (connected in AccountsConfig.ready); a changed
address reaching Stripe is billing's (billing/tasks.py)."""

from __future__ import annotations

from typing import Any

from allauth.account.models import EmailAddress
from allauth.account.signals import password_reset
from django.dispatch import receiver

from accounts.models import User


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
