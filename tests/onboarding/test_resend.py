"""Staff "send again" (onboarding.outbox.onboarding_resend), without the admin around it."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry

from accounts.models import User
from billing.plans import Plan
from onboarding.models import OnboardingMessage
from onboarding.outbox import ResendForbidden, onboarding_resend
from tests.onboarding.helpers import activate

pytestmark = pytest.mark.django_db

Status = OnboardingMessage.Status


def test_staff_without_the_resend_permission_send_nothing_and_leave_no_history(buyer):
    activate(buyer, Plan.FLOWKIT)
    viewer = User.objects.create_user("viewer@smartflowsystems.com", "pw-viewer-123", is_staff=True)
    [email] = OnboardingMessage.objects.filter(channel="email")

    with pytest.raises(ResendForbidden):
        onboarding_resend(actor=viewer, users=[buyer], originals=[email])

    assert OnboardingMessage.objects.count() == 2
    assert not LogEntry.objects.exists()


def test_a_resend_asks_sms_consent_afresh(buyer, staff_user):
    activate(buyer, Plan.FLOWKIT)
    buyer.sms_opt_in = False
    buyer.save()
    sms = OnboardingMessage.objects.get(channel="sms")

    report = onboarding_resend(actor=staff_user, users=[buyer], originals=[sms])

    assert [(m.channel, m.status) for m in report.sent] == [
        ("email", Status.QUEUED),
        ("sms", Status.SKIPPED),
        ("sms", Status.SKIPPED),
    ]
    assert all("opted in" in m.last_error for m in report.sent if m.channel == "sms")


def test_a_message_whose_words_retention_removed_is_not_sent_again(buyer, staff_user):
    from django.contrib.messages import WARNING
    from django.utils import timezone

    activate(buyer, Plan.FLOWKIT)
    email = OnboardingMessage.objects.get(channel="email")
    OnboardingMessage.objects.filter(pk=email.pk).update(
        status=Status.SENT, sent_at=timezone.now(), context={}, body_purged_at=timezone.now()
    )
    email.refresh_from_db()

    report = onboarding_resend(actor=staff_user, originals=[email])

    assert report.sent == []
    assert OnboardingMessage.objects.filter(channel="email").count() == 1
    [_, (level, text)] = report.notices()
    assert level == WARNING
    assert f"message #{email.pk}'s words were removed" in text
