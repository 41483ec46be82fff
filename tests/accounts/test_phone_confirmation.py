"""A mobile number counts for SMS only once the customer enters the code we texted to it
(accounts/phone.py): sent by the worker, kept only as a hash, short-lived, few tries."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import PhoneCode, User
from onboarding.models import OnboardingMessage
from tests.helpers import PASSWORD, email_confirmed
from tests.onboarding.helpers import run_worker

# The worker runs in-process and closes the connection between tasks: real commits.
pytestmark = pytest.mark.django_db(transaction=True)

MOBILE = "+447911123456"
OTHER_MOBILE = "+447400123456"


def _code(twilio) -> str:
    """The code in the last SMS Twilio was asked to send."""
    return re.search(r"\b(\d{6})\b", twilio.requests[-1]["data"]["Body"]).group(1)


def _set_number(client, phone: str = MOBILE):
    response = client.post("/profile/", {"phone": phone, "sms_opt_in": "on"})
    run_worker()
    return response


@pytest.fixture
def signed_in(client, customer):
    client.force_login(customer)
    return client


def test_a_new_number_with_consent_is_texted_a_code_kept_only_as_a_hash(
    signed_in, customer, twilio
):
    response = _set_number(signed_in)

    assert response.status_code == 302
    [sms] = twilio.requests
    assert sms["data"]["To"] == MOBILE
    code = _code(twilio)
    row = PhoneCode.objects.get(user=customer)
    assert code not in row.code_hash
    assert len(row.code_hash) == 64
    message = OnboardingMessage.objects.get(user=customer, template="phone_code")
    assert message.status == "sent"
    assert code not in str(message.context)
    page = signed_in.get("/profile/").content.decode()
    assert "Confirm your number: enter the code we sent to +44 7911 123456" in page
    customer.refresh_from_db()
    assert not customer.phone_is_confirmed
    assert customer.phone_confirmed_at is None


def test_the_right_code_confirms_the_number(signed_in, customer, twilio):
    _set_number(signed_in)

    response = signed_in.post("/profile/phone/confirm/", {"code": _code(twilio)})

    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.phone_is_confirmed
    assert customer.phone_confirmed_at is not None
    page = signed_in.get("/profile/").content.decode()
    assert "Your number +44 7911 123456 is confirmed" in page
    assert 'id="confirm-phone"' not in page
    assert not PhoneCode.objects.exists()  # no hash kept once it has served


def test_a_wrong_code_is_refused_and_five_wrong_codes_kill_the_code(signed_in, customer, twilio):
    _set_number(signed_in)
    code = _code(twilio)
    wrong = f"{(int(code) + 1) % 10**6:06d}"

    first = signed_in.post("/profile/phone/confirm/", {"code": wrong})
    for _ in range(4):
        signed_in.post("/profile/phone/confirm/", {"code": wrong})
    late = signed_in.post("/profile/phone/confirm/", {"code": code})

    assert first.status_code == 400
    assert "That code is not right. 4 tries left." in first.content.decode()
    assert late.status_code == 400
    assert "Too many wrong codes. Ask for a new code." in late.content.decode()
    customer.refresh_from_db()
    assert not customer.phone_is_confirmed


def test_an_expired_code_is_refused(signed_in, customer, twilio):
    _set_number(signed_in)
    PhoneCode.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    response = signed_in.post("/profile/phone/confirm/", {"code": _code(twilio)})

    assert "That code has expired. Ask for a new code." in response.content.decode()
    customer.refresh_from_db()
    assert not customer.phone_is_confirmed


def test_a_new_code_cannot_be_asked_for_at_once_and_then_replaces_the_old_one(
    signed_in, customer, twilio
):
    _set_number(signed_in)
    old = _code(twilio)

    too_soon = signed_in.post("/profile/phone/code/", follow=True)
    run_worker()
    assert "We have just sent a code" in too_soon.content.decode()
    assert len(twilio.requests) == 1
    PhoneCode.objects.update(requested_at=timezone.now() - timedelta(seconds=61))
    signed_in.post("/profile/phone/code/")
    run_worker()

    assert len(twilio.requests) == 2
    new = _code(twilio)
    if new != old:  # one chance in a million that the two codes are the same
        refused = signed_in.post("/profile/phone/confirm/", {"code": old})
        assert "That code is not right" in refused.content.decode()
    assert signed_in.post("/profile/phone/confirm/", {"code": new}).status_code == 302


def test_changing_the_number_unconfirms_it_and_texts_the_new_one(signed_in, customer, twilio):
    _set_number(signed_in)
    signed_in.post("/profile/phone/confirm/", {"code": _code(twilio)})

    _set_number(signed_in, OTHER_MOBILE)

    customer.refresh_from_db()
    assert str(customer.phone) == OTHER_MOBILE
    assert not customer.phone_is_confirmed
    assert twilio.requests[-1]["data"]["To"] == OTHER_MOBILE
    assert 'id="confirm-phone"' in signed_in.get("/").content.decode()  # the dashboard asks


def test_saving_the_profile_again_does_not_send_another_code(signed_in, customer, twilio):
    _set_number(signed_in)

    _set_number(signed_in)

    assert len(twilio.requests) == 1


def test_without_twilio_sms_consent_cannot_be_given(signed_in, customer):
    page = signed_in.get("/profile/").content.decode()
    response = signed_in.post("/profile/", {"phone": MOBILE, "sms_opt_in": "on"})

    assert "SMS is not available on this site at the moment" in page
    assert response.status_code == 200
    assert "Untick SMS to save." in response.content.decode()
    customer.refresh_from_db()
    assert (str(customer.phone), customer.sms_opt_in) == ("", False)
    assert not PhoneCode.objects.exists()


def test_with_debug_on_and_no_twilio_the_code_goes_to_the_log(
    signed_in, customer, settings, caplog
):
    settings.DEBUG = True

    with caplog.at_level(logging.WARNING, logger="onboarding.outbox"):
        _set_number(signed_in)

    [line] = [r.getMessage() for r in caplog.records if "the code for" in r.getMessage()]
    code = re.search(r"\b(\d{6})\b", line).group(1)
    assert signed_in.post("/profile/phone/confirm/", {"code": code}).status_code == 302
    customer.refresh_from_db()
    assert customer.phone_is_confirmed


def test_signup_with_a_mobile_and_consent_texts_a_code(client, twilio):
    data = {"email": "ann@example.com", "password1": PASSWORD, "password2": PASSWORD}

    client.post("/signup/", data | {"phone": MOBILE, "sms_opt_in": "on"})
    run_worker()

    [sms] = twilio.requests
    assert sms["data"]["To"] == MOBILE
    user = User.objects.get()
    assert not user.phone_is_confirmed
    # Once the address is confirmed and they are in, the dashboard asks for the code.
    client.force_login(email_confirmed(user))
    assert 'id="confirm-phone"' in client.get("/").content.decode()
