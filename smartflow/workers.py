"""Crash-safe background workers: django-tasks-db's worker with a heartbeat, and the
recovery of tasks a dead worker had claimed.

django-tasks-db marks a task RUNNING when a worker claims it and never looks at it again:
a worker killed mid-task (deploy, OOM, a lost machine) leaves it RUNNING for ever. Every
`manage.py worker` records a heartbeat (a WorkerHeartbeat row, every HEARTBEAT_SECONDS,
from its own thread so that a long task does not stop it) and, at start and every
RECOVER_SECONDS, puts back in the queue the RUNNING tasks whose worker's heartbeat is
older than STALE_SECONDS (or, for a worker that never had one, such as a plain
`db_worker`, tasks started more than UNKNOWN_WORKER_SECONDS ago). A dead worker's
heartbeat row is removed once none of its tasks is left RUNNING, and in any case once it
is older than HEARTBEAT_KEPT. The same round queues the retention purge when it is due
(smartflow/retention.py), and the recovery of Stripe events never received
(billing/webhook_recover.py).

Running a task again is safe for every task the project enqueues, each for its own reason:
- `onboarding.outbox.onboarding_message_send`: sends only if it moves the message's
  `attempts` from n-1 to n under the row lock, so of two runs one sends; an attempt that
  started and never recorded its outcome is not repeated (the outbox sweep, also run
  here, marks it "outcome unknown" for staff).
- `devtools.stripe_sandbox.delivery.delivery_run`: a webhook delivered twice is what Stripe does
  too; the app stores and processes an event id once (one WebhookDelivery per event id).
- `billing.tasks.webhook_process`: processes its WebhookDelivery in one transaction that
  also marks it processed, under the customer's advisory lock and the delivery's row
  lock; a run that died rolled back all of it, and a run that finds the delivery
  processed (or not yet due) does nothing. A task that failed outright is queued again
  here too (`billing.webhook_queue.failed_tasks_requeue`).
- `billing.tasks.overrides_sweep`, `billing.tasks.plan_grace_recheck`: recompute plans
  from the facts and write only on a change.
- `billing.tasks.webhook_recover_run`: stores an event id once (the unique event_id), so
  a second run queues only what is still missing.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection
from django.db.models import Min, Q
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks_db.management.commands.db_worker import Worker
from django_tasks_db.models import DBTaskResult, get_date_max

from smartflow.models import WorkerHeartbeat

logger = logging.getLogger(__name__)

# From settings (WORKER_*_SECONDS): by default a beat every 15 s, recovery every 60 s, and
# a worker silent for 120 s is gone: four missed heartbeats, long enough for a pause under
# load, short enough that work left by a dead worker waits about two minutes.
HEARTBEAT_SECONDS = settings.WORKER_HEARTBEAT_SECONDS
RECOVER_SECONDS = settings.WORKER_RECOVER_SECONDS
STALE_SECONDS = settings.WORKER_STALE_SECONDS
# No task of ours runs for long (a provider call has a 30-second timeout), so a task a
# worker without a heartbeat started 15 minutes ago is not running any more.
UNKNOWN_WORKER_SECONDS = 15 * 60
# A heartbeat row this old is deleted even if a task still names its worker as RUNNING
# (that task is then judged as one of a worker without heartbeat, above): no dead
# worker's row stays for ever in the admin and /healthz.
HEARTBEAT_KEPT = timedelta(days=1)
# `worker --reload` waits this long for the task in hand before reloading regardless.
RELOAD_WAIT_SECONDS = 60


def heartbeat(worker_id: str, *, now: datetime | None = None) -> None:
    now = now or timezone.now()
    updated = WorkerHeartbeat.objects.filter(worker_id=worker_id).update(
        last_seen_at=now, stopped_at=None
    )
    if not updated:
        WorkerHeartbeat.objects.create(
            worker_id=worker_id,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            started_at=now,
            last_seen_at=now,
        )


def orphans_requeue(*, now: datetime | None = None) -> list[str]:
    """Put back in the queue the RUNNING tasks whose worker is gone; their ids."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=STALE_SECONDS)
    beats = dict(WorkerHeartbeat.objects.values_list("worker_id", "last_seen_at"))
    requeued = []
    for task_result in DBTaskResult.objects.filter(status=TaskResultStatus.RUNNING):
        worker_id = task_result.worker_ids[-1] if task_result.worker_ids else ""
        seen = beats.get(worker_id)
        if seen is not None:
            gone = seen < stale
        else:
            started = task_result.started_at
            gone = started is None or started < now - timedelta(seconds=UNKNOWN_WORKER_SECONDS)
        if not gone:
            continue
        # Only if still RUNNING by that worker: it may have finished meanwhile.
        # (a new claim changes started_at).
        if DBTaskResult.objects.filter(
            pk=task_result.pk, status=TaskResultStatus.RUNNING, started_at=task_result.started_at
        ).update(status=TaskResultStatus.READY, started_at=None, run_after=now):
            logger.warning(
                "Task %s (%s) was claimed by worker %s, which stopped: queued again",
                task_result.pk,
                task_result.task_path,
                worker_id or "?",
            )
            requeued.append(str(task_result.pk))
    # A dead worker's heartbeat goes once none of its tasks is left RUNNING (all queued
    # again, or claimed afresh meanwhile), or after HEARTBEAT_KEPT whatever it holds: the
    # admin and /healthz list live workers only. Conditional on the time, so that a worker
    # that beat meanwhile keeps its row.
    still_running = {
        ids[-1]
        for ids in DBTaskResult.objects.filter(status=TaskResultStatus.RUNNING).values_list(
            "worker_ids", flat=True
        )
        if ids
    }
    WorkerHeartbeat.objects.filter(
        Q(last_seen_at__lt=stale) & ~Q(worker_id__in=still_running)
        | Q(last_seen_at__lt=now - HEARTBEAT_KEPT)
    ).delete()
    return requeued


