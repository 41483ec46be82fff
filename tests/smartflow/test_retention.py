"""smartflow/retention.py: what is past its period is purged by the worker, in batches,
once per window, recorded and shown on the admin index."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from billing.tasks import overrides_sweep
from onboarding.models import OnboardingMessage
from smartflow import retention, workers
from smartflow.models import RetentionRun

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


def _task(status: str, *, finished_ago: timedelta | None) -> DBTaskResult:
    result = overrides_sweep.enqueue()
    finished_at = timezone.now() - finished_ago if finished_ago is not None else None
    DBTaskResult.objects.filter(pk=result.id).update(status=status, finished_at=finished_at)
    return DBTaskResult.objects.get(pk=result.id)


def _login_record(model, username: str, ago: timedelta):
    common = {"user_agent": "test", "ip_address": "192.0.2.1", "username": username}
    common["http_accept"] = common["path_info"] = ""
    if model is AccessAttempt:
        row = model.objects.create(**common, get_data="", post_data="", failures_since_start=1)
    else:
        row = model.objects.create(**common)
    model.objects.filter(pk=row.pk).update(attempt_time=timezone.now() - ago)
    return row


def _message(user, trigger: str, *, status: str = "sent", sent_ago: timedelta | None = None):
    return OnboardingMessage.objects.create(
        user=user,
        channel="email",
        template="payment_failed",
        plan="flowkit",
        trigger=trigger,
        status=status,
        recipient=user.email,
        sent_at=timezone.now() - sent_ago if sent_ago is not None else None,
        context={"amount_due": 4900, "invoice_id": "in_1"},
    )


def test_finished_task_rows_past_their_period_are_deleted_and_the_rest_kept(settings):
    settings.RETENTION_TASK_DAYS = 14
    old_success = _task("SUCCESSFUL", finished_ago=15 * DAY)
    old_failure = _task("FAILED", finished_ago=15 * DAY)
    recent = _task("SUCCESSFUL", finished_ago=13 * DAY)
    waiting = _task("READY", finished_ago=None)
    DBTaskResult.objects.filter(pk=waiting.pk).update(enqueued_at=timezone.now() - 30 * DAY)

    assert retention.retention_purge()["tasks"] == 2

    left = set(DBTaskResult.objects.values_list("pk", flat=True))
    assert left == {recent.pk, waiting.pk}
    assert old_success.pk not in left
    assert old_failure.pk not in left


def test_login_records_past_their_period_are_deleted_but_a_lockout_in_force_stays(settings):
    settings.RETENTION_LOGIN_RECORD_DAYS = 1
    settings.AXES_COOLOFF_TIME = timedelta(days=3)
    for model in (AccessAttempt, AccessLog, AccessFailureLog):
        _login_record(model, "old@example.com", 5 * DAY)
        _login_record(model, "new@example.com", timedelta(hours=1))
    locked = _login_record(AccessAttempt, "locked@example.com", 2 * DAY)

    assert retention.retention_purge()["login_records"] == 3

    for model in (AccessLog, AccessFailureLog):
        assert list(model.objects.values_list("username", flat=True)) == ["new@example.com"]
    # Two days old, past the period, but its three-day lockout still holds.
    assert set(AccessAttempt.objects.values_list("username", flat=True)) == {
        "new@example.com",
        locked.username,
    }


def test_sent_messages_past_their_period_lose_their_words_and_keep_the_record(settings, customer):
    settings.RETENTION_MESSAGE_BODY_DAYS = 180
    old = _message(customer, "old", sent_ago=181 * DAY)
    recent = _message(customer, "recent", sent_ago=179 * DAY)
    failed = _message(customer, "failed", status="failed")
    OnboardingMessage.objects.filter(pk=failed.pk).update(created_at=timezone.now() - 400 * DAY)

    assert retention.retention_purge()["message_bodies"] == 1
    assert retention.retention_purge()["message_bodies"] == 0  # once

    old.refresh_from_db()
    assert old.context == {}
    assert old.body_purged_at is not None
    # The record that it was sent stays.
    assert (old.status, old.recipient, old.template) == ("sent", customer.email, "payment_failed")
    assert old.sent_at is not None
    for kept in (recent, failed):
        kept.refresh_from_db()
        assert kept.context == {"amount_due": 4900, "invoice_id": "in_1"}
        assert kept.body_purged_at is None


def test_a_backlog_larger_than_a_batch_is_purged_whole(settings, monkeypatch, customer):
    monkeypatch.setattr(retention, "BATCH", 2)
    for n in range(5):
        _task("SUCCESSFUL", finished_ago=30 * DAY)
        _message(customer, f"m{n}", sent_ago=365 * DAY)

    purged = retention.retention_purge()

    assert (purged["tasks"], purged["message_bodies"]) == (5, 5)
    assert not DBTaskResult.objects.exists()
    assert not OnboardingMessage.objects.filter(body_purged_at__isnull=True).exists()


def test_the_worker_queues_one_purge_per_window_and_the_task_records_it(customer):
    _task("SUCCESSFUL", finished_ago=30 * DAY)
    _message(customer, "old", sent_ago=365 * DAY)

    workers.recover()
    workers.recover()  # a second worker, or the next minute: already queued

    [run] = RetentionRun.objects.all()
    [queued] = DBTaskResult.objects.filter(task_path="smartflow.retention.retention_run")
    assert queued.status == "READY"
    assert queued.args_kwargs["args"] == [run.pk]
    assert run.finished_at is None

    retention.retention_run.call(run.pk)

    run.refresh_from_db()
    assert run.finished_at is not None
    assert run.purged == {"tasks": 1, "webhook_bodies": 0, "login_records": 0, "message_bodies": 1}
    assert run.total == 2


def test_the_next_window_gets_its_own_purge(settings):
    settings.RETENTION_EVERY_HOURS = 24
    now = timezone.now()

    first = retention.retention_enqueue_if_due(now=now)
    assert retention.retention_enqueue_if_due(now=now) is None
    later = retention.retention_enqueue_if_due(now=now + DAY)

    assert first is not None
    assert later is not None
    assert later.window_start - first.window_start == DAY


def test_a_purge_run_twice_adds_up_and_touches_nothing_twice(customer):
    run = retention.retention_enqueue_if_due()
    assert run is not None
    _message(customer, "old", sent_ago=365 * DAY)

    retention.retention_run.call(run.pk)
    retention.retention_run.call(run.pk)  # queued again after its worker died

    run.refresh_from_db()
    assert run.purged["message_bodies"] == 1


def test_the_admin_index_shows_when_retention_last_ran(admin_client):
    page = admin_client.get("/admin/").content.decode()
    assert "not run yet (a worker runs it when it starts)" in page

    run = retention.retention_enqueue_if_due()
    assert run is not None
    RetentionRun.objects.filter(pk=run.pk).update(
        finished_at=datetime(2026, 3, 1, 4, 5, tzinfo=UTC),
        purged={"tasks": 40, "message_bodies": 2},
    )

    page = admin_client.get("/admin/").content.decode()
    assert "last ran at 2026-03-01 04:05 UTC (42 rows purged)" in page
