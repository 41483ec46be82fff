"""django-allauth's emails through the outbox: settings.ACCOUNT_ADAPTER.

accounts.adapter.AccountAdapter fits allauth to SmartFlow (addresses, links, client
address); this subclass sends its emails like every other customer email: rendered when
asked for (their links and codes are only known then), queued in the outbox
(account_email_enqueue) and sent by the worker. A request never waits for the provider,
so a known and an unknown address answer alike, and a provider outage retries instead
of losing the email.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.template.loader import render_to_string

from accounts.adapter import LINK_KEYS, site_url
from accounts.adapter import AccountAdapter as BaseAccountAdapter
from accounts.models import User, normalize_email
from onboarding.outbox import account_email_enqueue


class AccountAdapter(BaseAccountAdapter):
    def send_mail(self, template_prefix: str, email: str, context: dict[str, Any]) -> None:
        """Render the email now (its links and codes are only known here) and queue it."""
        ctx = {"email": email, "site_url": settings.SITE_URL, **context}
        for key in LINK_KEYS:
            if ctx.get(key):
                ctx[key] = site_url(ctx[key])
        ctx.pop("request", None)
        subject = " ".join(
            render_to_string(f"{template_prefix}_subject.txt", ctx).splitlines()
        ).strip()
        text = render_to_string(f"{template_prefix}_message.txt", ctx).strip()
        account_email_enqueue(
            to=email,
            user=_recipient_user(email, ctx.get("user")),
            kind=template_prefix.rsplit("/", 1)[-1],
            subject=self.format_email_subject(subject),
            text=text,
        )


def _recipient_user(email: str, user: AbstractBaseUser | None) -> User | None:
    # The account the email is about; an unknown address has none.
    if isinstance(user, User):
        return user
    return User.objects.filter(email=normalize_email(email)).first()