def recover(*, now: datetime | None = None) -> list[str]:
    """Everything a worker does about dead workers, once."""
    from billing.webhook_queue import failed_tasks_requeue
    from billing.webhook_recover import recover_enqueue_if_due
    from onboarding.outbox import onboarding_outbox_sweep
    from smartflow.retention import retention_enqueue_if_due

    requeued = orphans_requeue(now=now)
    failed_tasks_requeue(now=now)
    onboarding_outbox_sweep()
    retention_enqueue_if_due(now=now)
    recover_enqueue_if_due(now=now)
    return requeued


@dataclass(frozen=True)
class QueueState:
    backlog: int  # ready to run now
    oldest_ready_at: datetime | None
    running: int
    workers: list[WorkerHeartbeat]

    @property
    def oldest_age(self) -> timedelta | None:
        return timezone.now() - self.oldest_ready_at if self.oldest_ready_at else None


def queue_state() -> QueueState:
    """The backlog, its oldest task and each worker's last heartbeat (admin, /healthz)."""
    ready = DBTaskResult.objects.ready()
    # A task is due from its run_after, or from when it was enqueued if it had none
    # (django-tasks-db stores "none" as the largest date).
    now_due = ready.filter(run_after=get_date_max()).aggregate(at=Min("enqueued_at"))["at"]
    later_due = ready.exclude(run_after=get_date_max()).aggregate(at=Min("run_after"))["at"]
    dues = [at for at in (now_due, later_due) if at is not None]
    return QueueState(
        backlog=ready.count(),
        oldest_ready_at=min(dues) if dues else None,
        running=DBTaskResult.objects.filter(status=TaskResultStatus.RUNNING).count(),
        workers=list(WorkerHeartbeat.objects.filter(stopped_at__isnull=True)[:20]),
    )


