"""smartflow/workers.py: tasks claimed by a worker whose heartbeat stopped run again;
tasks of live workers are left alone. /healthz."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import DatabaseError
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from billing.tasks import overrides_sweep
from smartflow import workers
from smartflow.models import WorkerHeartbeat
from tests.helpers import heartbeat_worker, heartbeat_worker_beating

pytestmark = pytest.mark.django_db


def _claimed(worker_id: str, *, started_ago: timedelta = timedelta(seconds=5)) -> DBTaskResult:
    result = overrides_sweep.enqueue()
    row = DBTaskResult.objects.get(pk=result.id)
    row.claim(worker_id)
    DBTaskResult.objects.filter(pk=row.pk).update(started_at=timezone.now() - started_ago)
    return DBTaskResult.objects.get(pk=row.pk)


def _beat(worker_id: str, ago: timedelta) -> None:
    workers.heartbeat(worker_id, now=timezone.now() - ago)


def test_a_task_of_a_worker_whose_heartbeat_stopped_is_queued_again():
    _beat("dead", timedelta(minutes=3))
    task = _claimed("dead")

    assert workers.orphans_requeue() == [str(task.pk)]

    task.refresh_from_db()
    assert task.status == "READY"
    assert task.started_at is None
    assert task.worker_ids == ["dead"]  # the history stays
    assert DBTaskResult.objects.ready().filter(pk=task.pk).exists()


def test_a_dead_workers_heartbeat_goes_once_its_work_is_queued_again(monkeypatch):
    _beat("dead", timedelta(minutes=3))
    _beat("idle-dead", timedelta(minutes=3))  # died holding nothing
    _beat("racing", timedelta(minutes=3))
    _beat("alive", timedelta(seconds=20))
    task = _claimed("dead")
    racing = _claimed("racing")
    real_filter = DBTaskResult.objects.filter

    def racing_started_again_first(*args, **kwargs):
        # Between the read and the update this one's start moves: it stays RUNNING under
        # its dead worker's name, for the next round, and so does that worker's row.
        if kwargs.get("pk") == racing.pk and "started_at" in kwargs:
            DBTaskResult.objects.filter(pk=racing.pk).update(started_at=timezone.now())
        return real_filter(*args, **kwargs)

    monkeypatch.setattr(DBTaskResult.objects, "filter", racing_started_again_first)
    assert workers.orphans_requeue() == [str(task.pk)]

    assert set(WorkerHeartbeat.objects.values_list("worker_id", flat=True)) == {"alive", "racing"}


def test_a_dead_workers_heartbeat_goes_after_a_day_whatever_its_tasks(monkeypatch):
    _beat("dead-a-day", timedelta(hours=24, minutes=1))
    _beat("dead-for-hours", timedelta(hours=23))
    tasks = [_claimed("dead-a-day"), _claimed("dead-for-hours")]
    real_filter = DBTaskResult.objects.filter

    def started_again_first(*args, **kwargs):
        # Each task's start moves between the read and the update: both stay RUNNING
        # under their dead workers' names.
        if "started_at" in kwargs:
            DBTaskResult.objects.filter(pk=kwargs["pk"]).update(started_at=timezone.now())
        return real_filter(*args, **kwargs)

    monkeypatch.setattr(DBTaskResult.objects, "filter", started_again_first)
    assert workers.orphans_requeue() == []

    assert {t.status for t in DBTaskResult.objects.filter(pk__in=[t.pk for t in tasks])} == {
        "RUNNING"
    }
    assert list(WorkerHeartbeat.objects.values_list("worker_id", flat=True)) == ["dead-for-hours"]


def test_a_task_of_a_live_worker_is_left_alone():
    _beat("alive", timedelta(seconds=20))
    task = _claimed("alive", started_ago=timedelta(hours=1))

    assert workers.orphans_requeue() == []
    task.refresh_from_db()
    assert task.status == "RUNNING"


def test_a_worker_without_heartbeat_is_given_fifteen_minutes():
    recent = _claimed("plain-db-worker", started_ago=timedelta(minutes=5))
    old = _claimed("plain-db-worker", started_ago=timedelta(minutes=16))

    assert workers.orphans_requeue() == [str(old.pk)]
    recent.refresh_from_db()
    assert recent.status == "RUNNING"


def test_a_task_claimed_again_meanwhile_is_not_touched(monkeypatch):
    _beat("dead", timedelta(minutes=3))
    task = _claimed("dead")
    real_filter = DBTaskResult.objects.filter

    def claimed_again_first(*args, **kwargs):
        # Between the read and the update, a live worker claims it afresh.
        if "started_at" in kwargs:
            DBTaskResult.objects.filter(pk=task.pk).update(started_at=timezone.now())
        return real_filter(*args, **kwargs)

    monkeypatch.setattr(DBTaskResult.objects, "filter", claimed_again_first)
    assert workers.orphans_requeue() == []


def test_the_heartbeat_records_the_worker_and_its_time():
    workers.heartbeat("w1")
    first = WorkerHeartbeat.objects.get(worker_id="w1")
    workers.heartbeat("w1", now=first.last_seen_at + timedelta(seconds=15))
    beat = WorkerHeartbeat.objects.get(worker_id="w1")
    assert beat.last_seen_at - first.last_seen_at == timedelta(seconds=15)
    assert beat.pid
    assert beat.hostname


def test_healthz_answers_ok_with_the_backlog_and_heartbeats(client, staff_user):
    workers.heartbeat("w1")
    overrides_sweep.enqueue()
    client.force_login(staff_user)  # the details are for staff (tests/smartflow/test_healthz.py)

    response = client.get("/healthz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["backlog"] == 1
    assert body["oldest_task_age_seconds"] is not None
    assert [w["id"] for w in body["workers"]] == ["w1"]
    assert response["Cache-Control"].startswith("max-age=0")


def test_healthz_is_503_when_the_database_does_not_answer(client, monkeypatch):
    from django.db.backends.utils import CursorWrapper

    def down(self, sql, params=None):
        raise DatabaseError("connection refused")

    monkeypatch.setattr(CursorWrapper, "execute", down)
    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json() == {"status": "unavailable"}


def test_the_admin_index_shows_the_backlog_and_each_workers_heartbeat(admin_client, monkeypatch):
    overrides_sweep.enqueue()
    _beat("dead-worker", timedelta(minutes=5))
    beat_at = timezone.now()
    workers.heartbeat("alive-worker", now=beat_at)
    # The page is read half a second after the beat, however slow the machine.
    monkeypatch.setattr(timezone, "now", lambda: beat_at + timedelta(milliseconds=500))

    page = admin_client.get("/admin/").content.decode()

    assert 'id="background-work"' in page
    assert '<td id="task-backlog">1, oldest waiting' in page
    assert "heartbeat 0 s ago" in page
    assert "no heartbeat for 5 min" in page


def test_the_admin_index_says_when_no_worker_runs(admin_client):
    page = admin_client.get("/admin/").content.decode()
    assert "none running: start <code>manage.py worker</code>" in page


@pytest.mark.django_db(transaction=True)
def test_a_heartbeat_in_flight_as_the_worker_stops_does_not_undo_its_stop(monkeypatch):
    # The heartbeat thread's beat runs just as the worker stops: it must land before the
    # stop is marked (a beat clears stopped_at), not after.
    beat = workers.heartbeat
    worker = heartbeat_worker("w-stopping")

    def late_beat(worker_id: str, **kwargs: object) -> None:
        if threading.current_thread().name == "worker-heartbeat":
            worker._stop.wait(10)  # held until the worker stops, and a little longer
            time.sleep(0.2)
        beat(worker_id)

    monkeypatch.setattr(workers, "heartbeat", late_beat)
    thread = heartbeat_worker_beating(worker)

    worker.running = False  # as SIGTERM or a reload does
    thread.join(timeout=15)

    assert not thread.is_alive()
    assert WorkerHeartbeat.objects.get(worker_id="w-stopping").stopped_at is not None
