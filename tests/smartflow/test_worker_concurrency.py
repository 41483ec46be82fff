"""smartflow/workers.py: one `manage.py worker` runs up to its concurrency tasks at once,
each in a slot with its own connection, never more, and stops as one worker."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import connection
from django_tasks import task
from django_tasks_db.models import DBTaskResult

from smartflow.models import WorkerHeartbeat
from smartflow.workers import HeartbeatWorker
from tests.helpers import heartbeat_worker
from tests.reliability.helpers import until

pytestmark = pytest.mark.django_db(transaction=True)

# What the test tasks share with the test (the worker's slots are threads of this process).
meeting = threading.Barrier(4)
running = {"now": 0, "most": 0}
running_lock = threading.Lock()
release = threading.Event()


@task()
def meet() -> str:
    """Returns only once four tasks are here at the same time."""
    meeting.wait(timeout=20)
    return threading.current_thread().name


@task()
def count_running() -> int:
    with running_lock:
        running["now"] += 1
        running["most"] = max(running["most"], running["now"])
    release.wait(timeout=20)
    with running_lock:
        running["now"] -= 1
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    return int(pid)


def _postgresql() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("SQLite runs one task at a time (one writer)")


def _worker(concurrency: int) -> HeartbeatWorker:
    return heartbeat_worker("test-slots", concurrency=concurrency)


@contextmanager
def _running(worker: HeartbeatWorker) -> Iterator[threading.Thread]:
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        worker.running = False
        release.set()
        thread.join(timeout=30)


def _ours() -> Any:
    # Not the retention task the worker's start may queue.
    return DBTaskResult.objects.filter(task_path__startswith=__name__)


def _finished() -> list[DBTaskResult]:
    return list(_ours().filter(status__in=["SUCCESSFUL", "FAILED"]))


def test_a_worker_runs_its_concurrency_of_tasks_at_once():
    _postgresql()
    meeting.reset()
    for _ in range(4):
        meet.enqueue()

    with _running(_worker(4)):
        until(lambda: len(_finished()) == 4, "the four tasks ended")

    # Each returned only because the four were running together, each in its own slot.
    results = _ours()
    assert {r.status for r in results} == {"SUCCESSFUL"}
    assert len({r.return_value for r in results}) == 4
    assert {r.worker_ids[-1] for r in results} == {"test-slots"}  # one worker to recovery


def test_never_more_tasks_at_once_than_its_concurrency_each_on_its_own_connection():
    _postgresql()
    running.update(now=0, most=0)
    release.clear()
    for _ in range(8):
        count_running.enqueue()

    with _running(_worker(3)):
        until(lambda: running["now"] == 3, "three tasks running")
        assert _ours().filter(status="RUNNING").count() == 3
        release.set()
        until(lambda: len(_finished()) == 8, "the eight tasks ended")

    assert running["most"] == 3
    connections = {r.return_value for r in _ours()}
    assert len(connections) == 3


def test_stopping_ends_every_slot_after_its_task_and_marks_the_worker_stopped():
    _postgresql()
    running.update(now=0, most=0)
    release.clear()
    for _ in range(2):
        count_running.enqueue()
    worker = _worker(4)

    with _running(worker) as thread:
        until(lambda: running["now"] == 2, "two tasks running")
        worker.running = False  # what SIGTERM does
        release.set()
        thread.join(timeout=30)
        assert not thread.is_alive()

    assert {r.status for r in _ours()} == {"SUCCESSFUL"}  # finished
    assert WorkerHeartbeat.objects.get(worker_id="test-slots").stopped_at is not None


def test_on_sqlite_a_worker_runs_one_task_at_a_time():
    if connection.vendor != "sqlite":
        pytest.skip("SQLite only")

    assert _worker(8).concurrency == 1
