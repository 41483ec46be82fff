from __future__ import annotations

import pytest

from accounts.models import User

PASSWORD = "correct-horse-battery-staple-42"


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
