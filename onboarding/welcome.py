"""What the welcome messages say: the plan, what it unlocks, the next steps, links.

Rendered from templates/onboarding/ at send time (so a set-password link is fresh).
Plans are never named here: what a plan unlocks comes from billing.plans.FEATURES.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from accounts.models import User
from billing.plans import FEATURE_LABELS, FEATURES, PLAN_INFO, Plan, plan_allows

SUBJECT = "Your SmartFlow plan is live"

# The customer's next steps (their wording), each shown when the plan has the feature
# it sets up, in this order.
NEXT_STEPS: list[tuple[str, str]] = [
    ("calendar_sync", "Connect your Google Calendar (Settings → Calendar)"),
    ("brand_kit", "Add your brand details (logo, colours)"),
    ("sms_reminders", "Turn on SMS reminders (Settings → Notifications)"),
    ("client_import", "(Optional) Import your client list"),
]


@dataclass(frozen=True)
class Email:
    subject: str
    text: str
    html: str


def _absolute(path: str) -> str:
    return f"{settings.SITE_URL}{path}"


def set_password_url(user: User) -> str:
    """A one-time link to choose a password (Django's password-reset token)."""
    path = reverse(
        "accounts:password_reset_confirm",
        kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
            "token": default_token_generator.make_token(user),
        },
    )
    return _absolute(path)


def welcome_context(*, user: User, plan: str) -> dict[str, object]:
    return {
        "plan_name": Plan(plan).label,
        "plan_description": PLAN_INFO[plan].description,
        "features": [FEATURE_LABELS[f] for f in FEATURES if plan_allows(plan, f)],
        "steps": [text for feature, text in NEXT_STEPS if plan_allows(plan, feature)],
        "dashboard_url": _absolute(reverse("accounts:dashboard")),
        # Accounts the webhook made for a payer have no password yet.
        "set_password_url": "" if user.has_usable_password() else set_password_url(user),
    }


def welcome_email_render(*, user: User, plan: str) -> Email:
    """The welcome email for `user` on `plan`, as plain text and HTML."""
    context = welcome_context(user=user, plan=plan)
    return Email(
        subject=SUBJECT,
        text=render_to_string("onboarding/welcome_email.txt", context),
        html=render_to_string("onboarding/welcome_email.html", context),
    )


def welcome_sms_render(*, plan: str, opt_out_notice: bool = False) -> str:
    """The welcome SMS for `plan`; with `opt_out_notice` (the first SMS to a number, as
    carriers require) it ends by saying how to opt out."""
    context = {"plan_name": Plan(plan).label, "opt_out_notice": opt_out_notice}
    return render_to_string("onboarding/welcome_sms.txt", context).strip()
