"""Stripe's rate limit, kept by the whole deployment.

Stripe allows an account 100 API requests per second in live mode and 25 in test mode,
counted across every process that uses its key, and answers 429 beyond. Every request any
of our processes sends to Stripe first takes the next free slot of STRIPE_RATE_LIMIT per
second (`Pace.wait`), so adding workers (or threads in a worker) never pushes Stripe over:
they queue for slots instead. A 429 that comes anyway (another application on the same
account, Stripe's own lock timeouts) is waited out, after Stripe's Retry-After or a short
backoff, and asked again here, a few times; after that stripe-python raises
RateLimitError, which the webhook queue retries later without counting it as a failure
(billing/webhook_queue.py).

On PostgreSQL the slots are one row (StripePace) that every process moves forward in ONE
statement on the database's clock, so that processes on several machines agree. That
statement runs on a connection of its own in autocommit: the caller is usually inside the
transaction that processes an event, and a row lock held until that commits would let one
event at a time talk to Stripe. On SQLite (one machine, `make run`) a lock in the process
keeps the pace. (No library here does this across processes without a broker; django-
ratelimit and allauth's limiter count requests to refuse them, not to space them.)
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Mapping
from typing import Any

import psycopg
import stripe
from django.conf import settings
from django.db import connections

logger = logging.getLogger(__name__)

# A 429 is asked again at most this many times in place (the caller waits meanwhile),
# each after Stripe's Retry-After, else after RATE_LIMITED_FIRST doubling, with jitter.
RATE_LIMITED_RETRIES = 3
RATE_LIMITED_FIRST = 0.5  # seconds
RETRY_AFTER_MAX = 10.0  # seconds: a longer wait goes back to the queue instead

# One statement: the next slot is the later of the row's and now, and the row moves one
# interval past it; the caller waits until its slot (a negative wait: at once).
_RESERVE = """
    INSERT INTO billing_stripepace (name, next_at)
    VALUES (%(name)s, clock_timestamp() + %(interval)s * interval '1 second')
    ON CONFLICT (name) DO UPDATE
    SET next_at = greatest(billing_stripepace.next_at, clock_timestamp())
        + %(interval)s * interval '1 second'
    RETURNING extract(epoch from next_at - clock_timestamp()) - %(interval)s
