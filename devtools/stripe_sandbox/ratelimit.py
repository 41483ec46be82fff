"""Stripe's global rate limit, for the sandbox: beyond STRIPE_SANDBOX_RATE_LIMIT requests a
second it answers 429 as Stripe does, so that our own pacing and 429 handling can be tested.

The bucket holds one second's worth of the rate (at least one request) and refills
continuously (GCRA: one timestamp, `tat`, when the bucket is full again). It counts the
whole sandbox: on PostgreSQL every process (web, workers) shares one row, taken by one
atomic statement on the database's clock; on SQLite (development) each process has its own.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from datetime import timedelta

from django.conf import settings
from django.db import connections

from billing.stripe_pace import OwnConnection
from devtools.stripe_sandbox.models import RateLimitBucket

# Stripe's 429 for its global rate limiter, as stripe-python receives it. The API reference
# (docs.stripe.com/api/errors) lists 429 "Too Many Requests"; answers seen from Stripe carry
# type invalid_request_error and code rate_limit; the rate limits page documents the
# Stripe-Rate-Limited-Reason header. No Retry-After: Stripe documents none (it asks for
# exponential backoff), and none is invented here.
ERROR = {
    "error": {
        "code": "rate_limit",
        "doc_url": "https://stripe.com/docs/error-codes/rate-limit",
        "message": (
            "Request rate limit exceeded. You can learn more about rate limits here "
            "https://stripe.com/docs/rate-limits."
        ),
        "type": "invalid_request_error",
    }
}
REASON = "global-rate"

_BUCKET = "global"


def _shape(rate: float) -> tuple[int, int]:
    """Microseconds one request takes from the bucket, and the bucket's size in microseconds
    (one second, or one request when the rate is below one a second)."""
    interval = round(1_000_000 / rate)
    return interval, max(1_000_000, interval)


class _LocalBucket:
    """SQLite (development): each process counts alone. A shared row cannot work there: a
    writing transaction (IMMEDIATE) locks the whole file, so the bucket would wait for the
    caller's own transaction."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tat = 0  # time.monotonic_ns() // 1000 when the bucket is full again

    def take(self, rate: float) -> bool:
        interval, size = _shape(rate)
        with self._lock:
            now = time.monotonic_ns() // 1000
            tat = max(self._tat, now) + interval
            if tat - now > size:
                return False
            self._tat = tat
            return True

    def reset(self) -> None:
        with self._lock:
            self._tat = 0


class _SharedBucket:
    """PostgreSQL: one row for every process, on a connection of its own in autocommit
    (the deployment's Stripe pace uses the same kind). Not the caller's connection: the
    caller is often inside transaction.atomic() for a long time, and the bucket's row lock,
    held until that commits, would queue every process behind it."""

    def __init__(self) -> None:
        self._connection = OwnConnection()
        table = connections["default"].ops.quote_name(RateLimitBucket._meta.db_table)
        # The conflict's WHERE refuses without writing; RETURNING then yields no row.
        self._take = (
            f"INSERT INTO {table} (name, tat) VALUES (%(name)s, clock_timestamp() + %(interval)s)"
            f" ON CONFLICT (name) DO UPDATE"
            f" SET tat = GREATEST({table}.tat, clock_timestamp()) + %(interval)s"
            f" WHERE GREATEST({table}.tat, clock_timestamp()) + %(interval)s"
            f" <= clock_timestamp() + %(size)s"
            f" RETURNING tat"
        )
        self._reset = f"DELETE FROM {table} WHERE name = %(name)s"

    def _execute(self, sql: str, params: Mapping[str, object]) -> bool:
        return bool(self._connection.execute(sql, params))

    def take(self, rate: float) -> bool:
        interval, size = _shape(rate)
        return self._execute(
            self._take,
            {
                "name": _BUCKET,
                "interval": timedelta(microseconds=interval),
                "size": timedelta(microseconds=size),
            },
        )

    def reset(self) -> None:
        self._execute(self._reset, {"name": _BUCKET})

    def close(self) -> None:
        self._connection.close()


_buckets: dict[str, _LocalBucket | _SharedBucket] = {}
_buckets_lock = threading.Lock()


def _bucket() -> _LocalBucket | _SharedBucket:
    vendor = connections["default"].vendor
    with _buckets_lock:
        if vendor not in _buckets:
            _buckets[vendor] = _SharedBucket() if vendor == "postgresql" else _LocalBucket()
        return _buckets[vendor]


def refusal(request_id: str) -> tuple[str, int, Mapping[str, str]] | None:
    """Stripe's 429 when this request is over STRIPE_SANDBOX_RATE_LIMIT, else None (and the
    request has taken its token). Asked before the sandbox touches anything, so a refused
    request changes nothing."""
    rate: float = settings.STRIPE_SANDBOX_RATE_LIMIT
    if rate <= 0 or _bucket().take(rate):
        return None
    headers = {
        "Content-Type": "application/json",
        "Request-Id": request_id,
        "Stripe-Version": settings.STRIPE_API_VERSION,
        "Stripe-Rate-Limited-Reason": REASON,
    }
    return json.dumps(ERROR), 429, headers


def reset() -> None:
    """A full bucket (tests: each starts with the whole burst)."""
    _bucket().reset()


def close() -> None:
    """Closes this process's bucket connection (tests, before the test database is dropped)."""
    with _buckets_lock:
        bucket = _buckets.get("postgresql")
    if isinstance(bucket, _SharedBucket):
        bucket.close()
