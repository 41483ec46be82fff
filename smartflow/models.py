from __future__ import annotations

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
        ordering = ["-last_seen_at"]

    def __str__(self) -> str:
        return f"worker {self.worker_id} ({self.hostname}:{self.pid})"
