"""STRIPE_SANDBOX_RATE_LIMIT: beyond the rate the sandbox answers Stripe's 429, which
stripe-python raises as RateLimitError, and a refused request changes nothing
(devtools/stripe_sandbox/ratelimit.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import stripe
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction

from devtools.stripe_sandbox import ratelimit
from devtools.stripe_sandbox.models import Delivery, IdempotentRequest, StripeObject
from smartflow.settings import _sandbox_rate_limit

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def limit(settings, db) -> Iterator[None]:
    """Each test starts with a full bucket; the bucket's own PostgreSQL connection is
    closed after it (the test database cannot be dropped while it is open)."""
    ratelimit.reset()
    yield
    ratelimit.reset()
    ratelimit.close()


@pytest.fixture
def postgresql() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only: the bucket shared by processes is a database row.")


def _burst(count: int) -> list[stripe.RateLimitError | None]:
    """`count` requests as fast as they go: None for each answered, the error for each 429."""
    outcomes: list[stripe.RateLimitError | None] = []
    for _ in range(count):
        try:
            stripe.Customer.list(limit=1)
        except stripe.RateLimitError as error:
            outcomes.append(error)
        else:
            outcomes.append(None)
    return outcomes


def test_a_burst_beyond_the_bucket_gets_stripes_429(settings, limit):
    settings.STRIPE_SANDBOX_RATE_LIMIT = 2  # a bucket of 2, one more every 0.5 s

    outcomes = _burst(3)

    assert outcomes[:2] == [None, None]
    error = outcomes[2]
    assert isinstance(error, stripe.RateLimitError)
    assert error.http_status == 429
    assert error.json_body == {
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
    assert error.headers["Stripe-Rate-Limited-Reason"] == "global-rate"
    assert "Retry-After" not in error.headers


def test_the_bucket_refills_at_the_rate(settings, limit):
    settings.STRIPE_SANDBOX_RATE_LIMIT = 2
    assert _burst(3)[-1] is not None

    time.sleep(0.55)

    assert _burst(1) == [None]


def test_requests_at_the_rate_all_pass(settings, limit):
    settings.STRIPE_SANDBOX_RATE_LIMIT = 10
    emptied = any(_burst(1) != [None] for _ in range(100))
    assert emptied
    outcomes = []
    for _ in range(6):  # then 8 a second
        time.sleep(0.125)
        outcomes += _burst(1)

    assert outcomes == [None] * 6


def test_off_by_default_never_answers_429(settings, db):
    assert settings.STRIPE_SANDBOX_RATE_LIMIT == 0

    assert _burst(40) == [None] * 40


def test_a_refused_request_changes_nothing(settings, limit):
    settings.STRIPE_SANDBOX_RATE_LIMIT = 1  # a bucket of 1, one more every second
    stripe.Customer.create(email="first@example.com")
    before = (StripeObject.objects.count(), Delivery.objects.count())

    with pytest.raises(stripe.RateLimitError):
        stripe.Customer.create(email="third@example.com", idempotency_key="ik-third")

    assert (StripeObject.objects.count(), Delivery.objects.count()) == before
    assert not IdempotentRequest.objects.filter(key="ik-third").exists()
    # As at Stripe, the key was not spent: the retry, once there is room, creates it.
    time.sleep(1.05)
    retried = stripe.Customer.create(email="third@example.com", idempotency_key="ik-third")
    assert retried.email == "third@example.com"


def test_processes_share_one_bucket(settings, limit, postgresql):
    """Six processes' buckets (each its own connection) asking at once: two tokens."""
    settings.STRIPE_SANDBOX_RATE_LIMIT = 2
    buckets = [ratelimit._SharedBucket() for _ in range(6)]
    for bucket in buckets:
        bucket._connection._open()  # connected before the race
    start = threading.Barrier(len(buckets))
    taken: list[bool] = []

    def ask(bucket: ratelimit._SharedBucket) -> None:
        start.wait()
        taken.append(bucket.take(2))

    threads = [threading.Thread(target=ask, args=(bucket,)) for bucket in buckets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    for bucket in buckets:
        bucket.close()

    assert sorted(taken) == [False, False, False, False, True, True]


def test_the_sandbox_counts_with_the_other_processes(settings, limit, postgresql):
    settings.STRIPE_SANDBOX_RATE_LIMIT = 2
    other = ratelimit._SharedBucket()  # another worker's

    try:
        assert _burst(1) == [None]
        assert other.take(2)
        assert _burst(1)[0] is not None
        assert not other.take(2)
    finally:
        other.close()


def test_the_bucket_is_not_held_by_the_callers_transaction(settings, limit, postgresql):
    """A request inside a long transaction.atomic() leaves the bucket free for the others."""
    settings.STRIPE_SANDBOX_RATE_LIMIT = 100
    other = ratelimit._SharedBucket()
    answered = threading.Event()

    def ask() -> None:
        other.take(100)
        answered.set()

    with transaction.atomic():
        stripe.Customer.list(limit=1)
        thread = threading.Thread(target=ask)
        thread.start()
        finished = answered.wait(timeout=5)
        if not finished:
            other._connection.cancel()  # waiting for our lock: let it go before we fail
    thread.join(timeout=10)
    other.close()

    assert finished


@pytest.mark.parametrize(
    ("raw", "rate"),
    [
        ("", 0.0),
        ("off", 0.0),
        ("0", 0.0),
        ("on", 25.0),
        ("Test", 25.0),
        ("live", 100.0),
        ("100", 100.0),
        ("2.5", 2.5),
        ("1", 1.0),  # a number is always a rate: "1" is one request a second, not "on"
    ],
)
def test_the_setting_reads_words_and_rates(raw, rate):
    assert _sandbox_rate_limit(raw) == rate


@pytest.mark.parametrize("raw", ["true", "fast", "-1", "nan", "inf"])
def test_the_setting_refuses_anything_else(raw):
    with pytest.raises(ImproperlyConfigured, match="STRIPE_SANDBOX_RATE_LIMIT must be off"):
        _sandbox_rate_limit(raw)


def test_startup_with_a_bad_rate_limit_fails_clearly():
    env = {**os.environ, "STRIPE_SANDBOX_RATE_LIMIT": "fast", "DEBUG": "true"}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "smartflow.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert "STRIPE_SANDBOX_RATE_LIMIT must be off (or 0), test or on" in result.stderr
