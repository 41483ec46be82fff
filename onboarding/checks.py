"""Onboarding's system checks (registered in OnboardingConfig.ready())."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

# Backends that never deliver: they print, write or keep the message on this machine.
_LOCAL_EMAIL_BACKENDS = {
    "django.core.mail.backends.console.EmailBackend": "prints every email to the log",
    "django.core.mail.backends.filebased.EmailBackend": "writes every email to a file",
    "django.core.mail.backends.locmem.EmailBackend": "keeps every email in memory",
    "django.core.mail.backends.dummy.EmailBackend": "throws every email away",
}


@checks.register(checks.Tags.security, deploy=True)
def email_delivered_in_deployment(**kwargs: Any) -> list[checks.CheckMessage]:
    """With DEBUG off, emails must leave the machine: a password-reset link printed to the
    log lets anyone who reads the logs take over the account."""
    what = _LOCAL_EMAIL_BACKENDS.get(settings.EMAIL_BACKEND)
    if settings.DEBUG or what is None or settings.EMAIL_BACKEND_ALLOW_CONSOLE:
        return []
    return [
        checks.Error(
            f"EMAIL_BACKEND is {settings.EMAIL_BACKEND}, which {what}: customers get no "
            "email, and password-reset links end up wherever that is.",
            hint="Set ANYMAIL_ESP (with ANYMAIL_API_KEY) to send through an email provider, "
            "or EMAIL_BACKEND=django.core.mail.backends.smtp.EmailBackend with EMAIL_HOST. "
            "EMAIL_BACKEND_ALLOW_CONSOLE=true keeps it on purpose (a staging copy).",
            id="onboarding.E001",
        )
    ]


@checks.register(checks.Tags.security, deploy=True)
def errors_reach_people(**kwargs: Any) -> list[checks.CheckMessage]:
    """With DEBUG off, server errors and billing alerts are emailed to ADMINS: with
    nobody there they reach only the log (and Sentry, if SENTRY_DSN is set)."""
    if settings.DEBUG or settings.ADMINS:
        return []
    return [
        checks.Warning(
            "ADMINS is empty: server errors and billing alerts are emailed to nobody"
            + (" (Sentry still gets them)." if settings.SENTRY_DSN else "."),
            hint="Set ADMINS, e.g. ADMINS=Ops <ops@example.com>, and SENTRY_DSN for "
            "Sentry (docs/operations.md).",
            id="onboarding.W001",
        )
    ]
