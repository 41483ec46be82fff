"""Every SMS but the confirmation code goes only to a number its owner confirmed by code,
with consent (onboarding/outbox.py: sms_skip_reason)."""

from __future__ import annotations

import pytest

from accounts.models import User
from accounts.phone import phone_confirmation_start
from billing.plans import Plan
from onboarding.models import OnboardingMessage
from onboarding.outbox import customer_notice_enqueue
from tests.onboarding.helpers import activate, run_worker

pytestmark = pytest.mark.django_db(transaction=True)

Status = OnboardingMessage.Status
UNCONFIRMED = "the mobile number is not confirmed yet"


@pytest.fixture
def unconfirmed(db) -> User:
    """Consent and a mobile number, but no code entered."""
    return User.objects.create_user("una@example.com", phone="+447700900777", sms_opt_in=True)


def _sms(user: User, template: str) -> OnboardingMessage:
    return OnboardingMessage.objects.get(user=user, channel="sms", template=template)


def test_the_welcome_sms_waits_for_a_confirmed_number(unconfirmed, twilio):
    activate(unconfirmed, Plan.FLOWKIT)
    run_worker()

    message = _sms(unconfirmed, "welcome")
    assert message.status == Status.SKIPPED
    assert UNCONFIRMED in message.last_error
    assert twilio.requests == []


def test_a_payment_notice_sms_waits_for_a_confirmed_number(unconfirmed, twilio):
    customer_notice_enqueue(
        user=unconfirmed,
        kind="payment_failed",
        key="in_1:1",
        context={"amount_due": 4900, "currency": "gbp"},
    )
    run_worker()

    message = _sms(unconfirmed, "payment_failed")
    assert message.status == Status.SKIPPED
    assert UNCONFIRMED in message.last_error
    assert twilio.requests == []


def test_a_confirmed_number_gets_the_welcome_sms(buyer, twilio):
    activate(buyer, Plan.FLOWKIT)
    run_worker()

    assert _sms(buyer, "welcome").status == Status.SENT
    assert [r["data"]["To"] for r in twilio.requests] == [str(buyer.phone)]


def test_a_number_changed_before_the_worker_sends_gets_no_code(unconfirmed, twilio):
    phone_confirmation_start(user=unconfirmed)
    User.objects.filter(pk=unconfirmed.pk).update(phone="+447700900888")
    run_worker()

    message = _sms(unconfirmed, "phone_code")
    assert message.status == Status.SKIPPED
    assert "number changed" in message.last_error
    assert twilio.requests == []


def test_the_first_code_to_a_number_says_how_to_opt_out(unconfirmed, twilio):
    phone_confirmation_start(user=unconfirmed)
    run_worker()

    [sms] = twilio.requests
    assert sms["data"]["Body"].startswith("SmartFlow: your code is ")
    assert sms["data"]["Body"].endswith("Reply STOP to opt out.")
