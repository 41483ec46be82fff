from __future__ import annotations

import unicodedata
from typing import Any, ClassVar

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone
from django_stubs_ext import StrOrPromise
from phonenumber_field.modelfields import PhoneNumberField

from billing.plans import Plan, plan_allows

# An erased account's address is a placeholder in this domain (privacy.erasure): .invalid
# never resolves (RFC 2606), and nothing is sent to it (onboarding.outbox).
ERASED_EMAIL_DOMAIN = "erased.invalid"


def normalize_email(email: str) -> str:
    """The one stored form of an address: trimmed, NFKC-normalised and case-folded.

    NFKC turns compatibility look-alikes into the letters they stand for (fullwidth
    a, U+FF41, into "a"; the long s, U+017F, into "s"), and case-folding means `Ann@x.com`
    and `ann@x.com` are one account, which is what customers expect even though RFC 5321
    allows otherwise. Letters that merely look like ASCII ones (the dotless i, U+0131,
    Cyrillic a, U+0430) survive both: `email_lookalike_error` refuses them where an
    address is chosen.
    """
    return unicodedata.normalize("NFKC", email.strip()).casefold()


def email_lookalike_error(email: str) -> str:
    """Why `email` (normalised) cannot be an account's address, or "" when it can.

    Only ASCII addresses are accepted: a non-ASCII letter in an address is far more often
    a look-alike of an ASCII one ("adm\u0131n@" beside "admin@") than a customer's real
    address, and staff reading a list cannot tell the two apart.
    """
    if email.isascii():
        return ""
    return (
        "Enter the address with plain letters (a-z, 0-9): addresses with accented or "
        "non-Latin characters are not accepted. For an internationalised domain, use its "
        "xn-- form."
    )


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra: Any) -> User:
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=normalize_email(email), **extra)
        user.set_password(password)  # None gives an unusable password
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        if not extra["is_staff"] or not extra["is_superuser"]:
            raise ValueError("A superuser needs is_staff=True and is_superuser=True.")
        return self._create_user(email, password, **extra)

    def get_by_natural_key(self, username: str | None) -> User:
        # Login forms pass what the person typed; match it the way it was stored.
        return self.get(email=normalize_email(username or ""))


class User(AbstractBaseUser, PermissionsMixin):
    """A customer or a member of staff. Logs in with an email address.

    `plan` is written only by billing code (entitlements) and staff tools, never by a
    form a customer can submit. The `billing_status`, `stripe_customer_*` and
    `last_plan_change_at` columns are copies of billing facts kept here so that the
    admin's list, filters and deep pages read one table; `billing.entitlements.
    plan_refresh` is their only writer (and `reconcile_plans` repairs any drift).
    """

    email = models.EmailField("email address", unique=True)
    plan = models.CharField(
        max_length=20, choices=Plan.choices, default=Plan.STARTER, db_index=True
    )
    phone = PhoneNumberField(blank=True, help_text="Mobile number, stored in E.164 form.")
    sms_opt_in = models.BooleanField(
        "SMS consent",
        default=False,
        help_text="The customer agreed to receive SMS from SmartFlow.",
    )
    # The number the customer proved is theirs by entering the code we texted to it
    # (accounts/phone.py). SMS goes only to a confirmed number: a new number on the
    # account is not confirmed until its own code is entered.
    phone_confirmed = PhoneNumberField("confirmed mobile number", blank=True, editable=False)
    phone_confirmed_at = models.DateTimeField(
        "number confirmed", null=True, blank=True, editable=False
    )
    is_staff = models.BooleanField(
        "staff status", default=False, help_text="Can log into the admin site."
    )
    is_active = models.BooleanField("active", default=True)
    date_joined = models.DateTimeField("joined", default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    # Copies written by billing.entitlements.plan_refresh (see the class docstring).
    billing_status = models.CharField(
        max_length=20,
        blank=True,
        default="",
        db_index=True,
        editable=False,
        help_text="Status of the latest Stripe subscription; blank when there is none.",
    )
    stripe_customer_id = models.CharField(
        "Stripe customer id",
        max_length=255,
        blank=True,
        default="",
        db_index=True,
        editable=False,
        help_text="The newest dj-stripe Customer of this user.",
    )
    stripe_customer_livemode = models.BooleanField(null=True, editable=False)
    last_plan_change_at = models.DateTimeField(
        "last plan change", null=True, blank=True, db_index=True, editable=False
    )

    objects = UserManager()

    EMAIL_FIELD = "email"
    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    class Meta:
        ordering: ClassVar[list[str]] = ["-date_joined"]
        # Back-office abilities beyond Django's add/change/delete/view (see
        # backoffice/admin/users.py).
        permissions: ClassVar[list[tuple[str, StrOrPromise]]] = [
            ("resync_billing", "Can resync a user's billing from Stripe"),
            ("export_users", "Can export users to CSV"),
            ("resend_onboarding", "Can send the onboarding messages again"),
        ]
        constraints: ClassVar[list[models.BaseConstraint]] = [
            # Belt and braces under normalize_email: no two rows differ only in case,
            # even if a row is written without going through the manager.
            models.UniqueConstraint(Lower("email"), name="accounts_user_email_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.email

    @property
    def is_erased(self) -> bool:
        """Whether the account's personal data was erased (privacy.erasure)."""
        return self.email.endswith(f"@{ERASED_EMAIL_DOMAIN}")

    @property
    def phone_is_confirmed(self) -> bool:
        """Whether the number on the account is the one the customer confirmed by code."""
        return bool(self.phone) and self.phone == self.phone_confirmed

    @property
    def phone_awaits_confirmation(self) -> bool:
        """A number with SMS consent that no code has confirmed yet: no SMS goes to it,
        and the dashboard and profile ask for the code (accounts/phone.py)."""
        return bool(self.phone) and self.sms_opt_in and not self.phone_is_confirmed

    @property
    def email_verified(self) -> bool:
        """Whether the account's address is confirmed (allauth's EmailAddress): by its
        link, a password reset from its link, or before confirmations existed (accounts
        migration 0006)."""
        from allauth.account.models import EmailAddress  # allauth's models need ours

        return bool(
            EmailAddress.objects.filter(user=self, email=self.email, verified=True).exists()
        )

    def has_feature(self, name: str) -> bool:
        """Whether the user's plan includes feature `name` (KeyError if unknown)."""
        return plan_allows(self.plan, name)

    def clean(self) -> None:
        super().clean()
        self.email = normalize_email(self.email)
        if error := email_lookalike_error(self.email):
            raise ValidationError({"email": error})


class PhoneCode(models.Model):
    """The code texted to confirm a user's mobile number (accounts/phone.py): kept only as
    a keyed hash, for CODE_LIFETIME, and refused after MAX_ATTEMPTS wrong entries.

    Written when the customer asks for a code (`requested_at`, the number) and filled in
    when the worker texts it (`code_hash`, `expires_at`): the code itself exists only in
    the SMS."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="phone_code",
    )
    phone = PhoneNumberField(help_text="The number the code is for.")
    code_hash = models.CharField(max_length=128, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Wrong codes entered.")
    requested_at = models.DateTimeField(default=timezone.now)
    # Codes asked for since `window_started_at`: a day's allowance (accounts/phone.py).
    window_started_at = models.DateTimeField(default=timezone.now)
    sends_in_window = models.PositiveSmallIntegerField(default=0)

    def __str__(self) -> str:
        return f"Code for {self.user_id}"
