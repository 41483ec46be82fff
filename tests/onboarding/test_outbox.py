from __future__ import annotations

import smtplib
from datetime import timedelta
from email import message_from_bytes, policy

import pytest
import requests
from anymail.exceptions import AnymailRecipientsRefused
from django.conf import settings
from django.core import mail
from django.db import transaction
from django_tasks_db.models import DBTaskResult

from accounts.models import User
from billing.models import PlanChange
from billing.plans import Plan
from billing.signals import plan_changed
from onboarding.models import OnboardingMessage
from onboarding.outbox import onboarding_message_send, onboarding_welcome_enqueue
from tests.onboarding.helpers import (
    SITE_URL,
    TWILIO_FROM,
    ScriptedEmailBackend,
    activate,
    esp_error,
    esp_timeout,
    retries_come_due,
    run_worker,
)

# The worker runs in-process and closes the connection between tasks, as in production:
# each test commits for real.
pytestmark = pytest.mark.django_db(transaction=True)

Status = OnboardingMessage.Status
TASK = "onboarding.outbox.onboarding_message_send"


def email_of(user: User) -> OnboardingMessage:
    return OnboardingMessage.objects.get(user=user, channel="email")


def sms_of(user: User) -> OnboardingMessage:
    return OnboardingMessage.objects.get(user=user, channel="sms")


def test_plan_change_rolled_back_leaves_no_message_and_no_task(buyer):
    with pytest.raises(RuntimeError), transaction.atomic():  # noqa: PT012 (the raise is the failure that rolls the block back)
        activate(buyer, Plan.FLOWKIT)
        raise RuntimeError("the webhook failed after the plan change")

    assert not OnboardingMessage.objects.exists()
    assert not DBTaskResult.objects.filter(task_path=TASK).exists()
    run_worker()
    assert mail.outbox == []


def test_plan_change_queues_email_and_sms_with_their_tasks_and_sends_nothing_yet(buyer, twilio):
    change = activate(buyer, Plan.FLOWKIT)

    messages = OnboardingMessage.objects.filter(user=buyer)
    assert {(m.channel, m.status, m.plan, m.plan_change_id) for m in messages} == {
        ("email", Status.QUEUED, "flowkit", change.pk),
        ("sms", Status.QUEUED, "flowkit", change.pk),
    }
    assert DBTaskResult.objects.filter(task_path=TASK).count() == 2
    assert mail.outbox == []
    assert twilio.requests == []


def test_change_not_to_be_announced_queues_nothing(buyer):
    activate(buyer, Plan.FLOWKIT, notify=False)

    assert not OnboardingMessage.objects.exists()


def test_worker_sends_the_welcome_email_once(buyer):
    activate(buyer, Plan.LAUNCHPACK)

    run_worker()
    run_worker()

    [sent] = mail.outbox
    assert sent.to == ["buyer@example.com"]
    assert sent.subject == "Your SmartFlow plan is live"
    assert "You're on the 'LaunchPack' plan." in sent.body
    html, mimetype = sent.alternatives[0]
    assert mimetype == "text/html"
    assert "AI concierge" in html
    # Replies reach a person (SUPPORT_EMAIL), not the no-reply sender.
    assert sent.from_email == settings.DEFAULT_FROM_EMAIL
    assert sent.reply_to == [settings.SUPPORT_EMAIL]
    # Emoji and curly quotes survive MIME encoding.
    parsed = message_from_bytes(sent.message().as_bytes(), policy=policy.default)
    assert parsed["Reply-To"] == settings.SUPPORT_EMAIL
    text_part = next(p for p in parsed.walk() if p.get_content_type() == "text/plain")
    assert "👋" in text_part.get_content()
    assert "Here’s what to do next" in text_part.get_content()
    message = email_of(buyer)
    assert message.status == Status.SENT
    assert message.attempts == 1
    assert message.provider_message_id == "0"
    assert message.recipient == "buyer@example.com"
    assert sent.metadata == {"onboarding_message": str(message.pk)}


def test_the_same_plan_change_notified_twice_sends_one_email_and_one_sms(buyer, twilio):
    change = activate(buyer, Plan.FLOWKIT)
    with transaction.atomic():
        plan_changed.send(sender=PlanChange, plan_change=change, notify=True)
    with transaction.atomic():  # and billing's public call, e.g. a staff "notify"
        onboarding_welcome_enqueue(user=buyer, plan_change=change)

    run_worker()

    assert len(mail.outbox) == 1
    assert len(twilio.requests) == 1
    assert OnboardingMessage.objects.filter(user=buyer).count() == 2


