"""'Delete my account': cancelled at Stripe with no new charge, the Stripe customer
deleted, nothing personal left here but what docs/personal-data.md says is kept."""

from __future__ import annotations

from typing import Any

import pytest
import stripe
from django.contrib.sessions.models import Session
from django_tasks_db.models import DBTaskResult
from djstripe.models import Charge, Customer, Invoice

from accounts.models import User
from billing.models import PlanChange, WebhookDelivery
from onboarding.models import OnboardingMessage
from onboarding.outbox import onboarding_welcome_enqueue
from privacy.erasure import account_erase
from privacy.models import Erasure
from privacy.tasks import erasure_webhooks_sweep
from tests.privacy.helpers import NAME, PASSWORD, PHONE, deliver_events, rows_mentioning

pytestmark = pytest.mark.django_db


def _sandbox_invoices(customer_id: str) -> list[dict[str, Any]]:
    return [i.to_dict() for i in stripe.Invoice.list(customer=customer_id).auto_paging_iter()]


def test_a_wrong_password_deletes_nothing(client, subscriber):
    response = client.post("/profile/delete/", {"password": "not-my-password"})

    subscriber.refresh_from_db()
    assert response.status_code == 200
    assert "That is not your password. Nothing was deleted." in response.content.decode()
    assert subscriber.email == "ada@example.com"
    assert subscriber.is_active
    assert not Erasure.objects.exists()


def test_deleting_the_account_leaves_nothing_personal_but_what_is_documented(
    client, subscriber, django_capture_on_commit_callbacks
):
    customer_id = subscriber.stripe_customer_id
    [sub] = stripe.Subscription.list(customer=customer_id).data
    invoices_before = _sandbox_invoices(customer_id)
    ledger_before = PlanChange.objects.filter(user=subscriber).count()
    assert rows_mentioning("ada@example.com", PHONE, NAME)  # the scan finds them

    page = client.get("/profile/delete/")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/profile/delete/", {"password": PASSWORD})
    # Stripe's own webhooks of the deletion arrive afterwards: the old details come with
    # customer.deleted. The sweeps account_erase queued redact them.
    deliver_events(client)
    erasure = Erasure.objects.get()
    sweeps = DBTaskResult.objects.filter(task_path="privacy.tasks.erasure_webhooks_sweep")
    erasure_webhooks_sweep.call(erasure.pk)

    subscriber.refresh_from_db()
    assert page.status_code == 200
    assert response.status_code == 302
    assert response["Location"] == "/"
    # At Stripe: cancelled at once, no new invoice (no proration, no final charge), and
    # the customer deleted; its invoices are Stripe's to keep.
    assert stripe.Subscription.retrieve(sub.id).status == "canceled"
    assert len(_sandbox_invoices(customer_id)) == len(invoices_before)
    with pytest.raises(stripe.InvalidRequestError):
        stripe.Customer.modify(customer_id, name="x")
    # Here: the user row kept for the ledger's links, with nothing personal.
    assert subscriber.email == f"erased-{subscriber.pk}@erased.invalid"
    assert (subscriber.phone, subscriber.sms_opt_in, subscriber.is_active) == ("", False, False)
    assert not subscriber.has_usable_password()
    assert subscriber.plan == "starter"
    assert not Session.objects.exists()
    assert client.get("/profile/").status_code == 302  # signed out
    assert not OnboardingMessage.objects.filter(user=subscriber).exists()
    # Kept: the plan ledger (with the end recorded) and the payment records.
    assert PlanChange.objects.filter(user=subscriber).count() == ledger_before + 1
    assert PlanChange.objects.filter(user=subscriber).first().reason == (
        "Account erased at the customer's request"
    )
    assert Invoice.objects.filter(customer__id=customer_id).count() == len(invoices_before)
    assert Charge.objects.filter(customer__id=customer_id).count() == 1
    assert Customer.objects.get(id=customer_id).email == ""
    # docs/personal-data.md: nothing of the person's details is kept in our database.
    assert rows_mentioning("ada@example.com", PHONE, NAME, "12 Analytical Row") == []
    # Logged for staff.
    assert erasure.state == Erasure.State.DONE
    assert erasure.requested_by is None
    assert erasure.stripe_customer_ids == [customer_id]
    assert any(f"cancelled subscription {sub.id}" in step for step in erasure.steps)
    assert any(f"deleted customer {customer_id}" in step for step in erasure.steps)
    assert sweeps.count() == 2
    # Stripe's late events about the deleted customer were processed without error.
    assert set(WebhookDelivery.objects.values_list("state", flat=True)) == {"processed"}


class _StripeDown:
    """stripe-python's HTTP client, with Stripe unreachable."""

    name = "down"

    def request_with_retries(self, *args: Any, **kwargs: Any) -> Any:
        raise stripe.APIConnectionError("Could not connect to Stripe (test).")

    def request_stream_with_retries(self, *args: Any, **kwargs: Any) -> Any:
        raise stripe.APIConnectionError("Could not connect to Stripe (test).")


def test_with_stripe_down_nothing_is_erased_and_asking_again_finishes(client, subscriber):
    stripe.default_http_client, sandbox = _StripeDown(), stripe.default_http_client
    refused = client.post("/profile/delete/", {"password": PASSWORD})
    subscriber.refresh_from_db()
    stopped = Erasure.objects.get()
    still_signed_in = client.get("/profile/").status_code

    stripe.default_http_client = sandbox
    done = client.post("/profile/delete/", {"password": PASSWORD})

    assert refused.status_code == 503
    assert "Stripe) did not answer" in refused.content.decode()
    assert subscriber.email == "ada@example.com"
    assert subscriber.is_active
    assert subscriber.phone == PHONE
    assert subscriber.plan == "flowkit"
    assert stopped.state == Erasure.State.STRIPE_FAILED
    assert "Could not connect" in stopped.last_error
    assert still_signed_in == 200
    assert done.status_code == 302
    assert Erasure.objects.get().state == Erasure.State.DONE
    assert Erasure.objects.get().attempts == 2


def test_erasing_again_is_safe_and_changes_nothing(subscriber):
    first = account_erase(user=subscriber)
    steps = list(first.steps)

    again = account_erase(user=User.objects.get(pk=subscriber.pk))

    assert again.pk == first.pk
    assert again.steps == steps
    assert Erasure.objects.count() == 1


def test_a_customer_with_no_stripe_customer_is_erased_too(client, customer):
    client.force_login(customer)

    response = client.post("/profile/delete/", {"password": PASSWORD}, follow=True)

    customer.refresh_from_db()
    assert response.redirect_chain == [("/", 302)]
    assert "Your account and your personal data have been deleted." in (response.content.decode())
    assert customer.email == f"erased-{customer.pk}@erased.invalid"
    assert Erasure.objects.get().stripe_customer_ids == []


def test_a_staff_account_is_not_deleted_from_the_profile(client, staff_user):
    client.force_login(staff_user)

    response = client.post("/profile/delete/", {"password": PASSWORD})

    staff_user.refresh_from_db()
    assert response.status_code == 200
    assert "closed by a superuser in the admin" in response.content.decode()
    assert staff_user.is_active
    assert not Erasure.objects.exists()


def test_nothing_is_sent_to_an_erased_account(subscriber):
    account_erase(user=subscriber)
    subscriber.refresh_from_db()

    queued = onboarding_welcome_enqueue(user=subscriber, plan="flowkit", trigger="late:1")

    assert queued == []
    assert not OnboardingMessage.objects.filter(user=subscriber).exists()
