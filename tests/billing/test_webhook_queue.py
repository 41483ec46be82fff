"""The webhook endpoint acknowledges; the worker processes (billing/webhook_queue.py)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import stripe
from django.db import OperationalError, close_old_connections, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tasks_db.compat import task_enqueued
from django_tasks_db.models import DBTaskResult
from djstripe.models import Event, WebhookEventTrigger

from billing import webhook_queue
from billing.models import BillingAlert, PlanChange, WebhookDelivery
from billing.webhook_queue import delivery_process, process_again, process_due
from tests.billing import stripe_fakes as sf

pytestmark = pytest.mark.django_db

TASK = "billing.tasks.webhook_process"


@pytest.fixture
def created(fake_stripe, catalog, payer) -> dict:
    """customer.subscription.created for a FlowKit subscription Stripe knows."""
    sub = sf.subscription(cus=payer, prc=catalog["flowkit_monthly"])
    fake_stripe.add(sub)
    return sf.event("customer.subscription.created", sub)


def _tasks() -> list[DBTaskResult]:
    return list(DBTaskResult.objects.filter(task_path=TASK).order_by("enqueued_at"))


def test_the_endpoint_stores_and_queues_and_calls_no_one(deliver, created, fake_stripe, customer):
    fake_stripe.calls.clear()

    response = deliver(created, process=False)

    assert response.status_code == 200
    delivery = WebhookDelivery.objects.get()
    assert (delivery.event_id, delivery.event_type, delivery.state) == (
        created["id"],
        "customer.subscription.created",
        "pending",
    )
    assert delivery.customer_key == created["data"]["object"]["customer"]
    assert delivery.trigger.valid
    assert delivery.trigger.body
    assert [t.args_kwargs["args"] for t in _tasks()] == [[delivery.pk]]
    # No Stripe call, nothing processed: the plan waits for the worker.
    assert fake_stripe.calls == []
    assert not Event.objects.exists()
    customer.refresh_from_db()
    assert customer.plan == "starter"

    assert process_due() == 1
    customer.refresh_from_db()
    assert customer.plan == "flowkit"
    delivery.refresh_from_db()
    assert delivery.state == "processed"
    assert delivery.processed_at is not None
    assert delivery.trigger.processed
    assert delivery.trigger.event_id == created["id"]


def test_the_acknowledgement_is_a_handful_of_statements(deliver, created):
    with CaptureQueriesContext(connection) as queries:
        assert deliver(created, process=False).status_code == 200

    # The endpoint, the duplicate check, the trigger, the delivery, the task (and the
    # transaction around the last four: here a savepoint in the test's transaction).
    sql = [q["sql"] for q in queries.captured_queries]
    assert len(sql) <= 7, "\n".join(sql)
    assert not any("djstripe_event" in s or "accounts_user" in s for s in sql)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's one statement")
def test_on_postgresql_the_delivery_is_one_statement_after_the_endpoint(deliver, created):
    with CaptureQueriesContext(connection) as queries:
        assert deliver(created, process=False).status_code == 200

    sql = [q["sql"] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]
    # The endpoint, then the duplicate check, the trigger, the delivery and the task row
    # in one statement (outside a test's transaction, its own: no BEGIN, no COMMIT).
    assert len(sql) == 2, "\n".join(sql)
    assert "djstripe_webhookendpoint" in sql[0]
    assert "stripe_data" not in sql[0]
    assert sql[1].startswith("WITH dup AS (UPDATE")
    assert 'INSERT INTO "django_tasks_database_dbtaskresult"' in sql[1]


def _prepared_statements() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="prepared statements")
@pytest.mark.parametrize("prepared", [True, False])
def test_on_postgresql_the_acknowledgement_prepares_its_statements_unless_turned_off(
    deliver, created, settings, prepared
):
    settings.DATABASE_PREPARED_STATEMENTS = prepared
    with connection.cursor() as cursor:
        # What earlier tests prepared on this connection (psycopg forgets them too).
        cursor.execute("DEALLOCATE ALL")
    assert _prepared_statements() == []

    assert deliver(created, process=False).status_code == 200
    assert deliver({**created, "id": created["id"] + "_2"}, process=False).status_code == 200

    statements = _prepared_statements()
    if not prepared:
        assert statements == []
        return
    # The endpoint lookup and the store, each prepared once and run twice; nothing else
    # of the connection is prepared (Django's own statements stay unprepared).
    assert len(statements) == 2, statements
    assert any("djstripe_webhookendpoint" in s for s in statements)
    assert any(s.startswith("WITH dup AS (UPDATE") for s in statements)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's one statement")
def test_on_postgresql_the_task_row_is_the_one_django_tasks_would_have_made(deliver, created):
    from billing.tasks import webhook_process

    enqueued = []

    def received(sender: object, task_result: object, **kwargs: object) -> None:
        enqueued.append(task_result)

    task_enqueued.connect(received)
    try:
        assert deliver(created, process=False).status_code == 200
    finally:
        task_enqueued.disconnect(received)
    (ours,) = _tasks()
    assert [r.id for r in enqueued] == [str(ours.id)]
    theirs = webhook_process.enqueue(*ours.args_kwargs["args"]).db_result
    theirs.refresh_from_db()

    def fields(row: DBTaskResult) -> dict:
        return {
            f.name: getattr(row, f.name)
            for f in DBTaskResult._meta.concrete_fields
            if f.name not in ("id", "enqueued_at")
        }

    assert fields(ours) == fields(theirs)
    assert ours.args_kwargs == {"args": [WebhookDelivery.objects.get().pk], "kwargs": {}}
    assert ours.enqueued_at <= theirs.enqueued_at
    # What the worker reads of it.
    assert ours.task_result.task.func is webhook_process.func
    assert ours.task_result.args == [WebhookDelivery.objects.get().pk]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="dropping a server's connections")
@pytest.mark.django_db(transaction=True)
def test_after_the_database_dropped_its_connections_the_next_acknowledgement_succeeds(
    deliver, created, monkeypatch
):
    assert deliver(created, process=False).status_code == 200  # the connection is open
    # Kept between requests, as production's CONN_MAX_AGE keeps it (the tests' is 0,
    # with which every request would open a new one and never meet a dead one).
    monkeypatch.setattr(connection, "close_at", time.monotonic() + 60)
    backend_pid = connection.connection.info.backend_pid
    other = connection.copy()
    try:
        with other.cursor() as cursor:  # a restart or failover drops every connection
            cursor.execute("SELECT pg_terminate_backend(%s)", [backend_pid])
    finally:
        other.close()
    # What a web process does as each request starts (Django's request_started signal;
    # the test client leaves it out): with CONN_HEALTH_CHECKS, the next use checks the
    # persistent connection and opens a new one for a dead one.
    close_old_connections()

    again = {**created, "id": f"{created['id']}_again"}
    assert deliver(again, process=False).status_code == 200
    assert WebhookDelivery.objects.filter(event_id=again["id"]).exists()


def test_the_stored_trigger_is_what_dj_stripe_would_have_stored(deliver, created, endpoint):
    before = timezone.now()
    assert deliver(created, process=False).status_code == 200

    trigger = WebhookDelivery.objects.get().trigger
    assert trigger.json_body == created
    assert trigger.headers["Stripe-Signature"].startswith("t=")
    assert trigger.valid
    assert not trigger.processed
    assert trigger.event_id is None
    assert trigger.remote_ip == "127.0.0.1"
    assert trigger.webhook_endpoint_id == endpoint.id
    assert trigger.stripe_trigger_account_id == endpoint.djstripe_owner_account_id
    assert trigger.djstripe_version
    assert trigger.created >= before
    assert trigger.updated >= before
    assert trigger.exception == ""
    assert trigger.traceback == ""


def test_a_duplicate_delivery_is_counted_and_processed_once(deliver, created, customer):
    for _ in range(3):
        assert deliver(created, process=False).status_code == 200

    delivery = WebhookDelivery.objects.get()
    assert delivery.deliveries == 3
    assert len(_tasks()) == 1
    assert WebhookEventTrigger.objects.count() == 1
    assert process_due() == 1
    assert deliver(created).status_code == 200  # after processing: still once
    assert PlanChange.objects.count() == 1
    assert WebhookDelivery.objects.get().deliveries == 4


def test_a_failure_to_queue_stores_nothing_so_stripe_retries(client, deliver, created, monkeypatch):
    class Broken:
        def enqueue(self, *args: object) -> None:
            raise RuntimeError("task table unavailable")

    monkeypatch.setattr("billing.webhook_queue.webhook_process", Broken())
    client.raise_request_exception = False

    assert deliver(created, process=False).status_code == 500
    assert not WebhookDelivery.objects.exists()
    assert not WebhookEventTrigger.objects.exists()


def test_stripe_down_is_retried_with_growing_waits_then_processed(
    deliver, created, fake_stripe, customer
):
    fake_stripe.fail = stripe.APIError("Stripe is down")
    deliver(created)  # acknowledged, and the worker's first attempt fails

    delivery = WebhookDelivery.objects.get()
    assert (delivery.state, delivery.attempts) == ("pending", 1)
    assert "Stripe is down" in delivery.last_error
    first_wait = delivery.next_attempt_at - timezone.now()
    assert timedelta(seconds=3) < first_wait <= timedelta(seconds=6)
    retry = _tasks()[-1]
    assert retry.args_kwargs["args"] == [delivery.pk]
    assert retry.run_after == delivery.next_attempt_at
    # Not due yet: the queue's own task for it (or a drain) leaves it alone.
    assert delivery_process(delivery.pk) == "not due"

    WebhookDelivery.objects.update(next_attempt_at=timezone.now())
    assert delivery_process(delivery.pk) == "retry"
    delivery.refresh_from_db()
    assert delivery.attempts == 2
    assert delivery.next_attempt_at - timezone.now() > first_wait  # doubled (±20 %)

    fake_stripe.fail = None
    WebhookDelivery.objects.update(next_attempt_at=timezone.now())
    assert delivery_process(delivery.pk) == "processed"
    customer.refresh_from_db()
    assert customer.plan == "flowkit"
    assert PlanChange.objects.count() == 1
    assert not BillingAlert.objects.exists()


def test_the_backoff_doubles_to_an_hour_at_most() -> None:
    waits = [webhook_queue.retry_delay(n) for n in (1, 2, 3, 10, 40)]
    assert timedelta(seconds=4) <= waits[0] <= timedelta(seconds=6)
    assert timedelta(seconds=8) <= waits[1] <= timedelta(seconds=12)
    assert timedelta(seconds=16) <= waits[2] <= timedelta(seconds=24)
    assert waits[3] > timedelta(minutes=30)
    assert waits[4] <= timedelta(hours=1.2)


def test_an_object_deleted_at_stripe_is_an_alert_and_not_retried(deliver, catalog, customer):
    # A subscription of a customer Stripe no longer knows: its re-read is a 404.
    gone = sf.customer(email=customer.email)
    sub = sf.subscription(cus=gone, prc=catalog["flowkit_monthly"])  # never added
    event = sf.event("customer.subscription.updated", sub)

    assert deliver(event).status_code == 200

    delivery = WebhookDelivery.objects.get()
    assert delivery.state == "failed"
    assert delivery.attempts == 1
    assert "No such" in delivery.last_error
    alert = BillingAlert.objects.get(kind=BillingAlert.Kind.WEBHOOK_FAILED)
    assert alert.stripe_event_id == event["id"]
    assert "not retried" in alert.detail
    assert len(_tasks()) == 1  # the first, no retry


def test_after_three_days_of_failures_it_gives_up_with_an_alert(deliver, created, fake_stripe):
    fake_stripe.fail = stripe.APIError("Stripe is down")
    deliver(created)
    WebhookDelivery.objects.update(
        next_attempt_at=timezone.now(), retry_until=timezone.now() - timedelta(seconds=1)
    )

    assert delivery_process(WebhookDelivery.objects.get().pk) == "gave up"

    assert WebhookDelivery.objects.get().state == "gave_up"
    assert "retried for 3 days" in BillingAlert.objects.get(kind="webhook_failed").detail


def test_process_again_runs_a_failed_delivery_once_fixed(deliver, created, fake_stripe, customer):
    fake_stripe.fail = stripe.APIError("Stripe is down")
    deliver(created)
    WebhookDelivery.objects.update(
        next_attempt_at=timezone.now(), retry_until=timezone.now() - timedelta(seconds=1)
    )
    delivery_process(WebhookDelivery.objects.get().pk)
    fake_stripe.fail = None

    assert process_again(WebhookDelivery.objects.all()) == 1
    delivery = WebhookDelivery.objects.get()
    assert (delivery.state, delivery.attempts, delivery.next_attempt_at) == ("pending", 0, None)
    assert delivery.retry_until > timezone.now() + timedelta(days=2)
    assert process_due() == 1
    customer.refresh_from_db()
    assert customer.plan == "flowkit"


def test_process_again_of_a_processed_event_syncs_and_decides_again(
    deliver, created, fake_stripe, customer
):
    deliver(created)
    customer.refresh_from_db()
    assert customer.plan == "flowkit"
    # Stripe's subscription changed, and the webhook saying so was lost.
    fake_stripe.objects[created["data"]["object"]["id"]]["status"] = "canceled"

    process_again(WebhookDelivery.objects.all())
    assert process_due() == 1

    customer.refresh_from_db()
    assert customer.plan == "starter"
    assert WebhookDelivery.objects.get().reprocess is False
    assert Event.objects.count() == 1


def test_a_processed_delivery_is_left_alone_by_a_second_task(deliver, created, fake_stripe):
    deliver(created)
    fake_stripe.calls.clear()

    assert delivery_process(WebhookDelivery.objects.get().pk) == "done already"
    assert fake_stripe.calls == []


def test_the_success_page_makes_the_plan_live_while_the_queue_is_behind(
    client, deliver, fake_stripe, catalog, payer, customer
):
    sub = sf.subscription(cus=payer, prc=catalog["flowkit_monthly"])
    session = sf.session(cus=payer, mode="subscription", user_id=customer.pk, sub=sub)
    session["metadata"]["plan"] = "flowkit"
    fake_stripe.add(sub, session)
    assert (
        deliver(sf.event("checkout.session.completed", session), process=False).status_code == 200
    )
    assert WebhookDelivery.objects.get().state == "pending"  # no worker has run yet

    client.force_login(customer)
    page = client.get(f"/billing/success/?session_id={session['id']}").content.decode()

    assert "Your FlowKit plan is live" in page
    customer.refresh_from_db()
    assert customer.plan == "flowkit"
    # The worker catches up: the same checkout, no second change and no second welcome.
    assert process_due() == 1
    assert PlanChange.objects.count() == 1


def test_a_task_that_failed_outright_is_queued_again_by_the_recovery(
    deliver, created, monkeypatch, customer
):
    from django_tasks import TaskResultStatus

    from smartflow.workers import recover

    deliver(created, process=False)
    [task] = _tasks()
    delivery = WebhookDelivery.objects.get()

    # The database went away while the failure was being recorded: the task fails.
    def database_gone(*args: object) -> str:
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(webhook_queue, "_failed", database_gone)
    monkeypatch.setattr(webhook_queue, "_event_process", database_gone)
    with pytest.raises(OperationalError):
        delivery_process(delivery.pk)
    DBTaskResult.objects.filter(pk=task.pk).update(
        status=TaskResultStatus.FAILED, finished_at=timezone.now()
    )
    monkeypatch.undo()

    recover(now=timezone.now())

    task.refresh_from_db()
    assert task.status == TaskResultStatus.READY
    assert WebhookDelivery.objects.get().state == "pending"
    assert delivery_process(delivery.pk) == "processed"
    customer.refresh_from_db()
    assert customer.plan == "flowkit"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="advisory locks")
def test_the_customer_lock_is_one_statement_when_it_is_free():
    with CaptureQueriesContext(connection) as queries:
        webhook_queue.customer_lock("cus_held")

    assert len(queries.captured_queries) == 1
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
        )
        (held,) = cursor.fetchone()
    assert held == 1
    # Held by this transaction: another one would be told at once (tests/reliability/
    # test_webhook_workers.py tries it from another connection).
