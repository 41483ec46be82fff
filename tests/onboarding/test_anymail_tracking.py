from __future__ import annotations

import base64
import json

import pytest

from billing.plans import Plan
from onboarding.models import OnboardingMessage

Status = OnboardingMessage.Status
URL = "/onboarding/anymail/postmark/tracking/"


@pytest.fixture(autouse=True)
def webhook_secrets(settings) -> None:
    settings.ANYMAIL = {
        **settings.ANYMAIL,
        "WEBHOOK_SECRET": ["hook:old-secret", "hook:new-secret"],
    }


@pytest.fixture
def sent_email(buyer) -> OnboardingMessage:
    return OnboardingMessage.objects.create(
        user=buyer,
        channel="email",
        template="welcome",
        plan=Plan.FLOWKIT,
        trigger="plan_change:1",
        status=Status.SENT,
        provider_message_id="5bcd3dfe-0000-4000-8000-000000000001",
    )


def auth(credentials: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}


def postmark(client, record: dict[str, object], credentials: str = "hook:new-secret"):
    return client.post(
        URL, json.dumps(record), content_type="application/json", headers=auth(credentials)
    )


def delivery(message: OnboardingMessage) -> dict[str, object]:
    return {
        "RecordType": "Delivery",
        "MessageID": message.provider_message_id,
        "Recipient": "buyer@example.com",
        "DeliveredAt": "2026-11-24T10:00:00Z",
        "Details": "smtp;250 2.0.0 OK",
        "Tag": "",
        "Metadata": {},
    }


def bounce(message: OnboardingMessage) -> dict[str, object]:
    return {
        "RecordType": "Bounce",
        "ID": 42,
        "Type": "HardBounce",
        "TypeCode": 1,
        "MessageID": message.provider_message_id,
        "Email": "buyer@example.com",
        "BouncedAt": "2026-11-24T10:01:00Z",
        "Description": "The server was unable to deliver your message",
        "Details": "smtp;550 5.1.1 user unknown",
        "Metadata": {},
    }


def test_delivery_event_with_good_basic_auth_marks_the_email_delivered(client, sent_email):
    response = postmark(client, delivery(sent_email))

    assert response.status_code == 200
    sent_email.refresh_from_db()
    assert sent_email.status == Status.DELIVERED


def test_old_secret_still_works_during_rotation(client, sent_email):
    postmark(client, delivery(sent_email), credentials="hook:old-secret")

    sent_email.refresh_from_db()
    assert sent_email.status == Status.DELIVERED


def test_bounce_after_delivery_is_recorded(client, sent_email):
    postmark(client, delivery(sent_email))
    postmark(client, bounce(sent_email))

    sent_email.refresh_from_db()
    assert sent_email.status == Status.BOUNCED
    assert sent_email.last_error.startswith("bounced:")


def test_complaint_is_recorded(client, sent_email):
    record = {
        "RecordType": "SpamComplaint",
        "ID": 43,
        "Type": "SpamComplaint",
        "TypeCode": 512,
        "MessageID": sent_email.provider_message_id,
        "Email": "buyer@example.com",
        "BouncedAt": "2026-11-24T10:02:00Z",
        "Metadata": {},
    }

    postmark(client, record)

    sent_email.refresh_from_db()
    assert sent_email.status == Status.COMPLAINED


def test_event_found_by_our_metadata_when_the_provider_id_differs(client, sent_email):
    record = {**delivery(sent_email), "MessageID": "other-id"}
    record["Metadata"] = {"onboarding_message": str(sent_email.pk)}

    postmark(client, record)

    sent_email.refresh_from_db()
    assert sent_email.status == Status.DELIVERED


def test_bad_basic_auth_is_refused_and_changes_nothing(client, sent_email):
    response = postmark(client, bounce(sent_email), credentials="hook:guess")

    assert response.status_code == 400
    sent_email.refresh_from_db()
    assert sent_email.status == Status.SENT


def test_missing_basic_auth_is_refused(client, sent_email):
    response = client.post(URL, json.dumps(bounce(sent_email)), content_type="application/json")

    assert response.status_code == 400
    sent_email.refresh_from_db()
    assert sent_email.status == Status.SENT


def test_webhooks_are_closed_without_a_configured_secret(client, settings, sent_email):
    settings.ANYMAIL = {**settings.ANYMAIL, "WEBHOOK_SECRET": []}

    response = client.post(URL, json.dumps(bounce(sent_email)), content_type="application/json")

    assert response.status_code == 403
    sent_email.refresh_from_db()
    assert sent_email.status == Status.SENT


def test_unknown_message_is_acknowledged_and_ignored(client, sent_email):
    record = {**delivery(sent_email), "MessageID": "not-ours"}

    response = postmark(client, record)

    assert response.status_code == 200
    sent_email.refresh_from_db()
    assert sent_email.status == Status.SENT
