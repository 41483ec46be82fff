"""What the welcome messages say: the plan, what it unlocks, the next steps, links.

Rendered from templates/onboarding/ at send time (so a set-password link is fresh).
Plans are never named here: what a plan unlocks comes from billing.plans.FEATURES.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from allauth.account import app_settings as allauth_settings
from allauth.account.utils import user_pk_to_url_str
from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse

from accounts.models import User
from billing.money import money
from billing.outlook import long_date
from billing.plans import FEATURE_LABELS, FEATURES, PLAN_INFO, Plan, plan_allows
from billing.standing import trial_for

SUBJECT = "Your SmartFlow plan is live"

# The customer's next steps (their wording), each shown when the plan has the feature
# it sets up, in this order, each linking to where it is done here: the feature's entry
# on the dashboard (its `id`, templates/accounts/dashboard.html), or the profile, where
# the mobile number and SMS consent are set.
NEXT_STEPS: list[tuple[str, str]] = [
    ("calendar_sync", "Connect your Google Calendar"),
    ("brand_kit", "Add your brand details (logo, colours)"),
    ("sms_reminders", "Turn on SMS reminders"),
    ("client_import", "(Optional) Import your client list"),
]
_STEP_ON_PROFILE = {"sms_reminders"}


@dataclass(frozen=True)
class Step:
    text: str
    url: str


@dataclass(frozen=True)
class Email:
    subject: str
    text: str
    html: str


def _absolute(path: str) -> str:
    return f"{settings.SITE_URL}{path}"


def date_long(timestamp: int) -> str:
    """A Unix time as the customer reads a date: 1 February 2027 (UTC, Stripe's clock)."""
    day = datetime.fromtimestamp(int(timestamp), tz=UTC)
    return f"{day.day} {day:%B %Y}"


def set_password_url(user: User) -> str:
    """A one-time link to choose a password: allauth's password-reset link, which also
    confirms the address (accounts/receivers.py)."""
    token = allauth_settings.PASSWORD_RESET_TOKEN_GENERATOR().make_token(user)
    path = reverse(
        "account_reset_password_from_key",
        kwargs={"uidb36": user_pk_to_url_str(user), "key": token},
    )
    return _absolute(path)


def _step_url(feature: str) -> str:
    if feature in _STEP_ON_PROFILE:
        return _absolute(reverse("accounts:profile"))
    return _absolute(f"{reverse('accounts:dashboard')}#feature-{feature}")


def welcome_context(*, user: User, plan: str, until: int | None = None) -> dict[str, object]:
    """`until`: the Unix time a staff comp runs to (None: a paid plan, or a comp for good)."""
    return {
        "plan_name": Plan(plan).label,
        "plan_description": PLAN_INFO[plan].description,
        "features": [FEATURE_LABELS[f] for f in FEATURES if plan_allows(plan, f)],
        "steps": [
            Step(text, _step_url(feature))
            for feature, text in NEXT_STEPS
            if plan_allows(plan, feature)
        ],
        "until": date_long(until) if until else "",
        # A free trial under way: when it ends and what Stripe will charge then.
        "trial": _trial_words(user),
        "dashboard_url": _absolute(reverse("accounts:dashboard")),
        # Accounts the webhook made for a payer have no password yet.
        "set_password_url": "" if user.has_usable_password() else set_password_url(user),
    }


def _trial_words(user: User) -> str:
    """ "Your free trial runs until 20 December 2026, then £49.00 is charged to your card"."""
    trial = trial_for(user)
    if trial is None:
        return ""
    words = f"Your free trial runs until {long_date(trial.ends_at)}: nothing is charged before then"
    if trial.amount is not None:
        words += f". Then {money(trial.amount, trial.currency)} is charged to the card you gave us"
    return words + ", unless you cancel first."


def welcome_email_render(*, user: User, plan: str, until: int | None = None) -> Email:
    """The welcome email for `user` on `plan`, as plain text and HTML; `until` is when a
    staff comp ends."""
    context = welcome_context(user=user, plan=plan, until=until)
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
