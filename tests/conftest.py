"""Fixtures and settings shared by the whole suite: users, Stripe faked at stripe-python's
HTTP client with the billing catalogue and a signed webhook endpoint, the task worker, the
sandbox's Stripe-like delivery, the fast password hasher, and the e2e/slow markers.

Every conftest below this one only adds what its own folder needs, and takes no fixtures
from another conftest (what two folders use lives here). No module imports a conftest:
helpers and constants are in plain modules (tests/helpers.py, tests/<folder>/helpers.py).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import stripe
from django.test import override_settings
from djstripe.models import WebhookEndpoint
from twilio.http.http_client import TwilioHttpClient

from accounts.models import User
from billing.webhook_queue import process_due
from tests import builders
from tests.billing import stripe_fakes as sf
from tests.halves import half_of
from tests.helpers import DELIVERY_SEED, PASSWORD, WORKER_OPTIONS, email_confirmed
from tests.onboarding import helpers as onb
from tests.param_ids import refuse_clock_in_id


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


@pytest.fixture(autouse=True, scope="session")
def fast_passwords() -> Iterator[None]:
    """MD5 instead of PBKDF2 for every test: hashing a password takes microseconds, not a
    good part of a second. The tests of the production setting start their own process
    (tests/smartflow/test_settings.py), which this does not reach. The production hashers
    stay in the list after MD5, so that a password a subprocess hashed (the README tour's
    `createsuperuser`) still verifies here."""
    from django.conf import settings

    hashers = ["django.contrib.auth.hashers.MD5PasswordHasher", *settings.PASSWORD_HASHERS]
    with override_settings(PASSWORD_HASHERS=hashers):
        yield


@pytest.fixture(autouse=True, scope="session")
def postgresql_flush_by_delete() -> Iterator[None]:
    """Between two transactional tests (live servers, workers, threads) Django empties
    every table: on PostgreSQL with one TRUNCATE of all of them, which makes new files
    for each table and index and took 0.8 s of waiting on the disk per test (70 s of the
    PostgreSQL half). DELETE of each table empties the few rows a test left in
    milliseconds, as Django's SQLite flush always does; the foreign keys Django makes are
    checked at commit (DEFERRABLE INITIALLY DEFERRED), when every table is empty. Sequences
    run on in both (no RESTART IDENTITY unless asked, and then TRUNCATE as before). No
    library does this; Django's own `available_apps` would flush fewer tables, but
    pytest-django's fixtures do not take it."""
    from django.db.backends.postgresql.operations import DatabaseOperations

    truncate = DatabaseOperations.sql_flush

    def sql_flush(
        self: DatabaseOperations,
        style: Any,
        tables: list[str],
        *,
        reset_sequences: bool = False,
        allow_cascade: bool = False,
    ) -> list[str]:
        if reset_sequences or allow_cascade:
            return truncate(
                self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade
            )
        return [f"DELETE FROM {self.quote_name(table)};" for table in tables]

    DatabaseOperations.sql_flush = sql_flush  # type: ignore[method-assign]
    yield
    DatabaseOperations.sql_flush = truncate  # type: ignore[method-assign]


@pytest.fixture(autouse=True, scope="session")
def static_files_without_manifest() -> Iterator[None]:
    """Pages name static files by their source names, served by the staticfiles finders
    (Django's test client and live server): no test depends on `collectstatic` having
    written the manifest, so any test file passes right after `make install-dev`. The
    manifest storage itself is production's and `make run`'s (collectstatic in the Makefile).

    STATIC_ROOT is an empty folder of this run's own: whitenoise reads the whole of
    STATIC_ROOT each time a test client or live server builds the middleware, and a
    `collectstatic` in the checkout meanwhile (the deployment test's, in the other half of
    `make test`) deletes and writes each hashed file again, which failed a test in
    another now and then (FileNotFoundError in whitenoise's scan)."""
    from django.conf import settings

    plain = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
    with (
        tempfile.TemporaryDirectory(prefix="smartflow-static-root-") as static_root,
        override_settings(
            STORAGES={**settings.STORAGES, "staticfiles": plain}, STATIC_ROOT=static_root
        ),
    ):
        yield


@pytest.fixture(autouse=True)
def rate_limits_fresh(request: pytest.FixtureRequest) -> None:
    """Each test starts with no attempt counted. The rate limits (billing/ratelimit.py,
    allauth's) keep their counts in the cache, which is the database's (CACHES): a test in
    a transaction rolls its counts back with it, but a transactional one (a live server,
    real workers) leaves them in the table for the next, so those start by emptying it."""
    marker = request.node.get_closest_marker("django_db")
    names = set(request.fixturenames)
    if not (
        {"transactional_db", "live_server"} & names
        or (marker is not None and marker.kwargs.get("transaction"))
    ):
        return
    from django.core.cache import cache

    request.getfixturevalue("transactional_db")
    cache.clear()