def test_sms_goes_to_the_opted_in_number_with_a_status_callback(buyer, twilio):
    activate(buyer, Plan.FLOWKIT)

    run_worker()

    [request] = twilio.requests
    assert request["method"] == "POST"
    assert request["url"].endswith("/Messages.json")
    assert request["data"] == {
        "To": "+447700900123",
        "From": TWILIO_FROM,
        "Body": (
            "SmartFlow: Your 'FlowKit' plan is live. Check your dashboard to finish setup 🎯 "
            "Reply STOP to opt out."  # the first SMS to this number
        ),
        "StatusCallback": f"{SITE_URL}/onboarding/twilio/status/",
    }
    message = sms_of(buyer)
    assert message.status == Status.SENT
    assert message.provider_message_id.startswith("SM")
    assert message.segments == 2


def test_only_the_first_sms_to_a_number_carries_the_opt_out_line(buyer, twilio):
    activate(buyer, Plan.FLOWKIT)
    run_worker()
    buyer.refresh_from_db()
    activate(buyer, Plan.LAUNCHPACK)
    run_worker()
    # Another account with the same number: still not the number's first SMS.
    other = User.objects.create_user(
        "other@example.com", phone=buyer.phone, sms_opt_in=True, phone_confirmed=buyer.phone
    )
    activate(other, Plan.FLOWKIT)
    run_worker()

    bodies = [r["data"]["Body"] for r in twilio.requests]
    assert [b.endswith(" Reply STOP to opt out.") for b in bodies] == [True, False, False]
    assert "you're now on 'LaunchPack'" in bodies[1]  # the upgrade's own SMS


def test_messaging_service_is_used_when_configured(buyer, twilio, settings):
    settings.TWILIO_PHONE_NUMBER = ""
    settings.TWILIO_MESSAGING_SERVICE_SID = "MG" + "1" * 32
    activate(buyer, Plan.FLOWKIT)

    run_worker()

    assert twilio.requests[0]["data"]["MessagingServiceSid"] == "MG" + "1" * 32
    assert sms_of(buyer).status == Status.SENT


def test_sms_without_twilio_settings_is_skipped_with_the_reason(buyer):
    activate(buyer, Plan.FLOWKIT)

    run_worker()

    message = sms_of(buyer)
    assert message.status == Status.SKIPPED
    assert message.attempts == 0
    assert "SMS is not configured" in message.last_error
    assert "TWILIO_ACCOUNT_SID" in message.last_error
    assert email_of(buyer).status == Status.SENT


@pytest.mark.parametrize(
    ("phone", "opt_in", "reason"),
    [("", True, "no mobile number"), ("+447700900123", False, "not opted in")],
)
def test_sms_needs_a_number_and_consent(db, twilio, phone, opt_in, reason):
    user = User.objects.create_user("x@example.com", "pw-xyz-123-abc", phone=phone)
    user.sms_opt_in = opt_in
    user.save()

    activate(user, Plan.FLOWKIT)
    run_worker()

    message = sms_of(user)
    assert message.status == Status.SKIPPED
    assert reason in message.last_error
    assert twilio.requests == []
    assert not DBTaskResult.objects.filter(task_path=TASK, args_kwargs__args=[message.pk, 1])


def test_transient_email_errors_are_retried_with_backoff_then_sent_once(buyer):
    ScriptedEmailBackend.script = [esp_error(503), esp_error(429)]
    activate(buyer, Plan.FLOWKIT)

    run_worker()
    message = email_of(buyer)
    assert message.status == Status.QUEUED
    assert message.attempts == 1
    assert "503" in message.last_error
    [first_wait] = retries_come_due()
    run_worker()
    [second_wait] = retries_come_due()
    run_worker()

    assert len(mail.outbox) == 1
    assert ScriptedEmailBackend.attempts == 3
    message = email_of(buyer)
    assert message.status == Status.SENT
    assert message.attempts == 3
    assert message.last_error == ""
    # 60 s, then 120 s
    assert first_wait.run_after - first_wait.enqueued_at == pytest.approx(
        timedelta(seconds=60), abs=timedelta(seconds=2)
    )
    assert second_wait.run_after - second_wait.enqueued_at == pytest.approx(
        timedelta(seconds=120), abs=timedelta(seconds=2)
    )


def test_transient_errors_stop_at_the_attempt_limit(buyer, settings):
    settings.ONBOARDING_MAX_ATTEMPTS = 2
    ScriptedEmailBackend.script = [esp_error(500), esp_error(502), esp_error(503)]
    activate(buyer, Plan.FLOWKIT)

    run_worker()
    retries_come_due()
    run_worker()

    message = email_of(buyer)
    assert message.status == Status.FAILED
    assert message.attempts == 2
    assert retries_come_due() == []


