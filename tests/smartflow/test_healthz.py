"""/healthz (smartflow/health.py): the Stripe webhook backlog beside the task queue, at a
fixed number of queries."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from billing.models import WebhookDelivery

pytestmark = pytest.mark.django_db


def _delivery(n: int, state: str, *, received_ago: timedelta = timedelta(0)) -> None:
    WebhookDelivery.objects.create(
        event_id=f"evt_{state}_{n}",
        event_type="invoice.paid",
        state=state,
        received_at=timezone.now() - received_ago,
    )


def test_healthz_gives_the_webhook_backlog_its_oldest_age_and_the_failures(client):
    _delivery(1, "pending", received_ago=timedelta(minutes=10))
    _delivery(2, "pending")
    _delivery(3, "processed", received_ago=timedelta(hours=5))  # not waiting
    _delivery(4, "failed")
    _delivery(5, "gave_up")
    _delivery(6, "gave_up")

    response = client.get("/healthz")

    assert response.status_code == 200
    hooks = response.json()["webhooks"]
    assert (hooks["pending"], hooks["failed"], hooks["gave_up"]) == (2, 1, 2)
    assert 600 <= hooks["oldest_pending_age_seconds"] < 3600


def test_a_webhook_backlog_does_not_make_the_web_unhealthy(client):
    _delivery(1, "gave_up", received_ago=timedelta(days=4))

    response = client.get("/healthz")

    assert response.status_code == 200 and response.json()["status"] == "ok"
    assert response.json()["webhooks"]["oldest_pending_age_seconds"] is None


def test_healthz_costs_the_same_queries_with_one_delivery_or_many(
    client, django_assert_num_queries
):
    _delivery(0, "pending")
    with django_assert_num_queries(9):
        assert client.get("/healthz").status_code == 200
    for n in range(1, 30):
        _delivery(n, ("pending", "failed", "gave_up", "processed")[n % 4])
    with django_assert_num_queries(9):
        assert client.get("/healthz").status_code == 200
