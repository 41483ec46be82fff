from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from accounts.models import User

PASSWORD = "correct-horse-battery-staple-42"

# The seed of the sandbox's delivery choices in the suites that run with Stripe's
# delivery (tests/e2e, tests/reliability): fixed, so that a failure can be replayed;
# STRIPE_SANDBOX_SEED=N tries another (a failing test prints the one it ran with).
DELIVERY_SEED = int(os.environ.get("STRIPE_SANDBOX_SEED") or 1212)


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None) -> None:
    """SQLite tests use a file, not shared-cache memory: live-server, worker and test
    threads write at once, which in-memory SQLite answers with "table is locked". One file
    per process so that parallel runs (`make test`: SQLite beside PostgreSQL, or two
    checkouts) never share a database; in RAM (tmpfs) when there is one, which keeps
    migrating the test database as fast as in memory. PostgreSQL keeps Django's test_<name>.
    """
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"] == "django.db.backends.sqlite3":
        shm = Path("/dev/shm")
        test_dir = shm if shm.is_dir() else Path(tempfile.gettempdir())
        db.setdefault("TEST", {})["NAME"] = str(test_dir / f"smartflow-test-{os.getpid()}.sqlite3")


def pytest_report_header(config: pytest.Config) -> str:
    return (
        f"stripe sandbox: tests/e2e and tests/reliability deliver webhooks as Stripe does "
        f"(STRIPE_SANDBOX_DELIVERY=stripe), seed {DELIVERY_SEED}"
    )


@pytest.fixture
def stripe_delivery(settings) -> int:
    """Webhooks delivered as Stripe delivers them (late, unordered, some twice) with the
    fixed seed; returns it."""
    settings.STRIPE_SANDBOX_DELIVERY = "stripe"
    settings.STRIPE_SANDBOX_SEED = DELIVERY_SEED
    return DELIVERY_SEED


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport:
    report = yield
    if report.failed and "stripe_delivery" in getattr(item, "fixturenames", ()):
        report.sections.append(
            (
                "stripe sandbox delivery",
                f"STRIPE_SANDBOX_DELIVERY=stripe, seed {DELIVERY_SEED}: replay with "
                f"STRIPE_SANDBOX_SEED={DELIVERY_SEED}",
            )
        )
    return report


@pytest.fixture
def customer(db) -> User:
    return User.objects.create_user("customer@example.com", PASSWORD)


@pytest.fixture
def staff_user(db) -> User:
    return User.objects.create_superuser("staff@smartflowsystems.com", PASSWORD)


@pytest.fixture
def outsider(db) -> User:
    """A signed-up user with no business in the back-office."""
    return User.objects.create_user("outsider@example.com", PASSWORD)


@pytest.fixture
def task_worker(transactional_db):
    """The real django-tasks database worker, running in a thread for the test.

    Used with live servers: work the app enqueues (sandbox webhook deliveries, onboarding
    messages) is done the way `manage.py db_worker` does it in production.
    """
    import threading

    from django.db import connection
    from django_tasks_db.management.commands.db_worker import Worker

    worker = Worker(
        queue_names=["*"],
        interval=0.05,
        batch=False,
        backend_name="default",
        startup_delay=False,
        max_tasks=None,
        worker_id="test-worker",
        excluded_queue_names=[],
    )

    def run() -> None:
        try:
            worker.run()
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=run, name="task-worker", daemon=True)
    thread.start()
    yield worker
    worker.running = False
    thread.join(timeout=30)