TESTS = Path(__file__).resolve().parent
# Fixtures that make a test take seconds: a live server thread, or real task workers.
SLOW_FIXTURES = {"live_server", "task_worker"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The markers `make test-fast` leaves out (`-m "not e2e and not slow"`), set here by
    folder and fixture so that a new test in those folders is marked without a decorator:
    tests/e2e is `e2e`; tests/reliability (concurrent webhooks, killed workers, hypothesis)
    and any test with a live server or a task worker are `slow`. Under `make test`, the
    tests tests/halves.py gives to the other half are deselected."""
    half = os.environ.get("TEST_HALF")
    if half:
        elsewhere = [item for item in items if half_of(Path(item.path)) not in (None, half)]
        if elsewhere:
            config.hook.pytest_deselected(items=elsewhere)
            items[:] = [item for item in items if item not in elsewhere]
    for item in items:
        path = Path(item.path)
        if path.is_relative_to(TESTS / "e2e"):
            item.add_marker(pytest.mark.e2e)
        elif path.is_relative_to(TESTS / "reliability") or SLOW_FIXTURES.intersection(
            getattr(item, "fixturenames", ())
        ):
            item.add_marker(pytest.mark.slow)


def pytest_make_parametrize_id(config: pytest.Config, val: object, argname: str) -> None:
    """No test id made from a value that holds the time (tests/param_ids.py): each
    pytest-xdist worker would name the test differently and `make test-fast` would stop."""
    refuse_clock_in_id(val, argname)


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
    """A signed-up customer whose address is confirmed."""
    return email_confirmed(User.objects.create_user("customer@example.com", PASSWORD))


@pytest.fixture
def staff_user(db) -> User:
    return email_confirmed(User.objects.create_superuser("staff@smartflowsystems.com", PASSWORD))


@pytest.fixture
def outsider(db) -> User:
    """A signed-up user with no business in the back-office."""
    return email_confirmed(User.objects.create_user("outsider@example.com", PASSWORD))


@pytest.fixture
def task_worker(transactional_db):
    """The real django-tasks database worker, running in a thread for the test.

    Used with live servers: work the app enqueues (sandbox webhook deliveries, onboarding
    messages) is done the way `manage.py db_worker` does it in production.
    """
    import threading

    from django.db import connection
    from django_tasks_db.management.commands.db_worker import Worker

    worker = Worker(worker_id="test-worker", **WORKER_OPTIONS)

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


@pytest.fixture
def fake_stripe() -> Iterator[sf.FakeStripe]:
    """Stripe's API, faked at stripe-python's HTTP client."""
    previous = stripe.default_http_client
    fake = sf.FakeStripe()
    stripe.default_http_client = fake
    try:
        yield fake
    finally:
        stripe.default_http_client = previous


@pytest.fixture
def catalog(fake_stripe: sf.FakeStripe) -> dict[str, dict[str, Any]]:
    """One product per plan with a monthly, an annual and a one-off price, by lookup key."""
    prices: dict[str, dict[str, Any]] = {}
    for plan, amount in (("starter", 1900), ("flowkit", 4900), ("launchpack", 9900)):
        prod = sf.product(name=f"SmartFlow {plan}", metadata={"plan": plan})
        fake_stripe.add(prod)
        for interval, recurring in (("monthly", True), ("oneoff", False)):
            key = f"{plan}_{interval}"
            prc = sf.price(
                prod=prod,
                lookup_key=key,
                amount=amount * (1 if recurring else 30),
                recurring=recurring,
            )
            fake_stripe.add(prc)
            prices[key] = prc
        yearly = sf.price(
            prod=prod, lookup_key=f"{plan}_annual", amount=amount * 10, interval="year"
        )
        fake_stripe.add(yearly)
        prices[f"{plan}_annual"] = yearly
    return prices


@pytest.fixture
def endpoint(db) -> WebhookEndpoint:
    return WebhookEndpoint.objects.create(
        id="we_test",
        livemode=False,
        secret=sf.SECRET,
        url="http://testserver/",
        enabled_events=["*"],
        status="enabled",
        api_version=sf.API_VERSION,
    )


@pytest.fixture
def deliver(client, endpoint: WebhookEndpoint) -> Callable[..., Any]:
    """POST an event to the real endpoint, signed as Stripe signs it, then process what
    it acknowledged as a worker would (`process=False`: acknowledge only)."""

    def _deliver(
        event: dict[str, Any],
        *,
        secret: str = sf.SECRET,
        timestamp: int | None = None,
        tamper: Callable[[bytes], bytes] | None = None,
        signed: bool = True,
        process: bool = True,
    ):
        body = json.dumps(event).encode()
        headers = {}
        if signed:
            headers["HTTP_STRIPE_SIGNATURE"] = sf.signature(body, secret, timestamp=timestamp)
        if tamper:
            body = tamper(body)
        response = client.post(
            f"/stripe/webhook/{endpoint.djstripe_uuid}/",
            body,
            content_type="application/json",
            **headers,
        )
        if process:
            process_due()
        return response

    return _deliver


@pytest.fixture
def payer(fake_stripe: sf.FakeStripe, customer: User) -> dict[str, Any]:
    """The Stripe customer object of the `customer` user (linked through metadata)."""
    cus = sf.customer(email=customer.email, metadata={"djstripe_subscriber": str(customer.pk)})
    fake_stripe.add(cus)
    return cus


@pytest.fixture
def subscribe(
    fake_stripe: sf.FakeStripe,
    catalog: dict[str, dict[str, Any]],
    payer: dict[str, Any],
    deliver: Callable[..., Any],
) -> Callable[..., dict[str, Any]]:
    """Subscribe the `customer` (their Stripe customer, `payer`) as Stripe would:
    `subscribe("launchpack", "annual", status="past_due")` builds the subscription
    (tests.builders.subscription, whose keywords it takes) on the catalogue's price, stores
    it in the fake Stripe, and delivers and processes its customer.subscription.created
    (`delivered=False`: stored only, for a test that delivers it itself). `customer`:
    another Stripe customer, stored with it (one customer with two live subscriptions
    has the newer cancelled and refunded: billing/duplicates.py)."""

    def _subscribe(
        plan: str = "flowkit",
        interval: str = "monthly",
        *,
        customer: dict[str, Any] | None = None,
        delivered: bool = True,
        **details: Any,
    ) -> dict[str, Any]:
        if customer is not None:
            fake_stripe.add(customer)
        price = details.pop("price", None) or catalog[f"{plan}_{interval}"]
        sub = builders.subscription(customer=customer or payer, price=price, **details)
        fake_stripe.add(sub)
        if delivered:
            assert deliver(sf.event("customer.subscription.created", sub)).status_code == 200
        return sub

    return _subscribe


# The outbox's fakes, for tests/onboarding (autouse there) and the back-office's messages.


@pytest.fixture
def onboarding_settings(settings: Any) -> None:
    """The outbox's test settings: scripted email backend, Twilio off, short retries
    (autouse in tests/onboarding)."""
    settings.SITE_URL = onb.SITE_URL
    settings.EMAIL_BACKEND = "tests.onboarding.helpers.ScriptedEmailBackend"
    settings.ONBOARDING_MAX_ATTEMPTS = 4
    settings.ONBOARDING_RETRY_SECONDS = 60
    settings.TWILIO_ACCOUNT_SID = ""
    settings.TWILIO_AUTH_TOKEN = ""
    settings.TWILIO_PHONE_NUMBER = ""
    settings.TWILIO_MESSAGING_SERVICE_SID = ""
    onb.ScriptedEmailBackend.script = []
    onb.ScriptedEmailBackend.attempts = 0


@pytest.fixture
def twilio(settings: Any, monkeypatch: pytest.MonkeyPatch) -> onb.FakeTwilio:
    """Twilio configured, its HTTP client faked."""
    settings.TWILIO_ACCOUNT_SID = onb.TWILIO_SID
    settings.TWILIO_AUTH_TOKEN = onb.TWILIO_TOKEN
    settings.TWILIO_PHONE_NUMBER = onb.TWILIO_FROM
    fake = onb.FakeTwilio()

    def request(client: TwilioHttpClient, method: str, url: str, **kwargs: Any) -> Any:
        return fake.request(method, url, **kwargs)

    monkeypatch.setattr(TwilioHttpClient, "request", request)
    return fake


@pytest.fixture
def buyer(db: Any) -> User:
    """A customer with a password, a mobile number and SMS consent."""
    return email_confirmed(
        User.objects.create_user(
            "buyer@example.com",
            PASSWORD,
            phone="+447700900123",
            sms_opt_in=True,
            phone_confirmed="+447700900123",  # its code entered (accounts/phone.py)
        )
    )