"""


class OwnConnection:
    """A PostgreSQL connection of this process's own, in autocommit, for one short statement
    at a time from any of its threads. Not the thread's Django connection: that one is often
    inside a long transaction (an event's processing), and a row lock taken there would be
    held until it commits. The sandbox's rate limit shares it
    (devtools/stripe_sandbox/ratelimit.py)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connection: psycopg.Connection[Any] | None = None
        self._pid = 0

    def execute(self, sql: str, params: Mapping[str, object]) -> list[tuple[Any, ...]]:
        """The statement's rows; a connection that died is opened again, once, and then
        psycopg.OperationalError is raised."""
        with self._lock:
            for last_try in (False, True):
                try:
                    with self._open().cursor() as cursor:
                        cursor.execute(sql, params)
                        return cursor.fetchall() if cursor.description else []
                except psycopg.OperationalError:
                    self._close()
                    if last_try:
                        raise
        raise AssertionError("unreachable")

    def _open(self) -> psycopg.Connection[Any]:
        if self._pid != os.getpid() and self._connection is not None:
            # Forked with the parent's connection: never use it, nor let it be collected
            # (closing it would end the parent's session on the shared socket).
            _inherited.append(self._connection)
            self._connection = None
        if self._connection is None or self._connection.closed:
            params = connections["default"].get_connection_params()
            self._connection = psycopg.connect(**params, autocommit=True)
            # Its statements commit without waiting for the WAL flush: the row lock they
            # take is released at once, not after a disk write (a storm takes a slot up to
            # 90 times a second). A crash of PostgreSQL could forget the last slots taken,
            # handing them out again: a few requests early, and a 429 is waited out anyway.
            self._connection.execute("SET synchronous_commit TO off")
            self._pid = os.getpid()
        return self._connection

    def _close(self) -> None:
        if self._connection is not None and self._pid == os.getpid():
            self._connection.close()
        self._connection = None

    def close(self) -> None:
        with self._lock:
            self._close()


_inherited: list[psycopg.Connection[Any]] = []


class Pace:
    """Slots of `1 / rate` seconds for the whole deployment (or this process)."""

    def __init__(self, rate: float, *, name: str = "stripe") -> None:
        self.rate = rate
        self.name = name
        self._lock = threading.Lock()
        self._next = 0.0  # process-local slots (SQLite), time.monotonic()
        self._shared = OwnConnection()
        self._warned_at = 0.0

    def wait(self) -> float:
        """Take the next slot and sleep until it comes; the seconds slept."""
        if self.rate <= 0:
            return 0.0
        delay = self._reserve()
        if delay > 0:
            time.sleep(delay)
        return max(delay, 0.0)

    def _reserve(self) -> float:
        interval = 1 / self.rate
        if connections["default"].vendor == "postgresql":
            try:
                rows = self._shared.execute(_RESERVE, {"name": self.name, "interval": interval})
                return float(rows[0][0])
            except psycopg.Error:
                self._warn()  # and keep the pace alone, below
        with self._lock:
            now = time.monotonic()
            slot = max(self._next, now)
            self._next = slot + interval
            return slot - now

    def close(self) -> None:
        self._shared.close()

    def _warn(self) -> None:
        # The database is away: this process keeps the pace alone for now (and a 429 is
        # still asked again), once a minute in the log.
        if time.monotonic() - self._warned_at >= 60:
            self._warned_at = time.monotonic()
            logger.warning("Stripe's shared rate limit is unreachable: pacing this process alone")


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Stripe's Retry-After in seconds, if it sent one we can use."""
    for key, value in (headers or {}).items():
        if key.lower() == "retry-after":
            try:
                seconds = float(value)
            except ValueError:
                return None
            return seconds if 0 <= seconds <= RETRY_AFTER_MAX else None
    return None


def rate_limited_delay(attempt: int, headers: Mapping[str, str] | None) -> float:
    """How long to wait before asking again after the `attempt`-th 429."""
    after = retry_after(headers)
    if after is not None:
        return after
    delay: float = RATE_LIMITED_FIRST * 2 ** (attempt - 1) * random.uniform(0.8, 1.2)
    return delay


class PacedHTTPClient(stripe.HTTPClient):
    """stripe-python's HTTP client with the pace before each request and a 429 asked
    again; everything else is `inner`'s (the network, or the sandbox)."""

    name = "paced"

    def __init__(self, inner: stripe.HTTPClient, pace: Pace) -> None:
        super().__init__()
        self.inner = inner
        self.pace = pace

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
        *,
        _usage: list[str] | None = None,
    ) -> tuple[Any, int, Mapping[str, str]]:
        return self._paced(self.inner.request, method, url, headers, post_data)

    def request_stream(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
        *,
        _usage: list[str] | None = None,
    ) -> tuple[Any, int, Mapping[str, str]]:
        return self._paced(self.inner.request_stream, method, url, headers, post_data)

    def _paced(
        self,
        send: Any,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any,
    ) -> tuple[Any, int, Mapping[str, str]]:
        attempt = 0
        while True:
            self.pace.wait()
            response: tuple[Any, int, Mapping[str, str]] = send(method, url, headers, post_data)
            _, status, response_headers = response
            # Stripe refused it before doing anything: asking again is safe, even a POST.
            if status != 429 or attempt >= RATE_LIMITED_RETRIES:
                return response
            attempt += 1
            delay = rate_limited_delay(attempt, response_headers)
            logger.info(
                "Stripe answered 429 to %s %s: asked again in %.2f s (%s of %s)",
                method.upper(),
                url,
                delay,
                attempt,
                RATE_LIMITED_RETRIES,
            )
            time.sleep(delay)

    def close(self) -> None:
        self.inner.close()  # type: ignore[no-untyped-call]  # stripe-python leaves it untyped


def install(inner: stripe.HTTPClient | None = None) -> None:
    """Make every stripe-python request of this process keep STRIPE_RATE_LIMIT: wrap
    `inner` (default: stripe-python's own client) as stripe.default_http_client."""
    if inner is None:
        current = stripe.default_http_client
        if isinstance(current, PacedHTTPClient):
            return
        inner = current or stripe.new_default_http_client()
    stripe.default_http_client = PacedHTTPClient(inner, Pace(settings.STRIPE_RATE_LIMIT))
