"""Retention: personal data kept only as long as it is needed, purged by the worker.

Every `manage.py worker` asks at start and every WORKER_RECOVER_SECONDS (with its
recovery, smartflow/workers.py) whether this window of RETENTION_EVERY_HOURS has had its
purge; the first to ask records a RetentionRun for the window and queues `retention_run`
in the same transaction (smartflow/windows.py), so one worker among many runs it, as an
ordinary task (a long purge never holds up a heartbeat). No cron.

What is purged, each after its own setting (docs/operations.md, "Retention", says why
each default is what it is):
- finished task rows (django-tasks-db: succeeded or failed) after RETENTION_TASK_DAYS;
- the stored body and headers of processed Stripe webhook deliveries after
  RETENTION_WEBHOOK_BODY_DAYS (Stripe itself keeps an event 30 days); the delivery row
  stays as the record of the event, marked `body_purged_at`;
- django-axes' login records (attempts, access and failure logs) after
  RETENTION_LOGIN_RECORD_DAYS, never a lockout still in force;
- the words (`context`) of sent customer messages after RETENTION_MESSAGE_BODY_DAYS; the
  message row (template, channel, recipient, status, times) stays as the record that it
  was sent, marked `body_purged_at`.

Each kind goes BATCH rows at a time, each batch its own short transaction, walking the
primary key so that a large backlog neither holds a long lock nor rescans the table.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Model, QuerySet
from django.utils import timezone
from django_tasks import TaskResultStatus, task

from smartflow.models import RetentionRun
from smartflow.windows import enqueue_once, window_of

logger = logging.getLogger(__name__)

BATCH = 1000

# The kinds, in the order they run and are shown.
KINDS = {
    "tasks": "finished task rows",
    "webhook_bodies": "Stripe webhook bodies",
    "login_records": "login records",
    "message_bodies": "sent message bodies",
}


def _in_batches(rows: QuerySet[Any], act: Callable[[list[Any]], int]) -> int:
    """Call `act` on the primary keys of `rows`, BATCH at a time, in pk order (each call
    its own transaction); the sum of what it returns."""
    done = 0
    last = None
    while True:
        page = rows if last is None else rows.filter(pk__gt=last)
        ids = list(page.order_by("pk").values_list("pk", flat=True)[:BATCH])
        if not ids:
            return done
        with transaction.atomic():
            done += act(ids)
        last = ids[-1]


def _delete(model: type[Model]) -> Callable[[list[Any]], int]:
    def act(ids: list[Any]) -> int:
        deleted, _ = model._default_manager.filter(pk__in=ids).delete()
        return deleted

    return act


def tasks_purge(*, before: datetime) -> int:
    """Delete the task rows that finished (succeeded or failed) before `before`."""
    from django_tasks_db.models import DBTaskResult

    finished = DBTaskResult.objects.filter(
        status__in=[TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED],
        finished_at__lt=before,
    )
    return _in_batches(finished, _delete(DBTaskResult))


def webhook_bodies_purge(*, before: datetime) -> int:
    """Blank the stored body and headers of the deliveries processed and received before
    `before`; the delivery row stays. Failed deliveries keep theirs until staff process
    them again. dj-stripe's Event rows stay: billing reads them as facts (dunning,
    notices), and "process again" of a processed delivery runs from the stored event,
    not from the body (billing/webhook_queue.py refuses clearly when neither is left)."""
    from djstripe.models import WebhookEventTrigger

    from billing.models import WebhookDelivery

    def blank(ids: list[int]) -> int:
        # Under the rows' locks, and only if still processed: "process again" may have
        # taken one back meanwhile.
        rows = list(
            WebhookDelivery.objects.select_for_update()
            .filter(pk__in=ids, state=WebhookDelivery.State.PROCESSED)
            .values_list("pk", "trigger_id")
        )
        WebhookEventTrigger.objects.filter(pk__in=[t for _, t in rows if t]).update(
            body="", headers={}
        )
        return WebhookDelivery.objects.filter(pk__in=[pk for pk, _ in rows]).update(
            body_purged_at=timezone.now()
        )

    processed = WebhookDelivery.objects.filter(
        state=WebhookDelivery.State.PROCESSED, received_at__lt=before, body_purged_at__isnull=True
    )
    return _in_batches(processed, blank)


def login_records_purge(*, before: datetime) -> int:
    """Delete django-axes' records of logins before `before`: failed attempts (never one
    whose lockout is still in force), the access log and the failure log."""
    from axes.models import AccessAttempt, AccessFailureLog, AccessLog

    # AXES_COOLOFF_TIME is a timedelta here (smartflow/settings.py).
    in_force_since = timezone.now() - settings.AXES_COOLOFF_TIME
    purged = _in_batches(
        AccessAttempt.objects.filter(attempt_time__lt=min(before, in_force_since)),
        _delete(AccessAttempt),
    )
    for model in (AccessLog, AccessFailureLog):
        purged += _in_batches(model.objects.filter(attempt_time__lt=before), _delete(model))
    return purged


def message_bodies_purge(*, before: datetime) -> int:
    """Remove the words (`context`) of the customer messages sent before `before`; the
    row, its status, recipient and times stay as the record that it was sent. Staff
    cannot "send again" such a message (onboarding/outbox.py says why)."""
    from onboarding.models import OnboardingMessage

    def blank(ids: list[int]) -> int:
        return OnboardingMessage.objects.filter(pk__in=ids).update(
            context={}, body_purged_at=timezone.now()
        )

    sent = OnboardingMessage.objects.filter(sent_at__lt=before, body_purged_at__isnull=True)
    return _in_batches(sent, blank)


def retention_purge(*, now: datetime | None = None) -> dict[str, int]:
    """Purge every kind past its period, now; {kind: rows}."""
    now = now or timezone.now()
    days = timedelta(days=1)
    return {
        "tasks": tasks_purge(before=now - settings.RETENTION_TASK_DAYS * days),
        "webhook_bodies": webhook_bodies_purge(
            before=now - settings.RETENTION_WEBHOOK_BODY_DAYS * days
        ),
        "login_records": login_records_purge(
            before=now - settings.RETENTION_LOGIN_RECORD_DAYS * days
        ),
        "message_bodies": message_bodies_purge(
            before=now - settings.RETENTION_MESSAGE_BODY_DAYS * days
        ),
    }


@task()
def retention_run(run_id: int) -> dict[str, int]:
    """Purge what is past its period and record it on RetentionRun `run_id`.

    Safe to run twice (a worker that died mid-way has its task queued again): each
    purge selects only what is still there or not yet blanked, and the counts of a
    second run are added to the first's."""
    purged = retention_purge()
    run = RetentionRun.objects.get(pk=run_id)
    run.purged = {kind: run.purged.get(kind, 0) + n for kind, n in purged.items()}
    run.finished_at = timezone.now()
    run.save(update_fields=["purged", "finished_at"])
    logger.info(
        "Retention: %s",
        ", ".join(f"{n} {KINDS[kind]}" for kind, n in purged.items()),
    )
    return purged


def window_start(now: datetime) -> datetime:
    """The start of the RETENTION_EVERY_HOURS window `now` falls in (from the epoch)."""
    return window_of(now, timedelta(hours=settings.RETENTION_EVERY_HOURS))


def retention_enqueue_if_due(*, now: datetime | None = None) -> RetentionRun | None:
    """Queue the purge of this window unless some worker has already; the new run."""
    now = now or timezone.now()
    return enqueue_once(RetentionRun, retention_run, window=window_start(now), now=now)
