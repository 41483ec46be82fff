from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import phonenumbers
from django import forms
from django.conf import settings
from django.contrib.auth import forms as auth_forms
from django.contrib.auth.forms import BaseUserCreationForm

from accounts.models import User, normalize_email


def _is_fixed_line(number: phonenumbers.PhoneNumber | str | None) -> bool:
    # Only numbers phonenumbers knows to be landlines: FIXED_LINE_OR_MOBILE (the US,
    # Canada...) and unknown types may well receive SMS.
    return isinstance(number, phonenumbers.PhoneNumber) and (
        phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.FIXED_LINE
    )


class _PhoneConsentMixin:
    """SMS consent only means something with a number to send to."""

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()  # type: ignore[misc]
        if cleaned.get("sms_opt_in") and not cleaned.get("phone"):
            self.add_error("phone", "Add a mobile number to receive SMS.")  # type: ignore[attr-defined]
        if cleaned.get("sms_opt_in") and _is_fixed_line(cleaned.get("phone")):
            self.add_error(  # type: ignore[attr-defined]
                "phone",
                "This is a landline number, which cannot receive SMS. "
                "Enter a mobile number, or untick SMS.",
            )
        return cleaned


class SignupForm(_PhoneConsentMixin, BaseUserCreationForm):
    class Meta:
        model = User
        fields = ("email", "phone", "sms_opt_in")
        labels = {
            "phone": "Mobile number (optional)",
            "sms_opt_in": "Send me SMS about my account (you can turn this off at any time)",
        }
        help_texts = {
            "phone": "We only text you if you tick the box below.",
            "sms_opt_in": "",
        }

    def clean_email(self) -> str:
        email = normalize_email(self.cleaned_data["email"])
        if User.objects.filter(email=email).exists():
            raise forms.ValidationError(
                "An account with this email already exists. Log in or reset your password."
            )
        return email


class ProfileForm(_PhoneConsentMixin, forms.ModelForm):
    """What a customer may change about themselves. Deliberately not `plan`."""

    class Meta:
        model = User
        fields = ("phone", "sms_opt_in")
        labels = SignupForm.Meta.labels
        help_texts = SignupForm.Meta.help_texts


class PasswordResetForm(auth_forms.PasswordResetForm):
    """Django's "forgot password" form, with two differences.

    The link is built from SITE_URL, never from the request: the Host header is the
    client's to choose (any allowed host, any port), and a link to the wrong place
    hands the reset token to whoever runs it. And accounts without a usable password
    get the email too: payers the webhook created and staff added without one set
    their first password this way. The answer is the same whether or not an account
    exists (PasswordResetView redirects to "sent" either way).
    """

    def get_users(self, email: str) -> Iterable[User]:
        # Django skips unusable passwords; is_active still counts. Addresses are stored
        # normalised, so an exact match is the only one (no Unicode case-folding
        # lookalikes reach someone else's account).
        return User.objects.filter(email=normalize_email(email), is_active=True)

    def save(self, **kwargs: Any) -> None:  # type: ignore[override]
        site = urlsplit(settings.SITE_URL)
        kwargs["domain_override"] = site.netloc
        kwargs["use_https"] = site.scheme == "https"
        kwargs["extra_email_context"] = {
            **(kwargs.get("extra_email_context") or {}),
            "site_url": settings.SITE_URL,
        }
        super().save(**kwargs)
