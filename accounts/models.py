from __future__ import annotations

import unicodedata
from typing import Any, ClassVar

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone
from phonenumber_field.modelfields import PhoneNumberField

from billing.plans import Plan, plan_allows


def normalize_email(email: str) -> str:
    """The one stored form of an address: trimmed, NFKC-normalised and case-folded.

    NFKC turns compatibility look-alikes into the letters they stand for (fullwidth
    "ａ" into "a", the long "ſ" into "s"), and case-folding means `Ann@x.com` and
    `ann@x.com` are one account, which is what customers expect even though RFC 5321
    allows otherwise. Letters that merely look like ASCII ones (the dotless "ı", Cyrillic
    "а") survive both: `email_lookalike_error` refuses them where an address is chosen.
    """
    return unicodedata.normalize("NFKC", email.strip()).casefold()


def email_lookalike_error(email: str) -> str:
    """Why `email` (normalised) cannot be an account's address, or "" when it can.

    Only ASCII addresses are accepted: a non-ASCII letter in an address is far more often
    a look-alike of an ASCII one (an "admın@" beside "admin@") than a customer's real
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
        ordering = ["-date_joined"]
        # Back-office abilities beyond Django's add/change/delete/view (see
        # backoffice/admin/users.py).
        permissions = [
            ("resync_billing", "Can resync a user's billing from Stripe"),
            ("export_users", "Can export users to CSV"),
            ("resend_onboarding", "Can send the onboarding messages again"),
        ]
        constraints = [
            # Belt and braces under normalize_email: no two rows differ only in case,
            # even if a row is written without going through the manager.
            models.UniqueConstraint(Lower("email"), name="accounts_user_email_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.email

    @property
    def email_verified(self) -> bool:
        """Whether the account's address is confirmed (allauth's EmailAddress): by its
        link, a password reset from its link, or before confirmations existed (accounts
        migration 0006)."""
        from allauth.account.models import EmailAddress  # allauth's models need ours

        return EmailAddress.objects.filter(user=self, email=self.email, verified=True).exists()

    def has_feature(self, name: str) -> bool:
        """Whether the user's plan includes feature `name` (KeyError if unknown)."""
        return plan_allows(self.plan, name)

    def clean(self) -> None:
        super().clean()
        self.email = normalize_email(self.email)
        if error := email_lookalike_error(self.email):
            raise ValidationError({"email": error})
