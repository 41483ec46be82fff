"""Work the workers start themselves once per window, with no cron: the retention purge
(smartflow/retention.py) and the recovery of missed webhooks (billing/webhook_recover.py).

Every `manage.py worker` asks at start and with its recovery (smartflow/workers.py). A run
is a row whose `window_start` is unique, written in the transaction that queues its task:
the first worker's insert wins, the others find the row (or its IntegrityError) and queue
nothing, so one worker among many runs it, as an ordinary task.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from django.db import IntegrityError, models, transaction
from django_tasks.base import Task

Run = TypeVar("Run", bound=models.Model)


def window_of(now: datetime, every: timedelta) -> datetime:
    """The start of the `every`-long window `now` falls in, counted from the epoch."""
    seconds = int(every.total_seconds())
    return datetime.fromtimestamp(now.timestamp() // seconds * seconds, tz=UTC)


def enqueue_once(
    model: type[Run], task: Task[Any, Any], *, window: datetime, now: datetime
) -> Run | None:
    """Record `model`'s run of `window` and queue `task` with its pk, unless some worker
    has already; the new run."""
    runs = model._default_manager
    if runs.filter(window_start=window).exists():
        return None
    try:
        with transaction.atomic():
            run = runs.create(window_start=window, queued_at=now)
            task.enqueue(run.pk)
    except IntegrityError:  # another worker recorded it first
        return None
    return run
