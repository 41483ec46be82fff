"""billing/stripe_pace.py: every Stripe request keeps the deployment's rate limit, shared
by all processes through PostgreSQL; a 429 is waited out and asked again, and one that
persists sends the event back to the queue without counting as a failure."""

from __future__ import annotations

import itertools
import json
from datetime import timedelta
from typing import Any

import psycopg
import pytest
import stripe
from django.db import connection, transaction
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from billing import stripe_pace, webhook_queue
from billing.models import BillingAlert, WebhookDelivery
from billing.stripe_api import api_kwargs
from billing.stripe_pace import Pace, PacedHTTPClient
from tests.billing import stripe_fakes as sf

TASK = "billing.tasks.webhook_process"

RATE_LIMITED = {
    "error": {
        "type": "invalid_request_error",
        "code": "rate_limit",
        "message": "Request rate limit exceeded.",
    }
}


def _postgresql() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the shared pace lives in PostgreSQL; SQLite keeps it per process")


class Answers(stripe.HTTPClient):
    """Stripe answering from a list: (status, headers) per request, then 200."""

    name = "answers"

    def __init__(self, *answers: tuple[int, dict[str, str]]) -> None:
        super().__init__()
        self.answers = list(answers)
        self.calls = 0

    def request(self, method: str, url: str, headers: Any, post_data: Any = None, **_: Any):
        self.calls += 1
        status, response_headers = self.answers.pop(0) if self.answers else (200, {})
        body = RATE_LIMITED if status >= 400 else {"id": "cus_1", "object": "customer"}
        return json.dumps(body), status, {"Request-Id": f"req_{self.calls}", **response_headers}

    def close(self) -> None:
        pass


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waits: list[float] = []
    monkeypatch.setattr(stripe_pace.time, "sleep", waits.append)
    return waits


@pytest.fixture
def paced(monkeypatch: pytest.MonkeyPatch):
    def install(inner: stripe.HTTPClient, rate: float = 0) -> PacedHTTPClient:
        client = PacedHTTPClient(inner, Pace(rate))
        monkeypatch.setattr(stripe, "default_http_client", client)
        monkeypatch.setattr(stripe, "max_network_retries", 0)
        return client

    return install


# --- The pace -----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_processes_share_one_pace_through_postgresql():
    # Two Pace objects hold two database connections, as two worker processes would.
    _postgresql()
    first, second = Pace(10, name="test-shared"), Pace(10, name="test-shared")
    delays = [(first if n % 2 else second)._reserve() for n in range(10)]

    # Ten requests at 10/s, asked at once from both: each waits one slot (0.1 s) longer
    # than the one before, whichever process asked.
    steps = [later - earlier for earlier, later in itertools.pairwise(delays)]
    assert delays[0] <= 0.05
    assert min(steps) > 0.08
    assert max(steps) < 0.12
    assert delays[-1] == pytest.approx(0.9, abs=0.1)
    first.close()
    second.close()


@pytest.mark.django_db(transaction=True)
def test_the_shared_pace_runs_outside_the_callers_transaction():
    # The caller is inside its event's transaction: the slot is taken, and committed, on
    # the pace's own connection, so no other process waits for this one's commit.
    _postgresql()
    pace, other = Pace(1000, name="test-outside"), Pace(1000, name="test-outside")

    with transaction.atomic():
        pace._reserve()
        # Seen from another connection before the caller's transaction ends.
        rows = other._shared.execute(
            "SELECT count(*) FROM billing_stripepace WHERE name = 'test-outside'", {}
        )
        assert rows == [(1,)]
    pace.close()
    other.close()


@pytest.mark.django_db(transaction=True)
def test_the_shared_pace_commits_without_waiting_for_the_disk():
    # Its row lock is held for a statement, not for a WAL flush (billing/stripe_pace.py).
    _postgresql()
    pace = Pace(1000, name="test-async")
    assert pace._shared.execute("SHOW synchronous_commit", {}) == [("off",)]
    pace.close()


def _away(*args: Any) -> Any:
    raise psycopg.OperationalError("server closed the connection unexpectedly")


def test_on_sqlite_or_without_the_database_the_process_keeps_the_pace(monkeypatch):
    pace = Pace(20)
    monkeypatch.setattr(pace._shared, "execute", _away)
    delays = [pace._reserve() for _ in range(5)]

    assert delays[0] <= 0.001
    assert delays[-1] == pytest.approx(0.2, abs=0.02)


@pytest.mark.django_db(transaction=True)
def test_the_database_away_paces_this_process_alone_and_says_so(monkeypatch, caplog):
    _postgresql()
    pace = Pace(20, name="test-away")

    monkeypatch.setattr(pace._shared, "execute", _away)
    delays = [pace._reserve() for _ in range(3)]

    assert delays[-1] == pytest.approx(0.1, abs=0.02)
    assert "unreachable" in caplog.text


