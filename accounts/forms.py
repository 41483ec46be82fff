from __future__ import annotations

from typing import Any

import phonenumbers
from allauth.account import forms as allauth_forms
from django import forms
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from phonenumber_field.formfields import PhoneNumberField

from accounts.models import User
from accounts.phone import sms_available

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


_PHONE_LABELS = {
    "phone": "Mobile number (optional)",
    "sms_opt_in": "Send me SMS about my account (you can turn this off at any time)",
}
_PHONE_HELP = {"phone": "We only text you if you tick the box below.", "sms_opt_in": ""}


class SignupForm(_PhoneConsentMixin, allauth_forms.SignupForm):
    """allauth's sign-up (email, password twice) with the optional mobile number and SMS
    consent. An address that has an account already gets an email instead, and the page
    says the same as for a new one (ACCOUNT_PREVENT_ENUMERATION)."""

    phone = PhoneNumberField(
        label=_PHONE_LABELS["phone"], help_text=_PHONE_HELP["phone"], required=False
    )
    sms_opt_in = forms.BooleanField(label=_PHONE_LABELS["sms_opt_in"], required=False)

    field_order = ("email", "password1", "password2", "phone", "sms_opt_in")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The words the sign-up page has always used.
        self.fields["email"].label = "Email address"
        self.fields["password2"].label = "Password confirmation"

    def custom_signup(self, request: HttpRequest, user: User) -> None:
        user.phone = self.cleaned_data.get("phone") or ""
        user.sms_opt_in = bool(self.cleaned_data.get("sms_opt_in"))
        user.save(update_fields=["phone", "sms_opt_in"])

    def try_save(self, request: HttpRequest) -> tuple[User | None, HttpResponse | None]:
        try:
            with transaction.atomic():
                saved: tuple[User | None, HttpResponse | None] = super().try_save(request)
                return saved
        except IntegrityError:
            # A simultaneous sign-up took the address after clean_email looked: answer as
            # for any taken address (the owner is told by email).
            if not User.objects.filter(email=self.cleaned_data["email"]).exists():
                raise
            self.account_already_exists = True
            saved = super().try_save(request)
            return saved


class ProfileForm(_PhoneConsentMixin, forms.ModelForm[User]):
    """What a customer may change about themselves. Deliberately not `plan`."""

    class Meta:
        model = User
        fields = ("phone", "sms_opt_in")
        labels = _PHONE_LABELS
        help_texts = _PHONE_HELP


class PhoneCodeForm(forms.Form):
    """The code we texted, to confirm the number on the account (accounts/phone.py)."""

    code = forms.CharField(
        label="Code",
        max_length=12,
        widget=forms.TextInput(
            attrs={"inputmode": "numeric", "autocomplete": "one-time-code", "size": 8}
        ),
    )
