from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import phonenumbers
from django import forms
from django.conf import settings
from django.contrib.auth import forms as auth_forms
from django.contrib.auth.forms import BaseUserCreationForm
from django.db import IntegrityError, transaction

from accounts.models import User, normalize_email
from accounts.phone import sms_available

EMAIL_TAKEN = "An account with this email already exists. Log in or reset your password."
SMS_UNAVAILABLE = "SMS is not available on this site at the moment, so we cannot text you."


def _is_fixed_line(number: phonenumbers.PhoneNumber | str | None) -> bool:
    # Only numbers phonenumbers knows to be landlines: FIXED_LINE_OR_MOBILE (the US,
    # Canada...) and unknown types may well receive SMS.
    return isinstance(number, phonenumbers.PhoneNumber) and (
        phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.FIXED_LINE
    )


class _PhoneConsentMixin(forms.BaseForm):
    """SMS consent only means something with a number to send to, and on a site that can
    send SMS (accounts/phone.py); it counts once the number is confirmed by code."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not sms_available() and "sms_opt_in" in self.fields:
            self.fields["sms_opt_in"].help_text = SMS_UNAVAILABLE

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        if cleaned.get("sms_opt_in") and not sms_available():
            self.add_error("sms_opt_in", f"{SMS_UNAVAILABLE} Untick SMS to save.")
        # A number typed but invalid already has its error; this one is for no number.
        phone_invalid = "phone" in self.errors
        if cleaned.get("sms_opt_in") and not cleaned.get("phone") and not phone_invalid:
            self.add_error("phone", "Add a mobile number to receive SMS.")
        if cleaned.get("sms_opt_in") and _is_fixed_line(cleaned.get("phone")):
            self.add_error(
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

    def validate_password_for_user(
        self, user: User, password_field_name: str = "password1"
    ) -> None:
        # Django puts strength errors under the confirmation; they are about the password.
        # django-stubs 6.1.2 leaves SetPasswordMixin (which has it) out of the bases.
        super().validate_password_for_user(  # type: ignore[misc]
            user, password_field_name=password_field_name
        )

    def clean_email(self) -> str:
        email = normalize_email(self.cleaned_data["email"])
        if User.objects.filter(email=email).exists():
            raise forms.ValidationError(EMAIL_TAKEN)
        return email

    def account_create(self) -> User | None:
        """Save the new account, or return None with the "already exists" error on the
        form when a simultaneous signup took the address after `clean_email` looked."""
        try:
            with transaction.atomic():
                return self.save()
        except IntegrityError:
            # The unique constraints on the address caught what the check could not see.
            if not User.objects.filter(email__iexact=self.cleaned_data["email"]).exists():
                raise
            self.add_error("email", EMAIL_TAKEN)
            return None


class ProfileForm(_PhoneConsentMixin, forms.ModelForm):
    """What a customer may change about themselves. Deliberately not `plan`."""

    class Meta:
        model = User
        fields = ("phone", "sms_opt_in")
        labels = SignupForm.Meta.labels
        help_texts = SignupForm.Meta.help_texts


class PhoneCodeForm(forms.Form):
    """The code we texted, to confirm the number on the account (accounts/phone.py)."""

    code = forms.CharField(
        label="Code",
        max_length=12,
        widget=forms.TextInput(
            attrs={"inputmode": "numeric", "autocomplete": "one-time-code", "size": 8}
        ),
    )


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