@pytest.mark.parametrize(
    "error",
    [
        AnymailRecipientsRefused(),
        esp_error(400),
    ],
    ids=["recipients-refused", "bad-request"],
)
def test_permanent_email_error_is_not_retried(buyer, error):
    ScriptedEmailBackend.script = [error]
    activate(buyer, Plan.FLOWKIT)

    run_worker()
    retries_come_due()
    run_worker()

    message = email_of(buyer)
    assert message.status == Status.FAILED
    assert message.attempts == 1
    assert ScriptedEmailBackend.attempts == 1
    assert mail.outbox == []


def test_email_timeout_after_sending_is_not_repeated(buyer):
    ScriptedEmailBackend.script = [esp_timeout()]
    activate(buyer, Plan.FLOWKIT)

    run_worker()
    retries_come_due()
    run_worker()

    message = email_of(buyer)
    assert message.status == Status.FAILED
    assert message.attempts == 1
    assert message.last_error.startswith("The outcome is unknown")
    assert ScriptedEmailBackend.attempts == 1


def test_twilio_rate_limit_is_retried(buyer, twilio):
    twilio.error(429, 20429, "Too Many Requests")
    activate(buyer, Plan.FLOWKIT)

    run_worker()
    assert sms_of(buyer).status == Status.QUEUED
    retries_come_due()
    run_worker()

    assert len(twilio.requests) == 2
    assert sms_of(buyer).status == Status.SENT
    assert sms_of(buyer).attempts == 2


@pytest.mark.parametrize("code", [21211, 21614])
def test_invalid_or_landline_number_fails_at_once(buyer, twilio, code):
    twilio.error(400, code)
    activate(buyer, Plan.FLOWKIT)

    run_worker()
    retries_come_due()
    run_worker()

    message = sms_of(buyer)
    assert message.status == Status.FAILED
    assert message.attempts == 1
    assert str(code) in message.last_error
    assert len(twilio.requests) == 1


def test_opted_out_number_is_remembered_and_gets_no_later_sms(buyer, twilio):
    twilio.error(400, 21610, "Attempt to send to unsubscribed recipient")
    activate(buyer, Plan.FLOWKIT)
    run_worker()

    buyer.refresh_from_db()
    assert buyer.sms_opt_in is False
    assert sms_of(buyer).status == Status.FAILED

    activate(buyer, Plan.LAUNCHPACK)
    run_worker()

    assert len(twilio.requests) == 1
    later = OnboardingMessage.objects.get(user=buyer, channel="sms", plan="launchpack")
    assert later.status == Status.SKIPPED


def test_twilio_read_timeout_is_not_repeated(buyer, twilio):
    twilio.script.append(requests.ReadTimeout("read timed out"))
    activate(buyer, Plan.FLOWKIT)

    run_worker()
    retries_come_due()
    run_worker()

    message = sms_of(buyer)
    assert message.status == Status.FAILED
    assert message.last_error.startswith("The outcome is unknown")
    assert len(twilio.requests) == 1


def test_twilio_unreachable_is_retried(buyer, twilio):
    twilio.script.append(requests.ConnectTimeout("connect timed out"))
    activate(buyer, Plan.FLOWKIT)

    run_worker()
    retries_come_due()
    run_worker()

    assert sms_of(buyer).status == Status.SENT
    assert len(twilio.requests) == 2


def test_welcome_for_a_plan_left_before_sending_is_skipped(buyer):
    activate(buyer, Plan.FLOWKIT)
    buyer.plan = Plan.STARTER  # refunded before the worker ran
    buyer.save()

    run_worker()

    assert mail.outbox == []
    message = email_of(buyer)
    assert message.status == Status.SKIPPED
    assert "plan is now Starter" in message.last_error


@pytest.mark.parametrize(
    ("error", "status", "attempts"),
    [
        (smtplib.SMTPRecipientsRefused({"buyer@example.com": (550, b"no such user")}), "failed", 1),
        (smtplib.SMTPDataError(451, b"try again later"), "sent", 2),
        (smtplib.SMTPDataError(554, b"rejected"), "failed", 1),
        (ConnectionRefusedError(111, "Connection refused"), "sent", 2),
        (smtplib.SMTPServerDisconnected("lost during DATA"), "failed", 1),
    ],
    ids=["refused", "4xx", "5xx", "unreachable", "disconnected"],
)
def test_smtp_failures_follow_the_same_rules(buyer, error, status, attempts):
    ScriptedEmailBackend.script = [error]
    activate(buyer, Plan.FLOWKIT)

    run_worker()
    retries_come_due()
    run_worker()

    message = email_of(buyer)
    assert (message.status, message.attempts) == (status, attempts)
    assert len(mail.outbox) == (1 if status == "sent" else 0)


def test_console_backend_by_default_records_the_email_as_sent(buyer, settings, capsys):
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    activate(buyer, Plan.FLOWKIT)

    run_worker()

    message = email_of(buyer)
    assert message.status == Status.SENT
    assert message.provider_message_id == ""
    assert "Subject: Your SmartFlow plan is live" in capsys.readouterr().out


