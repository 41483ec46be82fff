"""A real `manage.py worker` is SIGKILLed in the middle of processing a Stripe webhook;
the next `manage.py worker` finds the dead worker's heartbeat stale, queues its task
again and processes the event: exactly once (one plan change, one welcome, every
delivery processed), nothing left half-done by the dead one.

The workers are other processes on the test database (committed data: a transactional
test) and call the Stripe sandbox, whose state is in that database. The test stops the
first worker mid-processing by holding the buyer's user row: processing has read
Stripe and is writing what it read when it has to wait for that row. The heartbeat
timings are shortened through WORKER_*_SECONDS so that recovery takes seconds.

PostgreSQL only (the row lock that stops the worker at the right moment).
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection, transaction
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult
from djstripe.models import Event, WebhookEventTrigger

from accounts.models import User
from billing.models import PlanChange, WebhookDelivery
from billing.tasks import webhook_process
from onboarding.models import OnboardingMessage
from smartflow.models import WorkerHeartbeat
from tests.reliability.helpers import until
from tests.reliability.providers import ledger_read
from tests.reliability.sandbox_checkout import buyer_checkout, sandbox  # noqa: F401
from tests.reliability.test_worker_killed import Workers

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def workers(postgresql, tmp_path: Path) -> Iterator[Workers]:
    started = Workers(tmp_path / "ledger.jsonl", tmp_path)
    started.env.update(
        STRIPE_SANDBOX="true",
        # Stale after six missed beats: a loaded machine can delay a beat by a second,
        # and a live worker must not look dead (it would lose its own task).
        WORKER_HEARTBEAT_SECONDS="0.5",
        WORKER_RECOVER_SECONDS="0.5",
        WORKER_STALE_SECONDS="3",
    )
    yield started
    started.stop_all()


def _processing_claimed_by(worker_id: str) -> DBTaskResult | None:
    return (
        DBTaskResult.objects.filter(
            task_path=webhook_process.module_path, status=TaskResultStatus.RUNNING
        )
        .filter(worker_ids__contains=[worker_id])
        .first()
    )


def _waiting_for_a_lock() -> list[int]:
    """The database backends (their pids) that wait for a lock the test holds (not
    any lock: a worker's two threads can briefly wait for each other)."""
    with connection.cursor() as cursor:
        # Read inside the test's transaction, pg_stat_activity would stay the snapshot of
        # its first read: a worker's thread that blocked later would never show.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pg_backend_pid() = ANY(pg_blocking_pids(pid))"
        )
        return [pid for (pid,) in cursor.fetchall()]


def _backend_alive(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
        return cursor.fetchone()[0] > 0


@pytest.mark.usefixtures("postgresql", "sandbox")
def test_a_worker_killed_mid_webhook_leaves_it_to_the_next_which_processes_it_once(
    workers,
    client,
):
    user = buyer_checkout(client, "killed@example.com", "flowkit")
    deliveries = set(WebhookDelivery.objects.values_list("pk", flat=True))
    assert deliveries
    assert not PlanChange.objects.filter(user=user).exists()

    with transaction.atomic():
        User.objects.select_for_update().get(pk=user.pk)  # processing waits here
        doomed = workers.start("worker", "--worker-id", "doomed", "--interval", "0.05")
        until(
            lambda: _processing_claimed_by("doomed") is not None and _waiting_for_a_lock(),
            "the worker processes a delivery and waits for the buyer's row",
            seconds=60,
        )
        task = _processing_claimed_by("doomed")
        backends = _waiting_for_a_lock()
        workers.kill(doomed)
    # The dead worker's database session ends once its statement gets the row and finds
    # nobody to answer to; until then it holds the customer's lock. Waited for here so
    # that the heir does not time out on that lock under load (it would retry later:
    # correct, but not the "first attempt" checked below).
    until(
        lambda: not any(_backend_alive(pid) for pid in backends),
        "the dead worker's session has ended",
        60,
    )
    [delivery_id] = task.args_kwargs["args"]
    beat = WorkerHeartbeat.objects.get(worker_id="doomed")
    assert beat.stopped_at is None  # no goodbye
    # Nothing of the killed run is left: its transaction died with it.
    assert WebhookDelivery.objects.get(pk=delivery_id).state == WebhookDelivery.State.PENDING
    assert DBTaskResult.objects.get(pk=task.pk).status == TaskResultStatus.RUNNING

    heir = workers.start("worker", "--worker-id", "heir", "--interval", "0.05")
    until(
        lambda: (
            not WebhookDelivery.objects.exclude(state=WebhookDelivery.State.PROCESSED).exists()
            and OnboardingMessage.objects.filter(user=user, status="sent").exists()
        ),
        "the next worker has processed every delivery and sent the welcome",
        seconds=90,
    )
    os.kill(heir.pid, signal.SIGTERM)
    heir.wait(timeout=30)

    task.refresh_from_db()
    assert task.status == TaskResultStatus.SUCCESSFUL
    assert task.worker_ids == ["doomed", "heir"]  # run again, by the heir
    log = workers.log(heir)
    assert f"Task {task.pk} ({task.task_path}) was claimed by worker doomed" in log
    # Queued again only once the dead worker's heartbeat was older than STALE_SECONDS;
    # then its heartbeat row went, its work being queued again.
    assert not WorkerHeartbeat.objects.filter(worker_id="doomed").exists()
    assert task.started_at is not None
    assert (task.started_at - beat.last_seen_at).total_seconds() >= 3
    # Once: every delivery processed, at its first attempt, one event stored per delivery.
    rows = WebhookDelivery.objects.filter(pk__in=deliveries)
    assert {(d.state, d.attempts, d.last_error) for d in rows} == {("processed", 0, "")}
    assert Event.objects.filter(id__in=rows.values("event_id")).count() == len(deliveries)
    assert not WebhookEventTrigger.objects.exclude(exception="").exists()
    user.refresh_from_db()
    assert user.plan == "flowkit"
    assert list(PlanChange.objects.filter(user=user).values_list("new_plan", flat=True)) == [
        "flowkit"
    ]
    [message] = OnboardingMessage.objects.filter(user=user, channel="email")
    assert Counter(ledger_read(Path(workers.env["RELIABILITY_LEDGER"]))) == {str(message.pk): 1}
