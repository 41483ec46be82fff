"""How django-allauth (sign-up, login, email confirmation and change, password reset)
fits SmartFlow: settings.ACCOUNT_ADAPTER.

- Every email it sends is queued in the outbox and sent by the worker, like every other
  customer email: settings.ACCOUNT_ADAPTER is onboarding.account_mail's subclass of this
  one (the outbox is onboarding's, which accounts does not import).
- Links in those emails start with SITE_URL, never the request's Host header (the
  client's to choose: a link to the wrong host would hand it the token).
- Addresses are normalised the one way accounts.models.normalize_email does, and
  look-alikes refused, wherever allauth cleans one (sign-up, email change, reset, login).
- The client address for rate limits is accounts.ratelimit.client_ip's, which django-axes
  uses too: one setting (AXES_IPWARE_PROXY_COUNT) says how many proxies to trust.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from allauth.account.adapter import DefaultAccountAdapter
from django import forms
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.http import HttpRequest
from django.urls import reverse

from accounts.models import email_lookalike_error, normalize_email
from accounts.ratelimit import client_ip

# Context values allauth fills with absolute links built from the request.
LINK_KEYS = ("activate_url", "password_reset_url", "signup_url")


def site_url(path: str) -> str:
    """`path` (or the path of an absolute URL) on SITE_URL."""
    parts = urlsplit(path)
    return f"{settings.SITE_URL}{parts.path}" + (f"?{parts.query}" if parts.query else "")


class AccountAdapter(DefaultAccountAdapter):
    def clean_email(self, email: str) -> str:
        email = normalize_email(email)
        if error := email_lookalike_error(email):
            raise forms.ValidationError(error)
        cleaned: str = super().clean_email(email)
        return cleaned

    def get_client_ip(self, request: HttpRequest) -> str:
        return client_ip(request) or super().get_client_ip(request)

    def get_reset_password_from_key_url(self, key: str) -> str:
        return site_url(super().get_reset_password_from_key_url(key))

    def get_email_confirmation_url(self, request: HttpRequest, emailconfirmation: Any) -> str:
        return site_url(reverse("account_confirm_email", args=[emailconfirmation.key]))

    def send_notification_mail(
        self,
        template_prefix: str,
        user: AbstractBaseUser,
        context: dict[str, Any] | None = None,
        email: str | None = None,
    ) -> None:
        # The notice is about `user` even when it goes to an address they just left.
        super().send_notification_mail(
            template_prefix, user, {"user": user, **(context or {})}, email
        )
