"""The task worker is killed (SIGKILL) in the middle of sending, as a real process
(`manage.py db_worker`) on the test database, then a new one is started the way
production does (`manage.py onboarding_sweep`, then `manage.py db_worker`).

Two deaths: one worker dies having claimed a send whose attempt had not started yet;
another dies after the provider accepted a message, before its answer came back. After
the restart no message is lost and none the provider accepted is sent twice; the one
whose outcome nobody knows is left for staff, and later marked failed, not resent.

PostgreSQL only: the workers are other processes and must see the test's committed data
(SQLite's test database would do, but the row lock that stops the first worker at the
right moment is PostgreSQL's).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from accounts.models import User
from billing.overrides import override_grant
from onboarding.models import OnboardingMessage
from onboarding.outbox import onboarding_message_send, onboarding_outbox_sweep
from tests.reliability.providers import ledger_read

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(settings.BASE_DIR)
Status = OnboardingMessage.Status


class Workers:
    """Starts manage.py commands against the test database; kills what is left."""

    def __init__(self, ledger: Path, logs: Path) -> None:
        db = connection.settings_dict
        self.env = {
            **os.environ,
            "DATABASE_URL": (
                f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST'] or '127.0.0.1'}"
                f":{db['PORT'] or 5432}/{db['NAME']}"
            ),
            "DEBUG": "false",
            "EMAIL_BACKEND": "tests.reliability.providers.LedgerEmailBackend",
            "RELIABILITY_LEDGER": str(ledger),
            "LOG_LEVEL": "INFO",
        }
        self.logs = logs
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, *command: str, hang: int | None = None) -> subprocess.Popen[bytes]:
        env = {**self.env, "RELIABILITY_HANG": str(hang or "")}
        log = (self.logs / f"{len(self.started)}-{command[0]}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "manage.py", *command], cwd=ROOT, env=env, stdout=log, stderr=log
        )
        self.started.append(process)
        return process

    def run(self, *command: str) -> str:
        process = self.start(*command)
        assert process.wait(timeout=120) == 0, self.log(process)
        return self.log(process)

    def log(self, process: subprocess.Popen[bytes]) -> str:
        index = self.started.index(process)
        return next(self.logs.glob(f"{index}-*.log")).read_text(errors="replace")

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                self.kill(process)


@pytest.fixture
def workers(postgresql, tmp_path: Path) -> Iterator[Workers]:
    started = Workers(tmp_path / "ledger.jsonl", tmp_path)
    yield started
    started.stop_all()


def _until(condition: Callable[[], Any], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


def _welcome(user: User, plan: str, staff: User) -> OnboardingMessage:
    """A comp with "notify the customer": billing queues its email (and SMS) at once."""
    override_grant(
        user=user, plan=plan, reason="goodwill", expires_at=None, notify=True, actor=staff
    )
    return OnboardingMessage.objects.get(user=user, channel="email")


def _send_task(message: OnboardingMessage) -> DBTaskResult:
    return DBTaskResult.objects.get(
        task_path=onboarding_message_send.module_path, args_kwargs__args=[message.pk, 1]
    )


def _someone_waits_for_a_row_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0] > 0


def test_killed_workers_lose_no_message_and_send_none_twice(workers, staff_user):
    ann, bob, cat = (User.objects.create_user(f"{n}@example.com") for n in ("ann", "bob", "cat"))
    ledger = Path(workers.env["RELIABILITY_LEDGER"])

    # 1. A worker claims Bob's send and is killed before the attempt starts: the test
    #    holds Bob's message row, so the worker is stuck right after claiming.
    bob_message = _welcome(bob, "flowkit", staff_user)
    with transaction.atomic():
        OnboardingMessage.objects.select_for_update().get(pk=bob_message.pk)
        first = workers.start("db_worker", "--no-startup-delay", "--interval", "0.05")
        _until(
            lambda: _send_task(bob_message).status == "RUNNING" and _someone_waits_for_a_row_lock(),
            "the worker has claimed Bob's send and waits for his message",
        )
        workers.kill(first)
    bob_message.refresh_from_db()
    assert (bob_message.status, bob_message.attempts) == (Status.QUEUED, 0)

    # 2. Another worker sends Ann's welcome; the provider accepts it and the worker is
    #    killed before the answer arrives. Cat's welcome waits behind it.
    ann_message = _welcome(ann, "launchpack", staff_user)
    cat_message = _welcome(cat, "flowkit", staff_user)
    second = workers.start(
        "db_worker", "--no-startup-delay", "--interval", "0.05", hang=ann_message.pk
    )
    _until(lambda: ledger_read(ledger) == [str(ann_message.pk)], "the provider has Ann's email")
    workers.kill(second)

    # 3. Restart as in production: the sweep, then the worker.
    swept = workers.run("onboarding_sweep")
    workers.run("db_worker", "--batch", "--no-startup-delay")

    accepted = Counter(ledger_read(ledger))
    messages = (ann_message, bob_message, cat_message)
    assert accepted == Counter(str(m.pk) for m in messages)  # nothing lost, nothing twice
    assert "1 message(s) queued again, 0 marked failed" in swept  # Bob's
    for message in (bob_message, cat_message):
        message.refresh_from_db()
        assert (message.status, message.attempts) == (Status.SENT, 1)
    ann_message.refresh_from_db()
    # The provider has it, but nobody here knows: not resent, and not called sent.
    assert (ann_message.status, ann_message.attempts) == (Status.QUEUED, 1)
    assert ann_message.last_error.startswith("Attempt 1 started")

    # 4. Once no provider call could still be running, the sweep gives up on it for
    #    staff to check ("send again" in the admin); it is still never sent again.
    report = onboarding_outbox_sweep(now=timezone.now() + timedelta(hours=1))
    assert (report.requeued, report.outcome_unknown) == (0, 1)
    workers.run("db_worker", "--batch", "--no-startup-delay")
    ann_message.refresh_from_db()
    assert ann_message.status == Status.FAILED
    assert ann_message.last_error.startswith("The outcome is unknown")
    assert Counter(ledger_read(ledger)) == accepted
    plans = dict(User.objects.filter(pk__in=[ann.pk, bob.pk, cat.pk]).values_list("email", "plan"))
    assert plans == {
        "ann@example.com": "launchpack",
        "bob@example.com": "flowkit",
        "cat@example.com": "flowkit",
    }


def test_a_killed_workers_claimed_task_is_run_again_by_the_next_worker(workers, staff_user):
    """`manage.py worker` (with a heartbeat) dies holding a claimed task; once its
    heartbeat is stale, the next `manage.py worker` queues the task again at start and
    runs it: no cron, no sweep by hand."""
    from smartflow.models import WorkerHeartbeat

    dan = User.objects.create_user("dan@example.com")
    ledger = Path(workers.env["RELIABILITY_LEDGER"])
    message = _welcome(dan, "flowkit", staff_user)
    with transaction.atomic():
        OnboardingMessage.objects.select_for_update().get(pk=message.pk)
        first = workers.start("worker", "--worker-id", "doomed", "--interval", "0.05")
        _until(
            lambda: _send_task(message).status == "RUNNING" and _someone_waits_for_a_row_lock(),
            "the worker has claimed Dan's send and waits for his message",
        )
        workers.kill(first)
    assert WorkerHeartbeat.objects.get(worker_id="doomed").stopped_at is None  # no goodbye
    # Time passes: the dead worker's heartbeat is three minutes old.
    WorkerHeartbeat.objects.filter(worker_id="doomed").update(
        last_seen_at=timezone.now() - timedelta(minutes=3)
    )

    second = workers.start("worker", "--worker-id", "heir", "--interval", "0.05")
    _until(
        lambda: OnboardingMessage.objects.get(pk=message.pk).status == Status.SENT,
        "the next worker has sent Dan's welcome",
    )
    os.kill(second.pid, signal.SIGTERM)  # a graceful stop records it
    second.wait(timeout=30)

    assert Counter(ledger_read(ledger)) == Counter([str(message.pk)])  # once
    task = _send_task(message)
    assert task.status == "SUCCESSFUL"
    assert task.worker_ids == ["doomed", "heir"]
    assert "was claimed by worker doomed, which stopped: queued again" in workers.log(second)
    assert WorkerHeartbeat.objects.get(worker_id="heir").stopped_at is not None
    # The dead worker's heartbeat went once its task was queued again.
    assert not WorkerHeartbeat.objects.filter(worker_id="doomed").exists()
