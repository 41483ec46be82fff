"""`manage.py worker --reload` (what `make run` starts): Django's autoreloader runs the
worker in a child process and starts it again on code changes, as runserver does and as
django-tasks-db's db_worker did; each change lets the worker stop as on SIGTERM first."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils.autoreload import DJANGO_AUTORELOAD_ENV, file_changed

from smartflow.management.commands import worker as command
from smartflow.models import WorkerHeartbeat
from smartflow.workers import HeartbeatWorker
from tests.helpers import heartbeat_worker, heartbeat_worker_beating


def _reloading() -> list[HeartbeatWorker]:
    """The workers that autoreload's file_changed stops."""
    receivers = [
        r() if isinstance(r, weakref.ReferenceType) else r for _, r, *_ in file_changed.receivers
    ]
    return [
        r.__self__
        for r in receivers
        if getattr(r, "__func__", None) is HeartbeatWorker.stop_for_reload
    ]


@pytest.fixture
def started(monkeypatch) -> Iterator[dict[str, list]]:
    """What the command hands to the reloader, runs itself, and sets up signals for."""
    calls: dict[str, list] = {"reloader": [], "run": [], "signals": []}
    monkeypatch.setattr(command, "run_with_reloader", calls["reloader"].append)
    monkeypatch.setattr(HeartbeatWorker, "run", lambda w: calls["run"].append(w))
    monkeypatch.setattr(HeartbeatWorker, "configure_signals", lambda w: calls["signals"].append(w))
    yield calls
    for worker in _reloading():
        file_changed.disconnect(worker.stop_for_reload)


def test_reload_hands_the_worker_to_djangos_reloader(started, monkeypatch):
    monkeypatch.delenv(DJANGO_AUTORELOAD_ENV, raising=False)

    call_command("worker", "--reload", "--worker-id", "w-dev")

    [main] = started["reloader"]
    assert main.__func__ is HeartbeatWorker.run
    assert main.__self__.worker_id == "w-dev"
    # The watching parent neither runs tasks nor takes the signals its child handles.
    assert started["run"] == started["signals"] == []
    assert _reloading() == []


def test_the_reloaders_child_handles_signals_and_stops_on_a_change(started, monkeypatch):
    monkeypatch.setenv(DJANGO_AUTORELOAD_ENV, "true")

    call_command("worker", "--reload")

    [main] = started["reloader"]
    assert started["signals"] == _reloading() == [main.__self__]


def test_without_reload_the_worker_runs_in_this_process(started):
    call_command("worker", "--worker-id", "w-prod")

    assert started["reloader"] == []
    assert [w.worker_id for w in started["run"]] == ["w-prod"]
    assert started["signals"] == started["run"]


@pytest.mark.django_db(transaction=True)
def test_a_code_change_stops_the_worker_as_sigterm_does_before_the_reload():
    worker = heartbeat_worker("w-reloading")
    thread = heartbeat_worker_beating(worker)

    # What the reloader's thread does before it restarts the process.
    worker.stop_for_reload(sender=None, file_path=Path("billing/models.py"))

    # stop_for_reload returns once run() has marked its row; the thread then ends.
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert WorkerHeartbeat.objects.get(worker_id="w-reloading").stopped_at is not None
