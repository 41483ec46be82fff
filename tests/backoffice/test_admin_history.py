"""Comps, revokes, resyncs and resends are written to the object's History (Django's
LogEntry), not only to the plan history and the outbox."""

from __future__ import annotations

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.contrib.messages import get_messages
from djstripe.models import Customer

from billing.models import PlanOverride
from onboarding.models import OnboardingMessage
from tests.billing import stripe_fakes as sf

pytestmark = pytest.mark.django_db

LIST = "/admin/accounts/user/"


def _history(obj) -> list[tuple[str, int, str]]:
    entries = LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(obj), object_id=str(obj.pk)
    ).order_by("pk")
    return [(e.user.email, e.action_flag, e.get_change_message()) for e in entries]


def _action(client, action: str, *objects, url: str = LIST):
    return client.post(
        url, {"action": action, ACTION_CHECKBOX_NAME: [str(o.pk) for o in objects], "index": "0"}
    )


def test_a_comp_and_its_revoke_are_in_the_users_history(client, support_user, customer):
    client.force_login(support_user)

    client.post(
        f"/admin/accounts/user/{customer.pk}/override/grant/",
        {"plan": "flowkit", "reason": "Support goodwill", "days": "7"},
    )
    override = PlanOverride.objects.get()
    client.post(f"/admin/accounts/user/{customer.pk}/override/{override.pk}/revoke/")

    until = f"{override.expires_at:%Y-%m-%d %H:%M} UTC"
    revoked = f"Revoked the FlowKit override (#{override.pk}); now on Starter"
    assert _history(customer) == [
        (support_user.email, CHANGE, f"Granted FlowKit until {until}: Support goodwill"),
        (support_user.email, CHANGE, revoked),
    ]
    # And on the page staff open to read it.
    page = client.get(f"/admin/accounts/user/{customer.pk}/history/")
    assert page.status_code == 200
    assert "Granted FlowKit until" in page.content.decode()


def test_a_refused_grant_writes_no_history(client, support_user, customer):
    client.force_login(support_user)

    client.post(f"/admin/accounts/user/{customer.pk}/override/grant/", {"plan": "flowkit"})

    assert not PlanOverride.objects.exists()
    assert _history(customer) == []


def test_a_resync_is_in_the_users_history_with_what_changed(
    client, billing_admin, customer, fake_stripe, catalog, payer
):
    Customer.sync_from_stripe_data(payer)
    fake_stripe.add(sf.subscription(cus=payer, prc=catalog["launchpack_monthly"]))
    client.force_login(billing_admin)

    _action(client, "resync_from_stripe", customer)
    _action(client, "resync_from_stripe", customer)

    assert _history(customer) == [
        (billing_admin.email, CHANGE, "Resynced from Stripe: Starter → LaunchPack"),
        (billing_admin.email, CHANGE, "Resynced from Stripe: plan unchanged"),
    ]


def test_a_resync_stripe_refused_is_in_the_history_too(
    client, billing_admin, customer, fake_stripe, payer
):
    import stripe

    Customer.sync_from_stripe_data(payer)
    client.force_login(billing_admin)

    def refuse(*args, **kwargs):
        raise stripe.APIConnectionError("Stripe is unreachable")

    from unittest import mock

    with mock.patch("backoffice.admin.users.billing_resync", refuse):
        _action(client, "resync_from_stripe", customer)

    [(who, flag, message)] = _history(customer)
    assert (who, flag) == (billing_admin.email, CHANGE)
    assert message.startswith("Resync from Stripe failed: ")
    assert "unreachable" in message


def test_a_resend_of_the_onboarding_is_in_the_users_history(client, support_user, customer):
    client.force_login(support_user)

    _action(client, "onboarding_resend", customer)

    [(who, flag, message)] = _history(customer)
    assert (who, flag) == (support_user.email, CHANGE)
    assert message.startswith("Sent the onboarding (welcome) again: email ")


def test_send_again_is_in_the_messages_history(client, support_user, customer):
    first = OnboardingMessage.objects.create(
        user=customer, channel="email", template="welcome", plan="flowkit", trigger="t",
        status="failed",
    )  # fmt: skip
    client.force_login(support_user)

    _action(client, "send_again", first, url="/admin/onboarding/onboardingmessage/")

    again = OnboardingMessage.objects.exclude(pk=first.pk).get()
    assert _history(first) == [
        (support_user.email, CHANGE, f"Sent again as message #{again.pk} (queued)")
    ]


def _notices(client, response) -> list[tuple[str, str]]:
    # Read on the page the action redirects to, as staff do (which also consumes them).
    page = client.get(response["Location"])
    return [(m.level_tag, m.message) for m in get_messages(page.wsgi_request)]


def test_both_send_again_actions_tell_and_record_alike(client, support_user, customer):
    # The Users action and the messages' action are one path (onboarding_resend): the
    # same words for staff, the same consent rule, a History entry each.
    client.force_login(support_user)

    from_users = _notices(client, _action(client, "onboarding_resend", customer))
    sms = OnboardingMessage.objects.get(channel="sms")
    from_messages = _notices(
        client, _action(client, "send_again", sms, url="/admin/onboarding/onboardingmessage/")
    )

    no_number = "Not sent to customer@example.com: no mobile number on the account."
    assert from_users == [
        ("info", "1 message(s) queued to send again."),
        ("warning", no_number),
    ]
    assert from_messages == [
        ("info", "0 message(s) queued to send again."),
        ("warning", no_number),
    ]
    again = OnboardingMessage.objects.get(channel="sms", trigger=f"{sms.trigger}#resend-1")
    assert again.status == "skipped"
    assert [entry[2] for entry in _history(customer)] == [
        "Sent the onboarding (welcome) again: email queued, sms skipped"
    ]
    assert [entry[2] for entry in _history(sms)] == [f"Sent again as message #{again.pk} (skipped)"]
