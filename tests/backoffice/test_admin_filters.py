"""Change lists and filter values they cannot apply: the list without them and a message,
never a 500 (nor Django's silent redirect to ?e=1)."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.db import models
from django.urls import reverse

pytestmark = pytest.mark.django_db

NOTICE = "These filters could not be applied"


def _changelists() -> list[tuple[str, str | None, list[str]]]:
    """(changelist URL name, date_hierarchy, date fields) of every registered ModelAdmin."""
    found = []
    for model, model_admin in admin.site._registry.items():
        dates = [f.name for f in model._meta.concrete_fields if isinstance(f, models.DateField)]
        name = f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist"
        found.append((name, model_admin.date_hierarchy, dates))
    return found


CHANGELISTS = _changelists()


@pytest.mark.parametrize(
    "path", ["/admin/billing/planchange/", "/admin/onboarding/onboardingmessage/"]
)
def test_a_year_out_of_range_in_the_date_hierarchy_shows_the_list_with_a_message(
    client, staff_user, path
):
    client.force_login(staff_user)

    response = client.get(path, {"created_at__year": "999999999999", "q": "x"})

    assert response.status_code == 200
    body = response.content.decode()
    assert NOTICE in body
    assert "created_at__year" in body
    assert response.context["cl"].query == "x"  # the search is kept; only filters go


@pytest.mark.parametrize(
    "params",
    [
        {"__year": "9999"},  # the year after it does not exist
        {"__year": "9999", "__month": "12", "__day": "31"},
        {"__year": "2024", "__month": "2", "__day": "30"},
        {"__year": "-1"},
        {"__year": "twenty"},
    ],
    ids=["9999", "9999-12-31", "feb-30", "negative", "word"],
)
def test_every_date_hierarchy_survives_impossible_dates(client, staff_user, params):
    client.force_login(staff_user)
    hierarchies = [(n, h) for n, h, _ in CHANGELISTS if h]
    assert hierarchies  # plan changes, onboarding messages, axes' attempts

    for name, field in hierarchies:
        query = {f"{field}{suffix}": value for suffix, value in params.items()}
        response = client.get(reverse(name), query)

        assert response.status_code == 200, (name, query)
        assert NOTICE in response.content.decode(), (name, query)


@pytest.mark.parametrize(
    ("name", "hierarchy", "dates"), CHANGELISTS, ids=[c[0] for c in CHANGELISTS]
)
def test_every_date_filter_of_every_list_survives_malformed_values(
    client, staff_user, name, hierarchy, dates
):
    client.force_login(staff_user)

    for field in dates:
        for query in ({f"{field}__year": "999999999999"}, {f"{field}__gte": "not-a-date"}):
            response = client.get(reverse(name), query)

            assert response.status_code == 200, (name, query)
            assert NOTICE in response.content.decode(), (name, query)


def test_a_valid_filter_still_filters(client, staff_user):
    client.force_login(staff_user)

    response = client.get("/admin/billing/planchange/", {"created_at__year": "2024"})

    assert response.status_code == 200
    assert NOTICE not in response.content.decode()


def test_a_value_the_database_refuses_shows_the_list_with_a_message(client, staff_user):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's own check of the value (SQLite has no regex of its own)")
    client.force_login(staff_user)

    response = client.get("/admin/onboarding/onboardingmessage/", {"recipient__regex": "("})

    assert response.status_code == 200
    assert NOTICE in response.content.decode()
