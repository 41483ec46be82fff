"""The index leads with the day's work; dj-stripe's model pages sit below it under one
"Stripe data" heading, read-only for everyone but superusers."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.django_db


def test_the_index_leads_with_the_days_work(client, staff_user):
    client.force_login(staff_user)

    body = client.get("/admin/").content.decode()

    order = [
        body.index(marker)
        for marker in (
            'id="needs-attention"',
            'id="dunning-count"',
            'id="recent-changes"',
            "<caption>Users per plan</caption>",
            'id="mrr"',
            'id="background-work"',
            'class="app-accounts module',
            'class="app-djstripe module',
        )
    ]
    assert order == sorted(order)


def test_djstripe_is_one_stripe_data_heading_after_the_back_offices_apps(client, staff_user):
    client.force_login(staff_user)

    response = client.get("/admin/")

    apps = response.context["app_list"]
    assert apps[-1]["app_label"] == "djstripe"
    assert apps[-1]["name"] == "Stripe data"
    assert len(apps[-1]["models"]) > 30
    assert [a["name"] for a in apps].count("Stripe data") == 1
    assert "Djstripe" not in response.content.decode()


def test_stripe_data_has_no_add_button_but_for_superusers(client, billing_admin, staff_user):
    client.force_login(billing_admin)
    page = client.get("/admin/").content.decode()
    stripe_pages = client.get("/admin/djstripe/").content.decode()

    assert "Stripe data" in page
    assert not re.search(r'href="/admin/djstripe/[a-z]+/add/"', page + stripe_pages)
    assert client.get("/admin/djstripe/customer/add/").status_code == 403
    assert client.get("/admin/djstripe/customer/").status_code == 200  # still readable

    client.force_login(staff_user)
    assert re.search(r'href="/admin/djstripe/[a-z]+/add/"', client.get("/admin/").content.decode())


def test_dates_are_in_one_format_in_lists_and_inlines(client, staff_user, customer):
    from datetime import UTC, datetime

    from billing.models import PlanChange

    PlanChange.objects.create(
        user=customer, old_plan="starter", new_plan="flowkit", source="override",
        created_at=datetime(2026, 1, 31, 14, 5, tzinfo=UTC),
    )  # fmt: skip
    customer.date_joined = datetime(2025, 12, 1, 9, 30, tzinfo=UTC)
    # The list's column is the user's copy, which plan_refresh writes with each change.
    customer.last_plan_change_at = datetime(2026, 1, 31, 14, 5, tzinfo=UTC)
    customer.save()
    client.force_login(staff_user)

    listing = client.get("/admin/accounts/user/").content.decode()
    page = client.get(f"/admin/accounts/user/{customer.pk}/change/").content.decode()
    index = client.get("/admin/").content.decode()

    assert "2025-12-01 09:30" in listing
    assert "2026-01-31 14:05" in listing
    assert "2026-01-31 14:05" in page
    assert "2025-12-01 09:30" in page
    assert "2026-01-31 14:05" in index
    for body in (listing, page, index):
        assert "Jan 2026" not in body
        assert "31/01/2026" not in body
