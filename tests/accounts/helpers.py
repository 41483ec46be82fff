"""Reading what allauth's emails said: they are queued in the outbox and sent by the
worker (accounts/adapter.py), so a test sends what is queued as the worker's task would,
then reads Django's test outbox."""

from __future__ import annotations

import re

from django.core import mail

from onboarding.models import OnboardingMessage
from onboarding.outbox import onboarding_message_send


def emails_sent() -> list[mail.EmailMessage]:
    """Every email sent so far, once the queued ones have been sent."""
    queued = OnboardingMessage.objects.filter(status=OnboardingMessage.Status.QUEUED)
    for pk, attempts in queued.order_by("pk").values_list("pk", "attempts"):
        onboarding_message_send.call(pk, attempts + 1)
    return list(mail.outbox)


def link_in(message: mail.EmailMessage, fragment: str) -> str:
    """The one link in `message` whose URL contains `fragment`."""
    [link] = [url for url in re.findall(r"https?://\S+", str(message.body)) if fragment in url]
    return link
