"""Webhook deliveries in the admin (backoffice.admin.billing.WebhookDeliveryAdmin): read-only, with
"Process again" for staff holding billing.process_again."""

from __future__ import annotations

from datetime import timedelta

import pytest
import stripe
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from accounts.models import User
from billing.models import BillingAlert, PlanChange, WebhookDelivery
from billing.webhook_queue import delivery_process, process_due
from tests.billing import stripe_fakes as sf
from tests.helpers import PASSWORD

pytestmark = pytest.mark.django_db

LIST = "/admin/billing/webhookdelivery/"


@pytest.fixture
def failed(deliver, fake_stripe, catalog, customer) -> WebhookDelivery:
    """A delivery that failed for good: its subscription's customer is gone at Stripe."""
    gone = sf.customer(email=customer.email)
    sub = sf.subscription(cus=gone, prc=catalog["flowkit_monthly"])  # never added
    assert deliver(sf.event("customer.subscription.updated", sub)).status_code == 200
    delivery = WebhookDelivery.objects.get()
    assert delivery.state == WebhookDelivery.State.FAILED
    return delivery


@pytest.fixture
def viewer(roles) -> User:
    """Staff who may view deliveries but not process them again."""
    user = User.objects.create_user("viewer@smartflowsystems.com", PASSWORD, is_staff=True)
    group = Group.objects.create(name="Delivery viewers")
    group.permissions.add(
        *Group.objects.get(name="Billing admin").permissions.filter(codename="view_webhookdelivery")
    )
    user.groups.add(group)
    return user


def _actions(client) -> set[str]:
    form = client.get(LIST).context["action_form"]
    return {value for value, _label in form.fields["action"].choices} if form else set()


def _tasks_for(delivery: WebhookDelivery) -> int:
    # Tests process with process_due (not through the queue): count what was enqueued.
    tasks = DBTaskResult.objects.filter(task_path="billing.tasks.webhook_process")
    return sum(t.args_kwargs["args"] == [delivery.pk] for t in tasks)


def test_the_list_shows_state_customer_and_error_and_filters_by_state(
    client, billing_admin, failed
):
    client.force_login(billing_admin)

    page = client.get(LIST, {"state__exact": "failed"})
    none = client.get(LIST, {"state__exact": "processed"})

    assert page.status_code == 200
    body = page.content.decode()
    assert failed.event_id in body
    assert failed.customer_key in body
    assert "customer.subscription.updated" in body
    assert "InvalidRequestError" in body
    assert failed.event_id not in none.content.decode()
    found = client.get(LIST, {"q": failed.customer_key}).context["cl"].result_count
    assert found == 1


def test_nobody_adds_edits_or_deletes_a_delivery(client, staff_user, failed):
    client.force_login(staff_user)  # a superuser

    assert client.get(f"{LIST}add/").status_code == 403
    assert client.get(f"{LIST}{failed.pk}/delete/").status_code == 403
    client.post(f"{LIST}{failed.pk}/change/", {"state": "processed"})

    failed.refresh_from_db()
    assert failed.state == WebhookDelivery.State.FAILED


def test_the_detail_shows_the_body_escaped_and_links_the_alert(client, billing_admin, failed):
    failed.trigger.body = '{"id": "evt_x", "note": "<script>alert(1)</script>"}'
    failed.trigger.save()
    alert = BillingAlert.objects.get(stripe_event_id=failed.event_id)
    client.force_login(billing_admin)

    body = client.get(f"{LIST}{failed.pk}/change/").content.decode()

    # Pretty-printed (one key a line, indented) and escaped.
    assert "\n  &quot;note&quot;: &quot;&lt;script&gt;alert(1)&lt;/script&gt;&quot;" in body
    assert "<script>alert(1)" not in body
    assert f'href="/admin/billing/billingalert/{alert.pk}/change/"' in body
    assert "Process again" in body


def test_process_again_from_the_list_queues_them_and_is_logged(client, billing_admin, failed):
    client.force_login(billing_admin)
    queued_before = _tasks_for(failed)

    response = client.post(
        LIST,
        {"action": "process_again_action", ACTION_CHECKBOX_NAME: [str(failed.pk)], "index": "0"},
    )

    assert response.status_code == 302
    failed.refresh_from_db()
    assert (failed.state, failed.attempts) == (WebhookDelivery.State.PENDING, 0)
    assert _tasks_for(failed) == queued_before + 1
    entry = LogEntry.objects.get(object_id=str(failed.pk))
    assert entry.user == billing_admin
    assert "Process again" in entry.get_change_message()


def test_the_detail_button_queues_a_delivery_that_gave_up_and_it_is_processed(
    client, billing_admin, deliver, fake_stripe, catalog, payer, customer
):
    sub = sf.subscription(cus=payer, prc=catalog["flowkit_monthly"])
    fake_stripe.add(sub)
    fake_stripe.fail = stripe.APIError("Stripe is down")
    deliver(sf.event("customer.subscription.created", sub))
    WebhookDelivery.objects.update(
        next_attempt_at=timezone.now(), retry_until=timezone.now() - timedelta(seconds=1)
    )
    assert delivery_process(WebhookDelivery.objects.get().pk) == "gave up"
    fake_stripe.fail = None  # Stripe is back
    client.force_login(billing_admin)

    delivery = WebhookDelivery.objects.get()
    response = client.post(f"{LIST}{delivery.pk}/process-again/")

    assert response.status_code == 302
    assert response["Location"] == f"{LIST}{delivery.pk}/change/"
    assert process_due() == 1
    customer.refresh_from_db()
    assert customer.plan == "flowkit"
    assert PlanChange.objects.count() == 1
    entry = LogEntry.objects.get(object_id=str(delivery.pk))
    assert "Gave up" in entry.get_change_message()


def test_the_button_answers_only_post(client, billing_admin, failed):
    client.force_login(billing_admin)

    assert client.get(f"{LIST}{failed.pk}/process-again/").status_code == 405
    failed.refresh_from_db()
    assert failed.state == WebhookDelivery.State.FAILED


def test_the_button_needs_a_csrf_token(billing_admin, failed):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(billing_admin)

    assert strict.post(f"{LIST}{failed.pk}/process-again/").status_code == 403
    failed.refresh_from_db()
    assert failed.state == WebhookDelivery.State.FAILED


def test_staff_without_the_permission_see_neither_action_nor_button_and_are_refused(
    client, viewer, failed
):
    client.force_login(viewer)
    queued_before = _tasks_for(failed)

    assert client.get(LIST).status_code == 200
    assert "process_again_action" not in _actions(client)
    detail = client.get(f"{LIST}{failed.pk}/change/").content.decode()
    assert "process-again-form" not in detail
    forged = client.post(
        LIST,
        {"action": "process_again_action", ACTION_CHECKBOX_NAME: [str(failed.pk)], "index": "0"},
    )
    button = client.post(f"{LIST}{failed.pk}/process-again/")

    assert forged.status_code in (200, 302)
    assert button.status_code == 403
    failed.refresh_from_db()
    assert failed.state == WebhookDelivery.State.FAILED
    assert _tasks_for(failed) == queued_before
    assert not LogEntry.objects.exists()


def test_the_billing_admin_role_may_view_and_process_again_and_support_neither(
    billing_admin, support_user
):
    assert billing_admin.has_perm("billing.view_webhookdelivery")
    assert billing_admin.has_perm("billing.process_again")
    assert not billing_admin.has_perm("billing.change_webhookdelivery")
    assert not support_user.has_perm("billing.view_webhookdelivery")
    assert not support_user.has_perm("billing.process_again")
