"""The reliability suite: concurrent and reordered webhooks, hostile requests, provider
outages, killed workers, CSRF across the URLconf and the deployment settings.

Stripe is faked at stripe-python's HTTP client (tests/conftest.py: fake_stripe and the
fixtures beside it); the live server's request threads share the fake with the test.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import pytest
import requests
from django.db import connection
from django_tasks_db.management.commands.db_worker import Worker

from accounts.models import User
from tests.billing import stripe_fakes as sf

T = TypeVar("T")


@pytest.fixture(autouse=True)
def _stripe_delivery(stripe_delivery: int) -> None:
    """These journeys run with webhooks delivered as Stripe delivers them
    (tests/conftest.py: stripe_delivery; a failure prints the seed)."""


@pytest.fixture
def postgresql() -> None:
    """Skip the test on SQLite: it needs transactions that overlap and row locks, as
    production's PostgreSQL has; SQLite runs one write transaction at a time."""
    if connection.vendor != "postgresql":
        pytest.skip(
            "PostgreSQL only (overlapping transactions, row locks): SQLite runs one write "
            "transaction at a time; run with DATABASE_URL=postgres://..."
        )


@pytest.fixture
def webhook_url(live_server: Any, endpoint: Any) -> str:
    """The live server's Stripe webhook URL, the server ready for a crowd.

    Django's test server accepts 10 pending connections, then resets the rest; gunicorn
    in production queues 2048. Calling listen() again on the listening socket raises the
    queue, so that 50 deliveries at once are all received, as in production.
    """
    live_server.thread.httpd.socket.listen(2048)
    return f"{live_server.url}/stripe/webhook/{endpoint.djstripe_uuid}/"


def together(count: int, action: Callable[[int], T], *, timeout: float = 180) -> list[T]:
    """Run action(0), ..., action(count - 1) in `count` threads released at once by a
    barrier; return their results in order (an exception is re-raised)."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = action(index)
        except BaseException as exc:  # noqa: BLE001 - handed back to the test below
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(t.is_alive() for t in threads), "some threads never finished"
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


def post_signed(url: str, event: dict[str, Any], *, secret: str = sf.SECRET) -> int:
    """Deliver `event` over real HTTP as Stripe does (its own connection, signed body)."""
    body = json.dumps(event).encode()
    response = requests.post(
        url,
        data=body,
        headers={
            "Content-Type": "application/json",
            "Stripe-Signature": sf.signature(body, secret),
        },
        timeout=120,
    )
    return response.status_code


@contextmanager
def workers(count: int) -> Iterator[list[Worker]]:
    """`count` real django-tasks-db workers, each in its own thread and connection."""
    started = [
        Worker(
            queue_names=["*"],
            interval=0.05,
            batch=False,
            backend_name="default",
            startup_delay=False,
            max_tasks=None,
            worker_id=f"test-worker-{n}",
            excluded_queue_names=[],
        )
        for n in range(count)
    ]

    def run(worker: Worker) -> None:
        try:
            worker.run()
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(w,), daemon=True) for w in started]
    for thread in threads:
        thread.start()
    try:
        yield started
    finally:
        for worker in started:
            worker.running = False
        for thread in threads:
            thread.join(timeout=60)


def until(condition: Callable[[], Any], what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


def checkout_event(fake: sf.FakeStripe, prices: dict[str, Any], number: int) -> tuple:
    """A new buyer's paid subscription checkout (FlowKit or LaunchPack) and its event."""
    plan = ("flowkit", "launchpack")[number % 2]
    user = User.objects.create_user(f"buyer{number}@example.com")
    cus = sf.customer(email=user.email, metadata={"djstripe_subscriber": str(user.pk)})
    sub = sf.subscription(cus=cus, prc=prices[f"{plan}_monthly"])
    session = sf.session(cus=cus, mode="subscription", user_id=user.pk, sub=sub)
    fake.add(cus, sub, session)
    return user, plan, sf.event("checkout.session.completed", session)