class HeartbeatWorker(Worker):
    """django-tasks-db's Worker with a heartbeat thread that also recovers orphans, running
    up to `concurrency` tasks at once.

    With a concurrency above 1 each task runs in a slot: a thread with django-tasks-db's
    own claim-and-run loop (a Worker under this worker's id, so recovery sees one worker)
    and its own database connection. The claim locks the task row with SKIP LOCKED, so
    two slots never take one task; one customer's events still run one at a time under
    its advisory lock (billing/webhook_queue.py), whichever slot or process has them.
    """

    def __init__(self, *, concurrency: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if concurrency > 1 and connection.vendor == "sqlite":
            # One writer at a time, and an event's transaction spans its Stripe calls:
            # more slots would only wait on each other's write lock.
            logger.info("SQLite: worker %s runs one task at a time", self.worker_id)
            concurrency = 1
        self.concurrency = concurrency
        self._slots = [Worker(**kwargs) for _ in range(concurrency)] if concurrency > 1 else []
        self._slot_error: BaseException | None = None
        self._stop = threading.Event()
        self._stopped = threading.Event()  # run() has returned
        self._thread = threading.Thread(target=self._beat, name="worker-heartbeat", daemon=True)

    def _beat(self) -> None:
        last_recover = timezone.now().timestamp()  # run() has just recovered
        while not self._stop.is_set():
            try:
                heartbeat(self.worker_id)
                now = timezone.now().timestamp()
                if now - last_recover >= RECOVER_SECONDS:
                    recover()
                    last_recover = now
            except Exception:  # the database is away: try again at the next beat
                logger.exception("Worker %s: heartbeat failed", self.worker_id)
            finally:
                close_old_connections()
            self._stop.wait(HEARTBEAT_SECONDS)
        connection.close()

    def run(self) -> None:
        heartbeat(self.worker_id)
        recover()
        self._thread.start()
        try:
            if self._slots:
                self._slots_run()
            else:
                super().run()
        finally:
            self._stop.set()
            # The heartbeat thread ends first (it closes its connection): a beat still in
            # flight clears stopped_at, and would undo the mark below.
            self._thread.join(timeout=5)
            WorkerHeartbeat.objects.filter(worker_id=self.worker_id).update(
                stopped_at=timezone.now()
            )
            self._stopped.set()

    def _slots_run(self) -> None:
        logger.info("Worker %s runs up to %s tasks at once", self.worker_id, self.concurrency)
        # Daemon threads: a second signal ends the process with its tasks mid-way, as it
        # would end a one-task worker (they are recovered like a killed worker's).
        threads = [
            threading.Thread(target=self._slot_run, args=(slot,), name=f"worker-slot-{n}")
            for n, slot in enumerate(self._slots, 1)
        ]
        for thread in threads:
            thread.daemon = True
            thread.start()
        while alive := [thread for thread in threads if thread.is_alive()]:
            if not self.running:  # a signal, a reload or a slot that failed
                for slot in self._slots:
                    slot.running = False
            alive[0].join(timeout=0.5)
        if self._slot_error is not None:
            raise self._slot_error

    def _slot_run(self, slot: Worker) -> None:
        try:
            slot.run()
        except BaseException as exc:  # the claim failed (database away): stop as one worker
            logger.exception("Worker %s: a task slot stopped", self.worker_id)
            self._slot_error = exc
            self.running = False
        finally:
            connection.close()

    def shutdown(self, signum: int, frame: FrameType | None) -> None:
        if not self._slots:
            super().shutdown(signum, frame)
            return
        if not self.running:
            logger.warning("Received %s - ending the tasks in hand.", signal.strsignal(signum))
            self.reset_signals()
            sys.exit(1)
        logger.warning(
            "Received %s - stopping after the tasks in hand... (again to force)",
            signal.strsignal(signum),
        )
        self.running = False

    def stop_for_reload(self, sender: object, file_path: Path, **kwargs: Any) -> None:
        """Django's autoreload.file_changed, under `manage.py worker --reload`: the task in
        hand finishes and the worker stops as on SIGTERM, then the reloader starts the new
        code (a task cut off mid-way would wait STALE_SECONDS for the next worker)."""
        logger.info("%s changed: worker %s stops to reload", file_path, self.worker_id)
        self.running = False
        self._stopped.wait(RELOAD_WAIT_SECONDS)
