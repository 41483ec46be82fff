from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core import mail

from accounts.models import User
from billing.plans import Plan
from onboarding.models import OnboardingMessage
from tests.onboarding.helpers import activate, run_worker

# The worker runs in-process and closes the connection between tasks, as in production:
# each test commits for real. The outbox's test settings as in tests/onboarding
# (buyer and twilio are tests/conftest.py's too).
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("onboarding_settings"),
]

Status = OnboardingMessage.Status
CHANGELIST = "/admin/onboarding/onboardingmessage/"


def test_messages_are_listed_with_status_attempts_and_error_and_filter_by_status(
    client, staff_user, buyer
):
    activate(buyer, Plan.FLOWKIT)
    run_worker()
    client.force_login(staff_user)

    page = client.get(CHANGELIST)
    skipped = client.get(CHANGELIST, {"status__exact": "skipped", "channel__exact": "sms"})

    assert page.status_code == 200
    body = page.content.decode()
    assert "buyer@example.com" in body
    assert "SMS is not configured" in body
    assert [m.channel for m in skipped.context["cl"].result_list] == ["sms"]


def test_send_again_queues_a_new_email_that_the_worker_sends(client, staff_user, buyer):
    activate(buyer, Plan.FLOWKIT)
    run_worker()
    first = OnboardingMessage.objects.get(channel="email")
    client.force_login(staff_user)

    response = client.post(
        CHANGELIST, {"action": "send_again", "_selected_action": [first.pk]}, follow=True
    )
    run_worker()

    assert "1 message(s) queued to send again." in response.content.decode()
    assert len(mail.outbox) == 2
    again = OnboardingMessage.objects.exclude(pk=first.pk).get(channel="email")
    assert again.status == Status.SENT
    assert again.trigger == f"{first.trigger}#resend-1"


def test_send_again_respects_sms_opt_out(client, staff_user, buyer, twilio):
    activate(buyer, Plan.FLOWKIT)
    run_worker()
    buyer.sms_opt_in = False
    buyer.save()
    sms = OnboardingMessage.objects.get(channel="sms")
    client.force_login(staff_user)

    response = client.post(
        CHANGELIST, {"action": "send_again", "_selected_action": [sms.pk]}, follow=True
    )
    run_worker()

    assert "not opted in" in response.content.decode()
    assert len(twilio.requests) == 1
    assert OnboardingMessage.objects.filter(channel="sms", status=Status.SKIPPED).count() == 1


def test_send_again_needs_the_resend_permission(client, db, buyer):
    activate(buyer, Plan.FLOWKIT)
    viewer = User.objects.create_user("viewer@smartflowsystems.com", "pw-viewer-123", is_staff=True)
    view, _ = Permission.objects.get_or_create(
        codename="view_onboardingmessage",
        content_type=ContentType.objects.get_for_model(OnboardingMessage),
        defaults={"name": "Can view onboarding message"},
    )
    viewer.user_permissions.add(view)
    client.force_login(viewer)

    page = client.get(CHANGELIST)

    assert page.status_code == 200
    assert "send_again" not in page.content.decode()


def test_messages_show_on_the_users_admin_page(client, staff_user, buyer):
    activate(buyer, Plan.FLOWKIT)
    client.force_login(staff_user)

    page = client.get(f"/admin/accounts/user/{buyer.pk}/change/")

    assert page.status_code == 200
    body = page.content.decode()
    assert 'id="onboarding_messages-group"' in body
    assert "SMS is not configured" not in body
    assert "Queued" in body


def _payment_failed(user: User) -> OnboardingMessage:
    from billing.signals import Notice, customer_notice

    customer_notice.send(
        sender=Notice,
        user=user,
        kind=Notice.PAYMENT_FAILED,
        key="in_admin1:1",
        stripe_event_id="evt_admin1",
        context={
            "invoice_id": "in_admin1",
            "attempt_count": 1,
            "amount_due": 4900,
            "currency": "gbp",
            "next_payment_attempt": 1796126400,  # 1 December 2026, 12:00 UTC
            "hosted_invoice_url": "https://invoice.stripe.test/i/admin1",
        },
    )
    return OnboardingMessage.objects.get(channel="email", template="payment_failed")


def test_a_payment_failed_message_shows_what_it_said(client, staff_user, buyer):
    message = _payment_failed(buyer)
    client.force_login(staff_user)

    listed = client.get(CHANGELIST, {"template__exact": "payment_failed"}).content.decode()
    detail = client.get(f"{CHANGELIST}{message.pk}/change/").content.decode()

    summary = "£49.00 due, invoice in_admin1, attempt 1, next retry 1 December 2026"
    assert "Payment failed" in listed
    assert summary in listed
    assert summary in detail
    assert "evt_admin1" in detail


def test_send_again_of_a_payment_failed_sends_the_same_words(client, staff_user, buyer):
    first = _payment_failed(buyer)
    run_worker()
    client.force_login(staff_user)

    client.post(CHANGELIST, {"action": "send_again", "_selected_action": [first.pk]})
    run_worker()

    assert [m.subject for m in mail.outbox] == ["Your SmartFlow payment failed"] * 2
    assert mail.outbox[0].body == mail.outbox[1].body
    assert "We will try again on 1 December 2026." in mail.outbox[1].body
