"""/healthz and /healthz/ready (smartflow/health.py): anyone learns only whether the
service is up; staff and the HEALTHZ_TOKEN bearer also get the workers and backlogs;
readiness says "degraded" when no worker is alive or work waits too long."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from billing.models import WebhookDelivery
from billing.tasks import overrides_sweep
from smartflow import workers

pytestmark = pytest.mark.django_db

TOKEN = "hz-0123456789abcdef"


@pytest.fixture(autouse=True)
def _token(settings):
    settings.HEALTHZ_TOKEN = TOKEN


def _delivery(
    n: int,
    state: str,
    *,
    received_ago: timedelta = timedelta(0),
    retry_in: timedelta | None = None,
) -> None:
    now = timezone.now()
    WebhookDelivery.objects.create(
        event_id=f"evt_{state}_{n}",
        event_type="invoice.paid",
        state=state,
        received_at=now - received_ago,
        retry_until=now - received_ago + timedelta(days=3),
        next_attempt_at=now + retry_in if retry_in is not None else None,
    )


def _beat(worker_id: str, ago: timedelta = timedelta(0)) -> None:
    workers.heartbeat(worker_id, now=timezone.now() - ago)


def _get(client, path: str, token: str | None = TOKEN):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return client.get(path, **headers)


# --- Who sees what ----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/healthz", "/healthz/ready"])
def test_an_anonymous_caller_gets_only_the_status(client, path):
    _beat("w1")
    overrides_sweep.enqueue()
    _delivery(1, "failed")

    response = client.get(path)

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "w1" not in response.content.decode()


def test_an_anonymous_healthz_costs_one_query(client, django_assert_num_queries):
    with django_assert_num_queries(1):
        assert client.get("/healthz").json() == {"status": "ok"}


def test_the_token_bearer_gets_the_workers_and_backlogs(client):
    _beat("w1")

    body = _get(client, "/healthz").json()

    assert [(w["id"], w["host"]) for w in body["workers"]] == [("w1", body["workers"][0]["host"])]
    assert body["workers"][0]["host"]
    assert {"backlog", "oldest_task_age_seconds", "webhooks"} <= body.keys()


def test_a_staff_login_gets_the_details(client, staff_user):
    _beat("w1")
    client.force_login(staff_user)

    assert [w["id"] for w in client.get("/healthz").json()["workers"]] == ["w1"]


def test_a_customer_login_gets_only_the_status(client, customer):
    _beat("w1")
    client.force_login(customer)

    assert client.get("/healthz").json() == {"status": "ok"}


@pytest.mark.parametrize("path", ["/healthz", "/healthz/ready"])
def test_a_wrong_token_is_refused(client, path):
    response = _get(client, path, token="hz-0123456789abcdeX")

    assert response.status_code == 401
    assert response.json() == {"status": "unauthorised"}


def test_with_no_token_set_no_bearer_is_accepted(client, settings):
    settings.HEALTHZ_TOKEN = ""

    assert _get(client, "/healthz", token="anything").status_code == 401
    assert _get(client, "/healthz", token=None).json() == {"status": "ok"}


def test_a_non_ascii_token_is_refused_not_a_500(client):
    response = client.get("/healthz", HTTP_AUTHORIZATION="Bearer hz-ü")

    assert response.status_code == 401


# --- The details ------------------------------------------------------------------------


def test_healthz_gives_the_webhook_backlog_its_oldest_age_and_the_failures(client):
    _delivery(1, "pending", received_ago=timedelta(minutes=10))
    _delivery(2, "pending")
    _delivery(3, "processed", received_ago=timedelta(hours=5))  # not waiting
    _delivery(4, "failed")
    _delivery(5, "gave_up")
    _delivery(6, "gave_up")

    response = _get(client, "/healthz")

    assert response.status_code == 200
    hooks = response.json()["webhooks"]
    assert (hooks["pending"], hooks["failed"], hooks["gave_up"]) == (2, 1, 2)
    assert 600 <= hooks["oldest_pending_age_seconds"] < 3600


def test_a_webhook_backlog_does_not_make_the_web_unhealthy(client):
    _delivery(1, "pending", received_ago=timedelta(days=1))

    response = _get(client, "/healthz")

    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_healthz_costs_the_same_queries_with_one_delivery_or_many(
    client, django_assert_num_queries
):
    _delivery(0, "pending")
    with django_assert_num_queries(9):
        assert _get(client, "/healthz").status_code == 200
    for n in range(1, 30):
        _delivery(n, ("pending", "failed", "gave_up", "processed")[n % 4])
    with django_assert_num_queries(9):
        assert _get(client, "/healthz").status_code == 200


# --- Readiness --------------------------------------------------------------------------


def test_ready_is_ok_with_a_live_worker_and_no_old_work(client):
    _beat("w1", ago=timedelta(seconds=20))
    overrides_sweep.enqueue()
    _delivery(1, "pending", received_ago=timedelta(seconds=30))

    response = _get(client, "/healthz/ready")

    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["problems"] == []


def test_ready_is_degraded_with_no_worker(client):
    response = client.get("/healthz/ready")

    assert response.status_code == 503
    assert response.json() == {"status": "degraded"}
    assert _get(client, "/healthz/ready").json()["problems"] == ["no worker has a live heartbeat"]


def test_ready_is_degraded_when_every_heartbeat_is_stale(client, settings):
    _beat("gone", ago=timedelta(seconds=settings.WORKER_STALE_SECONDS + 5))

    response = _get(client, "/healthz/ready")

    assert response.status_code == 503
    assert response.json()["problems"] == ["no worker has a live heartbeat"]
    assert client.get("/healthz").status_code == 200  # the web itself still serves


def test_ready_is_degraded_with_a_due_delivery_older_than_the_threshold(client, settings):
    settings.HEALTHZ_BACKLOG_MAX_SECONDS = 300
    _beat("w1")
    _delivery(1, "pending", received_ago=timedelta(minutes=6))

    response = _get(client, "/healthz/ready")

    assert response.status_code == 503
    assert response.json()["status"] == "degraded"
    [problem] = response.json()["problems"]
    assert problem.startswith("the oldest due webhook delivery has waited 36")


def test_a_delivery_waiting_for_its_planned_retry_is_not_late(client, settings):
    # Received two days ago, failed, retried in an hour: on schedule, not a backlog.
    settings.HEALTHZ_BACKLOG_MAX_SECONDS = 300
    _beat("w1")
    _delivery(1, "pending", received_ago=timedelta(days=2), retry_in=timedelta(hours=1))

    assert _get(client, "/healthz/ready").status_code == 200


def test_a_delivery_processed_again_counts_from_when_staff_queued_it(client, settings):
    from billing.webhook_queue import process_again

    settings.HEALTHZ_BACKLOG_MAX_SECONDS = 300
    _beat("w1")
    _delivery(1, "gave_up", received_ago=timedelta(days=4))
    process_again(WebhookDelivery.objects.all())
    # Queued just now; the task backlog is the same age.
    assert _get(client, "/healthz/ready").status_code == 200


def test_ready_is_degraded_with_a_due_task_older_than_the_threshold(client, settings):
    from django_tasks_db.models import DBTaskResult

    settings.HEALTHZ_BACKLOG_MAX_SECONDS = 300
    _beat("w1")
    task = overrides_sweep.enqueue()
    DBTaskResult.objects.filter(pk=task.id).update(
        enqueued_at=timezone.now() - timedelta(minutes=10)
    )

    response = _get(client, "/healthz/ready")

    assert response.status_code == 503
    assert response.json()["problems"][0].startswith("the oldest due task has waited 60")


def test_ready_is_unavailable_without_the_database(client, monkeypatch):
    from django.db import DatabaseError
    from django.db.backends.utils import CursorWrapper

    def down(self, sql, params=None):
        raise DatabaseError("connection refused")

    monkeypatch.setattr(CursorWrapper, "execute", down)
    response = _get(client, "/healthz/ready")

    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "unreachable"}
