from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_staff_see_the_user_list_with_plan(client, staff_user, customer):
    client.force_login(staff_user)

    response = client.get("/admin/accounts/user/")

    assert response.status_code == 200
    body = response.content.decode()
    assert customer.email in body
    assert "Starter" in body


def test_admin_user_list_filters_by_plan_and_searches_by_phone(client, staff_user, customer):
    customer.phone = "+447911123456"
    customer.plan = "flowkit"
    customer.save()
    client.force_login(staff_user)

    by_plan = client.get("/admin/accounts/user/", {"plan__exact": "flowkit"})
    by_phone = client.get("/admin/accounts/user/", {"q": "7911123456"})

    assert list(by_plan.context["cl"].result_list) == [customer]
    assert list(by_phone.context["cl"].result_list) == [customer]


def test_non_staff_are_sent_to_the_admin_login(client, outsider):
    client.force_login(outsider)

    response = client.get("/admin/accounts/user/")

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_createsuperuser_works_with_email(db):
    from django.core.management import call_command

    from accounts.models import User

    call_command("createsuperuser", "--noinput", "--email", "Boss@SmartFlowSystems.com")

    assert User.objects.get().email == "boss@smartflowsystems.com"
