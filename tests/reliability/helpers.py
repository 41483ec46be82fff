"""Helpers for the reliability suite: a crowd of threads released at once, a signed
delivery over real HTTP, real task workers in threads, waiting for a condition, a
buyer's checkout event."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import requests
from django.conf import settings
from django.db import connection

from accounts.models import User
from smartflow.workers import HeartbeatWorker
from tests.billing import stripe_fakes as sf
from tests.helpers import heartbeat_worker

T = TypeVar("T")


def together(count: int, action: Callable[[int], T], *, timeout: float = 180) -> list[T]:
    """Run action(0), ..., action(count - 1) in `count` threads released at once by a
    barrier; return their results in order (an exception is re-raised)."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = action(index)
        except BaseException as exc:  # handed back to the test below
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


def post_signed(
    url: str,
    event: dict[str, Any],
    *,
    secret: str = sf.SECRET,
    headers: dict[str, str] | None = None,
) -> int:
    """Deliver `event` over real HTTP as Stripe does (its own connection, signed body);
    `headers` adds what a proxy in front of the app would (X-Forwarded-Proto, Host)."""
    body = json.dumps(event).encode()
    response = requests.post(
        url,
        data=body,
        headers={
            "Content-Type": "application/json",
            "Stripe-Signature": sf.signature(body, secret),
            **(headers or {}),
        },
        timeout=120,
        allow_redirects=False,
    )
    return response.status_code


@contextmanager
def workers(count: int, concurrency: int | None = None) -> Iterator[list[HeartbeatWorker]]:
    """`count` real workers as `manage.py worker` runs them, each in a thread of this
    process, each running up to `concurrency` tasks at once (default: the product's
    WORKER_CONCURRENCY), every task slot with its own connection."""
    started = [
        heartbeat_worker(f"test-worker-{n}", concurrency=concurrency or settings.WORKER_CONCURRENCY)
        for n in range(count)
    ]

    def run(worker: HeartbeatWorker) -> None:
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
