"""Values the whole suite shares, in a plain module: test modules import from here (or
from a folder's helpers.py), never from a conftest."""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from accounts.models import User
    from smartflow.workers import HeartbeatWorker

PASSWORD = "correct-horse-battery-staple-42"

# The seed of the sandbox's delivery choices in the suites that run with Stripe's
# delivery (tests/e2e, tests/reliability): fixed, so that a failure can be replayed;
# STRIPE_SANDBOX_SEED=N tries another (a failing test prints the one it ran with).
DELIVERY_SEED = int(os.environ.get("STRIPE_SANDBOX_SEED") or 1212)


def email_confirmed(user: User) -> User:
    """`user` with their address confirmed, as allauth records it after the link."""
    from allauth.account.models import EmailAddress

    EmailAddress.objects.update_or_create(
        user=user, email=user.email, defaults={"primary": True, "verified": True}
    )
    return user


# How the suite's task workers are built: as `manage.py worker` makes them (all queues,
# no start-up delay), polling every 50 ms.
WORKER_OPTIONS: dict[str, Any] = {
    "queue_names": ["*"],
    "interval": 0.05,
    "batch": False,
    "backend_name": "default",
    "startup_delay": False,
    "max_tasks": None,
    "excluded_queue_names": [],
}


def heartbeat_worker(worker_id: str, *, concurrency: int = 1) -> HeartbeatWorker:
    """A worker as `manage.py worker` makes it, for a test to run in a thread."""
    from smartflow.workers import HeartbeatWorker

    return HeartbeatWorker(concurrency=concurrency, worker_id=worker_id, **WORKER_OPTIONS)


def heartbeat_worker_beating(worker: HeartbeatWorker) -> threading.Thread:
    """`worker` running in a thread of its own, returned once its first heartbeat is
    recorded."""
    from smartflow.models import WorkerHeartbeat

    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not WorkerHeartbeat.objects.filter(worker_id=worker.worker_id).exists():
        assert time.monotonic() < deadline, "the worker never beat"
        time.sleep(0.05)
    return thread
