from __future__ import annotations

from typing import ClassVar

from django.db import models
from django.utils import timezone


class WorkerHeartbeat(models.Model):
    """A `manage.py worker` process, and when it last said it was alive.

    Written by the worker's heartbeat thread every HEARTBEAT_SECONDS; read by the other
    workers to find tasks claimed by one that died (smartflow/workers.py), by /healthz and
    by the admin index."""

    worker_id = models.CharField(max_length=64, unique=True)
    hostname = models.CharField(max_length=255, blank=True)
    pid = models.PositiveIntegerField(null=True)
    started_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now, db_index=True)
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-last_seen_at"]

    def __str__(self) -> str:
        return f"worker {self.worker_id} ({self.hostname}:{self.pid})"


class RetentionRun(models.Model):
    """One purge of personal data kept past its period (smartflow/retention.py): when it
    ran and how many rows of each kind it removed or blanked. Shown on the admin index.

    One row per window of RETENTION_EVERY_HOURS: the unique window is what lets only one
    of several workers queue the purge of that window."""

    window_start = models.DateTimeField(unique=True)
    queued_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    # {kind: rows}, e.g. {"tasks": 120, "webhook_bodies": 40, ...}
    purged = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-window_start"]

    def __str__(self) -> str:
        return f"retention run of {self.window_start:%Y-%m-%d %H:%M}: {self.total} rows"

    @property
    def total(self) -> int:
        return sum(self.purged.values())
