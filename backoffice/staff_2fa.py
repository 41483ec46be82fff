"""Staff two-factor login: who needs a second factor, and what a session still lacks.

Staff can comp plans, process webhooks again and export customers, and superusers see the
Stripe keys, so with STAFF_2FA_REQUIRED on (the default unless DEBUG) a staff account
reaches nothing but the steps below until its session has passed a TOTP code or a
recovery code. django-allauth's mfa app does the factors themselves (its login stage,
enrolment, recovery codes); it leaves "required for these users" to the project, so the
rule is here and backoffice.middleware.Staff2FAMiddleware applies it to every page.
docs/staff-2fa.md is the operator's side.
"""

from __future__ import annotations

from typing import Any

from allauth.account.authentication import get_authentication_records
from allauth.account.internal.flows.login import record_authentication
from allauth.mfa.adapter import DefaultMFAAdapter
from allauth.mfa.models import Authenticator
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import urlencode

ENROL = "mfa_activate_totp"
VERIFY = "mfa_reauthenticate"

# What a staff session without its second factor may still open: enrolment, the code
# prompt, the recovery codes it is shown once enrolled, the password prompt allauth asks
# before enrolment, the link that confirms an address (allauth enrols no account with an
# unconfirmed one), and logging out. Not the email page: a password alone must not
# change the address an account signs in with.
ALLOWED_VIEWS = frozenset(
    {
        "mfa_index",
        "mfa_activate_totp",
        "mfa_reauthenticate",
        "mfa_view_recovery_codes",
        "mfa_download_recovery_codes",
        "account_reauthenticate",
        "account_email_verification_sent",
        "account_confirm_email",
        "account_logout",
        "accounts:logout",
        "admin:logout",
    }
)


def second_factor_required(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Whether this user must sign in with a second factor: every staff account and
    superuser while STAFF_2FA_REQUIRED is on; customers never."""
    return bool(
        settings.STAFF_2FA_REQUIRED
        and user.is_authenticated
        and (getattr(user, "is_staff", False) or getattr(user, "is_superuser", False))
    )


def missing_step(request: HttpRequest) -> str | None:
    """The URL name of the step this session must take before any staff page answers:
    ENROL (the account has no authenticator app yet), VERIFY (it has one, but this
    session signed in without it: by password only, or before 2FA was required), or None.

    A session passes once allauth has recorded an "mfa" authentication in it: its login
    stage or its reauthentication prompt (TOTP or recovery code), or an enrolment
    (`enrolment_counts_as_second_factor`)."""
    user = request.user
    if not second_factor_required(user):
        return None
    records = get_authentication_records(request, user)
    if any(record.get("method") == "mfa" for record in records):
        return None
    has_app = Authenticator.objects.filter(user_id=user.pk, type=Authenticator.Type.TOTP)
    return VERIFY if has_app.exists() else ENROL


def step_redirect(request: HttpRequest, step: str) -> HttpResponseRedirect:
    """To `step`, and back to the page asked for once it is done (allauth's enrolment
    ends on the recovery codes, which link back to the back-office)."""
    if step == ENROL:
        messages.info(
            request,
            "Staff accounts sign in with two factors: set up an authenticator app to "
            "continue. You will be shown recovery codes to keep for a lost device.",
        )
        return HttpResponseRedirect(reverse(ENROL))
    back = request.get_full_path() if request.method == "GET" else reverse("admin:index")
    return HttpResponseRedirect(f"{reverse(VERIFY)}?{urlencode({'next': back})}")


def enrolment_counts_as_second_factor(
    sender: Any, request: HttpRequest | None, user: AbstractBaseUser, **kwargs: Any
) -> None:
    """allauth's `authenticator_added` receiver (BackofficeConfig.ready): enrolling took
    a code from the new app after a fresh password prompt, which is both factors, so the
    session is not asked for another code straight away."""
    authenticator = kwargs.get("authenticator")
    if request is None or authenticator is None or authenticator.type != Authenticator.Type.TOTP:
        return
    record_authentication(request, user, "mfa", id=authenticator.pk, type=authenticator.type)


def staff_2fa_reset(*, user: AbstractBaseUser) -> int:
    """Remove all of `user`'s authenticators (app and recovery codes): for a lost device.
    Their next sign-in is by password, then straight to enrolling a new app. Returns how
    many were removed; running it twice removes nothing the second time."""
    removed: int
    removed, _ = Authenticator.objects.filter(user_id=user.pk).delete()
    return removed


class StaffMFAAdapter(DefaultMFAAdapter):
    """allauth's MFA adapter (MFA_ADAPTER), for staff accounts."""

    def can_delete_authenticator(self, authenticator: Authenticator) -> bool:
        # Staff cannot switch their own app off while it is required; a superuser
        # resets it for them (staff_2fa_reset, or the Authenticator admin).
        if authenticator.type == Authenticator.Type.TOTP:
            return not second_factor_required(authenticator.user)
        return True

    def build_totp_svg(self, url: str) -> str:
        # Inline in the page (templates/mfa/totp/activate_form.html) rather than a data:
        # image, which the Content-Security-Policy (img-src 'self') refuses.
        svg: str = super().build_totp_svg(url)
        return svg[svg.index("<svg") :]