def test_off_takes_no_slot(monkeypatch):
    pace = Pace(0)
    monkeypatch.setattr(pace, "_reserve", lambda: pytest.fail("no slot when off"))

    assert pace.wait() == 0.0


# --- A 429 asked again -------------------------------------------------------------------


def test_a_429_is_asked_again_after_retry_after(paced, slept):
    inner = Answers((429, {"Retry-After": "2"}), (429, {}))
    paced(inner)

    customer = stripe.Customer.retrieve("cus_1", **api_kwargs())

    assert customer.id == "cus_1"
    assert inner.calls == 3
    assert slept[0] == 2.0  # Stripe's Retry-After
    assert 0.4 <= slept[1] <= 1.2  # then backoff: 1 s ± 20 %


def test_a_429_that_persists_reaches_the_caller_as_rate_limit_error(paced, slept):
    inner = Answers(*[(429, {})] * 10)
    paced(inner)

    with pytest.raises(stripe.RateLimitError):
        stripe.Customer.retrieve("cus_1", **api_kwargs())

    assert inner.calls == 1 + stripe_pace.RATE_LIMITED_RETRIES


def test_other_answers_are_returned_as_they_came(paced, slept):
    inner = Answers((404, {}), (500, {}))
    paced(inner)

    with pytest.raises(stripe.InvalidRequestError):
        stripe.Customer.retrieve("cus_1", **api_kwargs())

    assert inner.calls == 1
    assert slept == []


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "3"}, 3.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, None),
        ({"Retry-After": "600"}, None),  # longer waits go back to the queue
        ({}, None),
        (None, None),
    ],
)
def test_retry_after_is_read_in_seconds(headers, expected):
    assert stripe_pace.retry_after(headers) == expected


# --- A 429 that persists, in the webhook queue -------------------------------------------


@pytest.fixture
def created(fake_stripe, catalog, payer) -> dict:
    """customer.subscription.created for a FlowKit subscription Stripe knows."""
    sub = sf.subscription(cus=payer, prc=catalog["flowkit_monthly"])
    fake_stripe.add(sub)
    return sf.event("customer.subscription.created", sub)


class Throttled(stripe.HTTPClient):
    """Stripe answering 429 (with `headers`) to everything while `headers` is set."""

    name = "throttled"

    def __init__(self, inner: stripe.HTTPClient) -> None:
        super().__init__()
        self.inner = inner
        self.headers: dict[str, str] | None = None

    def request(self, method: str, url: str, headers: Any, post_data: Any = None, **_: Any):
        if self.headers is not None:
            return json.dumps(RATE_LIMITED), 429, self.headers
        return self.inner.request(method, url, headers, post_data)

    def close(self) -> None:
        pass


@pytest.fixture
def throttled(fake_stripe, paced, slept) -> Throttled:
    client = Throttled(fake_stripe)
    paced(client)
    return client


@pytest.mark.django_db
def test_a_rate_limited_event_goes_back_to_the_queue_uncounted(
    deliver, created, throttled, customer
):
    throttled.headers = {"Retry-After": "4"}
    before = timezone.now()
    deliver(created)  # acknowledged; the worker's attempt is refused 4 times (asked again 3)

    delivery = WebhookDelivery.objects.get()
    assert delivery.state == WebhookDelivery.State.PENDING
    assert delivery.attempts == 0  # not a failed attempt
    assert delivery.last_error == ""
    wait = delivery.next_attempt_at - before
    assert timedelta(seconds=4) <= wait < timedelta(seconds=5)  # Stripe's Retry-After
    retry = DBTaskResult.objects.filter(task_path=TASK).order_by("enqueued_at").last()
    assert retry.args_kwargs["args"] == [delivery.pk]
    assert retry.run_after == delivery.next_attempt_at

    throttled.headers = None
    WebhookDelivery.objects.update(next_attempt_at=timezone.now())
    assert webhook_queue.delivery_process(delivery.pk) == "processed"
    customer.refresh_from_db()
    assert customer.plan == "flowkit"
    assert not BillingAlert.objects.exists()


@pytest.mark.django_db
def test_without_retry_after_a_rate_limited_event_waits_the_first_backoff(
    deliver, created, throttled
):
    throttled.headers = {}
    before = timezone.now()
    deliver(created)

    delivery = WebhookDelivery.objects.get()
    assert delivery.attempts == 0
    wait = delivery.next_attempt_at - before
    assert webhook_queue.RETRY_FIRST * 0.8 <= wait < webhook_queue.RETRY_FIRST * 1.3
