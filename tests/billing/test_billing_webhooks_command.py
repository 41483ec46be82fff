"""`manage.py billing_webhooks`: the backlog for operators; --retry-now, --failed and
--process."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
import stripe
from django.core.management import call_command
from django.utils import timezone

from billing.management.commands import billing_webhooks
from billing.models import PlanChange, WebhookDelivery
from tests.billing import stripe_fakes as sf

pytestmark = pytest.mark.django_db


def _run(*args: str) -> str:
    out = StringIO()
    call_command("billing_webhooks", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def created(deliver, fake_stripe, catalog, payer):
    """A subscription event acknowledged while Stripe is down: its first attempt failed
    and it waits for its retry."""

    def _created() -> WebhookDelivery:
        sub = sf.subscription(cus=payer, prc=catalog["flowkit_monthly"])
        fake_stripe.add(sub)
        fake_stripe.fail = stripe.APIError("Stripe is down")
        deliver(sf.event("customer.subscription.created", sub))
        fake_stripe.fail = None
        return WebhookDelivery.objects.get(
            event_id__isnull=False, trigger__body__contains=sub["id"]
        )

    return _created


def _row(n: int, state: str, **fields) -> WebhookDelivery:
    return WebhookDelivery.objects.create(
        event_id=f"evt_{state}_{n}", event_type="invoice.paid", state=state, **fields
    )


def test_prints_the_backlog_in_one_line():
    now = timezone.now()
    _row(1, "pending", received_at=now - timedelta(minutes=5))
    _row(2, "pending", next_attempt_at=now + timedelta(minutes=1))
    _row(3, "failed")
    _row(4, "gave_up")
    _row(5, "gave_up")
    _row(6, "processed", received_at=now - timedelta(days=1))

    out = _run()

    assert out.startswith(
        "Stripe webhooks: 2 pending (1 due now, 1 waiting for a retry), 1 failed, 2 gave up; "
        "oldest pending: 30"
    )
    assert out.count("\n") == 1


def test_an_empty_backlog_says_so():
    assert _run() == (
        "Stripe webhooks: 0 pending (0 due now, 0 waiting for a retry), 0 failed, 0 gave up; "
        "oldest pending: none.\n"
    )


def test_retry_now_makes_waiting_deliveries_due_and_process_runs_them(created, customer):
    delivery = created()
    assert delivery.next_attempt_at > timezone.now()  # waiting for its backoff
    assert "1 waiting for a retry" in _run("--process")  # nothing due: nothing done
    customer.refresh_from_db()
    assert customer.plan == "starter"

    out = _run("--retry-now", "--process")

    assert "Due now: 1 pending deliveries." in out
    assert "Processed here: 1 deliveries." in out
    assert out.endswith("0 pending (0 due now, 0 waiting for a retry), 0 failed, 0 gave up; "
                        "oldest pending: none.\n")  # fmt: skip
    customer.refresh_from_db()
    assert customer.plan == "flowkit"
    assert PlanChange.objects.count() == 1
    # Twice: nothing more happens.
    assert "Due now: 0 pending" in _run("--retry-now", "--process")
    assert PlanChange.objects.count() == 1


def test_failed_queues_failed_and_gave_up_again_and_leaves_the_rest(created, customer):
    delivery = created()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(state="gave_up", next_attempt_at=None)
    _row(1, "failed")
    processed = _row(2, "processed", processed_at=timezone.now())

    out = _run("--failed")

    assert "Queued again: 2 failed or gave-up." in out
    assert WebhookDelivery.objects.filter(state="pending").count() == 2
    processed.refresh_from_db()
    assert processed.state == "processed"
    _run("--process")
    customer.refresh_from_db()
    assert customer.plan == "flowkit"


def test_retry_now_goes_through_a_large_backlog_in_batches(monkeypatch):
    monkeypatch.setattr(billing_webhooks, "BATCH", 2)
    later = timezone.now() + timedelta(hours=1)
    for n in range(5):
        _row(n, "pending", next_attempt_at=later)

    out = _run("--retry-now")

    assert "Due now: 5 pending deliveries." in out
    assert "  4 / 5" in out  # progress
    assert not WebhookDelivery.objects.filter(next_attempt_at__isnull=False).exists()
