"""Staff erase a customer's personal data from the user page: permission-gated,
confirmed, one person at a time, and logged read-only under Personal data > Erasures."""

from __future__ import annotations

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME

from accounts.models import User
from privacy.models import Erasure

pytestmark = pytest.mark.django_db

LIST = "/admin/accounts/user/"


def _erase_url(user: User) -> str:
    return f"{LIST}{user.pk}/erase/"


def test_a_billing_admin_erases_a_customer_after_confirming(client, billing_admin, customer):
    client.force_login(billing_admin)

    page = client.get(f"{LIST}{customer.pk}/change/").content.decode()
    confirm = client.get(_erase_url(customer))
    unconfirmed = client.post(_erase_url(customer))
    customer.refresh_from_db()
    email_before_confirming = customer.email
    done = client.post(_erase_url(customer), {"confirm": "yes"}, follow=True)

    customer.refresh_from_db()
    erasure = Erasure.objects.get()
    assert "Erase personal data…" in page
    assert confirm.status_code == 200
    assert "This cannot be undone" in confirm.content.decode()
    assert unconfirmed.status_code == 200
    assert email_before_confirming == "customer@example.com"
    assert f"Erased: the account is now erased-{customer.pk}@erased.invalid" in (
        done.content.decode()
    )
    assert customer.email == f"erased-{customer.pk}@erased.invalid"
    assert not customer.is_active
    assert erasure.requested_by == billing_admin
    assert erasure.state == Erasure.State.DONE


def test_support_may_not_erase(client, support_user, customer):
    client.force_login(support_user)

    page = client.get(f"{LIST}{customer.pk}/change/").content.decode()
    refused = client.post(_erase_url(customer), {"confirm": "yes"})

    customer.refresh_from_db()
    assert "Erase personal data" not in page
    assert refused.status_code == 403
    assert customer.email == "customer@example.com"
    assert not Erasure.objects.exists()


def test_only_a_superuser_erases_a_staff_account(client, billing_admin, support_user, staff_user):
    client.force_login(billing_admin)
    refused = client.post(_erase_url(support_user), {"confirm": "yes"})
    own = client.post(_erase_url(billing_admin), {"confirm": "yes"})
    client.force_login(staff_user)
    allowed = client.post(_erase_url(support_user), {"confirm": "yes"})

    support_user.refresh_from_db()
    assert refused.status_code == own.status_code == 403
    assert allowed.status_code == 302
    assert support_user.email.endswith("@erased.invalid")
    assert not support_user.is_staff


def test_the_action_takes_one_user_to_the_confirmation(client, billing_admin, customer, outsider):
    client.force_login(billing_admin)

    def act(*users: User):
        ids = [str(u.pk) for u in users]
        return client.post(LIST, {"action": "erase_personal_data", ACTION_CHECKBOX_NAME: ids})

    two = act(customer, outsider)
    one = act(customer)

    assert two.status_code == 302
    assert two["Location"] == LIST
    assert not Erasure.objects.exists()
    assert one.status_code == 302
    assert one["Location"] == _erase_url(customer)


def test_the_erasure_log_is_read_only(client, billing_admin, customer, staff_user):
    client.force_login(staff_user)
    client.post(_erase_url(customer), {"confirm": "yes"})
    erasure = Erasure.objects.get()
    client.force_login(billing_admin)

    listed = client.get("/admin/privacy/erasure/")
    shown = client.get(f"/admin/privacy/erasure/{erasure.pk}/change/")
    added = client.get("/admin/privacy/erasure/add/")
    deleted = client.post(f"/admin/privacy/erasure/{erasure.pk}/delete/", {"post": "yes"})

    assert listed.status_code == 200
    assert str(customer.pk) in listed.content.decode()
    assert "the customer" not in listed.content.decode()
    assert shown.status_code == 200
    assert "Anonymised the user row" in shown.content.decode()
    assert added.status_code == 403
    assert deleted.status_code == 403
    assert Erasure.objects.filter(pk=erasure.pk).exists()
