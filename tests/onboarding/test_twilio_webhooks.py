from __future__ import annotations

import pytest
from twilio.request_validator import RequestValidator

from accounts.models import User
from billing.plans import Plan
from onboarding.models import OnboardingMessage
from tests.onboarding.helpers import SITE_URL, TWILIO_TOKEN

Status = OnboardingMessage.Status
STATUS_PATH = "/onboarding/twilio/status/"
INBOUND_PATH = "/onboarding/twilio/inbound/"


def signed(path: str, params: dict[str, str], *, url: str | None = None) -> dict[str, str]:
    """Headers as Twilio sends them: signed for the public URL (SITE_URL + path)."""
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(url or SITE_URL + path, params)
    return {"X-Twilio-Signature": signature}


@pytest.fixture
def sent_sms(buyer, twilio) -> OnboardingMessage:
    return OnboardingMessage.objects.create(
        user=buyer,
        channel="sms",
        template="welcome",
        plan=Plan.FLOWKIT,
        trigger="plan_change:1",
        status=Status.SENT,
        provider_message_id="SM" + "a" * 32,
    )


def callback(client, message: OnboardingMessage, status: str, **extra: str):
    params = {"MessageSid": message.provider_message_id, "MessageStatus": status, **extra}
    return client.post(STATUS_PATH, params, headers=signed(STATUS_PATH, params))


def test_signed_delivered_callback_marks_the_sms_delivered(client, sent_sms):
    response = callback(client, sent_sms, "delivered")

    assert response.status_code == 204
    sent_sms.refresh_from_db()
    assert sent_sms.status == Status.DELIVERED


def test_late_sent_callback_never_overwrites_delivered(client, sent_sms):
    callback(client, sent_sms, "delivered")
    callback(client, sent_sms, "sent")
    callback(client, sent_sms, "sending")

    sent_sms.refresh_from_db()
    assert sent_sms.status == Status.DELIVERED


def test_undelivered_callback_records_twilio_error_code(client, sent_sms):
    callback(client, sent_sms, "undelivered", ErrorCode="30003")

    sent_sms.refresh_from_db()
    assert sent_sms.status == Status.UNDELIVERED
    assert "30003" in sent_sms.last_error


def test_callback_with_a_changed_parameter_is_refused(client, sent_sms):
    params = {"MessageSid": sent_sms.provider_message_id, "MessageStatus": "sent"}
    headers = signed(STATUS_PATH, params)

    response = client.post(STATUS_PATH, {**params, "MessageStatus": "failed"}, headers=headers)

    assert response.status_code == 403
    sent_sms.refresh_from_db()
    assert sent_sms.status == Status.SENT


def test_callback_signed_for_another_url_is_refused(client, sent_sms):
    params = {"MessageSid": sent_sms.provider_message_id, "MessageStatus": "failed"}
    # What a naive check would use behind a proxy: the URL the app itself saw.
    headers = signed(STATUS_PATH, params, url=f"http://testserver{STATUS_PATH}")

    response = client.post(STATUS_PATH, params, headers=headers)

    assert response.status_code == 403
    sent_sms.refresh_from_db()
    assert sent_sms.status == Status.SENT


def test_callback_without_signature_is_refused(client, sent_sms):
    params = {"MessageSid": sent_sms.provider_message_id, "MessageStatus": "failed"}

    response = client.post(STATUS_PATH, params)

    assert response.status_code == 403
    sent_sms.refresh_from_db()
    assert sent_sms.status == Status.SENT


def test_callbacks_are_refused_when_twilio_is_not_configured(client, buyer):
    params = {"MessageSid": "SM1", "MessageStatus": "delivered"}

    response = client.post(STATUS_PATH, params, headers=signed(STATUS_PATH, params))

    assert response.status_code == 403


def test_callback_only_accepts_post(client, twilio):
    assert client.get(STATUS_PATH).status_code == 405


def inbound(client, body: str, phone: str = "+447700900123", **extra: str):
    params = {"From": phone, "To": "+447700900000", "Body": body, **extra}
    return client.post(INBOUND_PATH, params, headers=signed(INBOUND_PATH, params))


@pytest.mark.parametrize(
    "word", ["STOP", "stop", " Unsubscribe ", "STOPALL", "CANCEL", "END", "QUIT"]
)
def test_stop_words_opt_the_sender_out(client, buyer, twilio, word):
    response = inbound(client, word)

    assert response.status_code == 200
    assert response["Content-Type"] == "text/xml"
    buyer.refresh_from_db()
    assert buyer.sms_opt_in is False


def test_start_opts_the_sender_back_in(client, buyer, twilio):
    inbound(client, "STOP")
    inbound(client, "Start")

    buyer.refresh_from_db()
    assert buyer.sms_opt_in is True


def test_advanced_opt_out_type_is_honoured(client, buyer, twilio):
    inbound(client, "arrêt", OptOutType="STOP")

    buyer.refresh_from_db()
    assert buyer.sms_opt_in is False


def test_other_replies_change_nothing(client, buyer, twilio):
    inbound(client, "Thanks, stop by tomorrow?")
    inbound(client, "STOP", phone="+447700900999")

    buyer.refresh_from_db()
    assert buyer.sms_opt_in is True
    assert User.objects.filter(sms_opt_in=False).count() == 0


def test_inbound_with_a_bad_signature_changes_nothing(client, buyer, twilio):
    params = {"From": "+447700900123", "Body": "STOP"}
    headers = signed(INBOUND_PATH, {**params, "Body": "HELLO"})

    response = client.post(INBOUND_PATH, params, headers=headers)

    assert response.status_code == 403
    buyer.refresh_from_db()
    assert buyer.sms_opt_in is True
