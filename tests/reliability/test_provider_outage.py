"""The email provider is down for a while, then recovers: every welcome goes out exactly
once, after the worker's retries, and nobody's plan waits for it or changes because of it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from django.core import mail

from accounts.models import User
from billing.models import PlanChange
from onboarding.models import OnboardingMessage
from tests.onboarding.helpers import retries_come_due, run_worker
from tests.reliability.helpers import checkout_event
from tests.reliability.providers import OutageEmailBackend

# The worker runs in-process and closes its connection between tasks, as in production.
pytestmark = pytest.mark.django_db(transaction=True)

Status = OnboardingMessage.Status
CUSTOMERS = 6


@pytest.fixture
def provider(settings: Any) -> Iterator[type[OutageEmailBackend]]:
    settings.EMAIL_BACKEND = "tests.reliability.providers.OutageEmailBackend"
    settings.ONBOARDING_MAX_ATTEMPTS = 5
    OutageEmailBackend.down, OutageEmailBackend.refused = False, 0
    yield OutageEmailBackend
    OutageEmailBackend.down = False


def test_a_provider_outage_delays_the_welcomes_then_sends_each_exactly_once(
    deliver, fake_stripe, catalog, provider
):
    bought = [checkout_event(fake_stripe, catalog, n) for n in range(CUSTOMERS)]
    provider.down = True

    for _, _, event in bought:
        assert deliver(event).status_code == 200
    # Plans go live at once; the welcomes wait for the provider.
    plans = {user.email: plan for user, plan, _ in bought}
    assert dict(User.objects.filter(email__in=plans).values_list("email", "plan")) == plans

    run_worker()  # every first attempt refused
    for _, _, event in bought:  # Stripe redelivers meanwhile: nothing new is queued
        assert deliver(event).status_code == 200
    assert retries_come_due()
    run_worker()  # every second attempt refused
    assert mail.outbox == []
    assert provider.refused == 2 * CUSTOMERS
    queued = OnboardingMessage.objects.filter(channel="email")
    assert [(m.status, m.attempts) for m in queued] == [(Status.QUEUED, 2)] * CUSTOMERS

    provider.down = False
    assert retries_come_due()
    run_worker()
    retries_come_due()
    run_worker()  # nothing left to send

    sent = Counter(recipient for message in mail.outbox for recipient in message.to)
    assert sent == dict.fromkeys(plans, 1)  # each customer exactly once
    messages = OnboardingMessage.objects.filter(channel="email")
    assert [(m.status, m.attempts, m.last_error) for m in messages] == [
        (Status.SENT, 3, "")
    ] * CUSTOMERS
    # Plans unaffected: as bought, changed once each, by the checkout.
    assert dict(User.objects.filter(email__in=plans).values_list("email", "plan")) == plans
    changes = PlanChange.objects.values_list("user__email", "old_plan", "new_plan", "source")
    assert sorted(changes) == sorted((e, "starter", p, "checkout") for e, p in plans.items())