def test_an_attempt_cut_off_mid_send_is_not_repeated(buyer):
    activate(buyer, Plan.FLOWKIT)
    message = email_of(buyer)
    # The worker counted attempt 1 and died before recording what the provider said.
    OnboardingMessage.objects.filter(pk=message.pk).update(
        attempts=1, last_error="Attempt 1 started; if this stays, its outcome is unknown"
    )

    assert onboarding_message_send.call(message.pk, 1) == "stale"
    assert mail.outbox == []
    assert email_of(buyer).status == Status.QUEUED


def _notice(user, kind: str, key: str = "in_1:1", **context: object) -> None:
    from billing.signals import customer_notice

    base = {"invoice_id": "in_1", "attempt_count": 1, "amount_due": 4900, "currency": "gbp"}
    customer_notice.send(
        sender=None,
        user=user,
        kind=kind,
        key=key,
        stripe_event_id="evt_1",
        context=base | context,
    )


@pytest.mark.parametrize(
    ("kind", "texted"),
    [
        ("payment_failed", True),
        ("payment_action_required", True),
        ("payment_recovered", False),
        ("refund", False),
    ],
)
def test_only_payments_to_act_on_are_texted_and_only_to_opted_in_numbers(
    buyer, customer, twilio, kind, texted
):
    _notice(buyer, kind, hosted_invoice_url="https://invoice.stripe.test/i/1")
    customer.phone = "+447700900456"  # a number, but no consent
    customer.save()
    _notice(customer, kind)
    run_worker()

    assert [r["data"]["To"] for r in twilio.requests] == (["+447700900123"] if texted else [])
    assert len(mail.outbox) == 2
    sms = OnboardingMessage.objects.filter(user=customer, channel="sms").first()
    assert (sms is not None) == texted
    if texted:
        assert sms.status == Status.SKIPPED
        assert "not opted in" in sms.last_error


def test_the_same_notice_twice_sends_once(buyer):
    _notice(buyer, "payment_failed")
    _notice(buyer, "payment_failed")
    _notice(buyer, "payment_failed", key="in_1:2", attempt_count=2)
    run_worker()

    assert [m.subject for m in mail.outbox] == ["Your SmartFlow payment failed"] * 2


def test_plan_ended_is_told_when_a_subscription_takes_a_paid_plan_back_to_starter(buyer):
    activate(buyer, Plan.FLOWKIT)
    run_worker()
    mail.outbox.clear()

    activate(buyer, Plan.STARTER, notify=None, source="subscription")
    activate(buyer, Plan.FLOWKIT, notify=None, source="invoice")
    run_worker()
    # No longer true when the worker got to it: the plan came back first.
    [ended] = OnboardingMessage.objects.filter(template="plan_ended")
    assert ended.status == Status.SKIPPED
    activate(buyer, Plan.STARTER, notify=None, source="staff")  # a revoke: staff explain
    activate(buyer, Plan.FLOWKIT, notify=None, source="invoice")
    activate(buyer, Plan.STARTER, notify=None, source="refund")  # the refund email says it
    run_worker()
    assert mail.outbox == []
    assert OnboardingMessage.objects.filter(template="plan_ended").count() == 1

    activate(buyer, Plan.LAUNCHPACK, notify=None, source="subscription")
    activate(buyer, Plan.STARTER, notify=None, source="invoice")
    run_worker()
    [sent] = mail.outbox
    assert sent.subject == "Your SmartFlow plan has ended"
    assert "Your SmartFlow 'LaunchPack' plan has ended." in sent.body
    assert sent.reply_to == [settings.SUPPORT_EMAIL]


def test_a_notice_of_a_kind_without_a_message_is_logged_not_raised(buyer, caplog):
    _notice(buyer, "dispute_opened")

    assert not OnboardingMessage.objects.exists()
    assert "'dispute_opened'" in caplog.text
    assert "has no message" in caplog.text


def test_a_comp_with_an_expiry_is_told_with_its_end_date(buyer, staff_user):
    from datetime import UTC, datetime

    from billing.overrides import override_grant

    until = datetime(2030, 3, 1, 9, tzinfo=UTC)
    override_grant(
        user=buyer,
        plan=Plan.LAUNCHPACK,
        reason="Conference prize",
        expires_at=until,
        notify=True,
        actor=staff_user,
    )
    run_worker()

    # Its own message, not the first purchase's welcome (issue 27, defect 12).
    [sent] = mail.outbox
    assert sent.subject == "Complimentary SmartFlow LaunchPack"
    assert "'LaunchPack' free of charge until 1 March 2030" in sent.body
