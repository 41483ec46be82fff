from __future__ import annotations

import csv
import io

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from djstripe.models import Customer

from accounts.models import User

pytestmark = pytest.mark.django_db


def test_export_writes_the_selected_users_as_csv(client, billing_admin, customer, subscribe):
    subscribe("flowkit")
    other = User.objects.create_user("=cmd@example.com")
    User.objects.create_user("not-selected@example.com")
    client.force_login(billing_admin)

    response = client.post(
        "/admin/accounts/user/",
        {"action": "export_csv", ACTION_CHECKBOX_NAME: [customer.pk, other.pk], "index": "0"},
    )

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["email", "plan", "billing status", "stripe customer", "joined"]
    by_email = {row[0]: row for row in rows[1:]}
    assert set(by_email) == {"customer@example.com", "'=cmd@example.com"}
    assert by_email["customer@example.com"][1:4] == [
        "flowkit",
        "active",
        Customer.objects.get(subscriber=customer).id,
    ]
    assert by_email["customer@example.com"][4] == customer.date_joined.isoformat()
    assert by_email["'=cmd@example.com"][1:4] == ["starter", "none", ""]
