"""The plan of a failed renewal: kept while Stripe retries, at most the grace period
after the first failed attempt counted on Stripe's clock, then dropped, webhook or not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from django_tasks_db.models import DBTaskResult
from djstripe.models import Subscription

from billing.models import PlanChange
from billing.tasks import plan_grace_recheck
from onboarding.models import OnboardingMessage
from tests.billing import stripe_fakes as sf
from tests.billing.webhooks import assert_processed

pytestmark = pytest.mark.django_db

DAY = 86400


def _ago(days: float) -> int:
    return int((timezone.now() - timedelta(days=days)).timestamp())


def _renewal_failed(fake_stripe, payer, sub, *, at: int, next_attempt: int | None) -> dict:
    """Stripe's state after a renewal failed at `at` (Unix, Stripe's clock)."""
    invoice = sf.invoice(cus=payer, sub=sub, status="open")
    invoice.update(
        created=at - 3600,
        attempted=True,
        attempt_count=1,
        next_payment_attempt=next_attempt,
        billing_reason="subscription_cycle",
        hosted_invoice_url=f"https://invoice.stripe.test/{invoice['id']}",
        status_transitions={
            "finalized_at": at,
            "marked_uncollectible_at": None,
            "paid_at": None,
            "voided_at": None,
        },
    )
    fake_stripe.add(invoice)
    sub.update(status="past_due", latest_invoice=invoice["id"])
    return invoice


def _event_at(kind: str, obj: dict, at: int) -> dict:
    event = sf.event(kind, obj)
    event["created"] = at
    return event


def test_kept_while_stripe_retries_inside_the_grace_period(
    deliver, fake_stripe, payer, customer, subscribe
):
    sub = subscribe("flowkit")
    _renewal_failed(fake_stripe, payer, sub, at=_ago(6), next_attempt=_ago(-1))

    updated = sf.event("customer.subscription.updated", sub)
    assert_processed(deliver(updated), updated)

    # The failed renewal was seen (the subscription is stored past_due), and is in grace.
    assert Subscription.objects.get(id=sub["id"]).status == "past_due"
    customer.refresh_from_db()
    assert customer.plan == "flowkit"


def test_dropped_after_the_grace_period_though_stripe_still_retries(
    deliver, fake_stripe, payer, customer, subscribe
):
    sub = subscribe("flowkit")
    _renewal_failed(fake_stripe, payer, sub, at=_ago(7.01), next_attempt=_ago(-1))

    deliver(sf.event("customer.subscription.updated", sub))

    customer.refresh_from_db()
    assert customer.plan == "starter"


def test_dropped_when_stripe_no_longer_retries_even_inside_the_grace_period(
    deliver, fake_stripe, payer, customer, subscribe
):
    sub = subscribe("flowkit")
    _renewal_failed(fake_stripe, payer, sub, at=_ago(1), next_attempt=None)

    deliver(sf.event("customer.subscription.updated", sub))

    customer.refresh_from_db()
    assert customer.plan == "starter"


def test_a_plan_dropped_at_the_grace_end_tells_staff_why(
    deliver, fake_stripe, payer, customer, subscribe
):
    sub = subscribe("flowkit")
    _renewal_failed(fake_stripe, payer, sub, at=_ago(7.01), next_attempt=_ago(-1))

    deliver(sf.event("customer.subscription.updated", sub))

    # The subscription is still past_due at Stripe: not "no active subscription".
    assert PlanChange.objects.latest("id").reason == (
        f"subscription {sub['id']} past_due: the 7-day grace after its failed renewal has "
        "ended; no other subscription, purchase or override"
    )


def test_a_plan_dropped_when_stripe_stops_retrying_tells_staff_so(
    deliver, fake_stripe, payer, customer, subscribe
):
    sub = subscribe("flowkit")
    _renewal_failed(fake_stripe, payer, sub, at=_ago(1), next_attempt=None)

    deliver(sf.event("customer.subscription.updated", sub))

    reason = PlanChange.objects.latest("id").reason
    assert reason.startswith(f"subscription {sub['id']} past_due: Stripe no longer retries")


def test_a_renewal_waiting_for_3d_secure_keeps_the_plan_in_grace_though_not_retried(
    deliver, fake_stripe, payer, customer, subscribe
):
    # Stripe does not retry a payment waiting for authentication (next_payment_attempt
    # null), but it has not given up: the customer can still confirm it.
    sub = subscribe("flowkit")
    _renewal_failed(fake_stripe, payer, sub, at=_ago(1), next_attempt=None)
    pi = sf.payment_intent(cus=payer, amount=4900)
    pi.update(status="requires_action", created=_ago(1))
    fake_stripe.add(pi)
    deliver(sf.event("payment_intent.requires_action", pi))

    deliver(sf.event("customer.subscription.updated", sub))

    customer.refresh_from_db()
    assert customer.plan == "flowkit"
    assert PlanChange.objects.latest("id").new_plan == "flowkit"  # never dropped


def test_the_grace_is_counted_from_the_first_failure_not_the_period_start(
    deliver, fake_stripe, catalog, payer, customer
):
    # The period started 20 days ago (a renewal can be attempted late, or a proration
    # invoice fail mid-period); the payment failed 2 days ago.
    sub = sf.subscription(cus=payer, prc=catalog["flowkit_monthly"], period_start=_ago(20))
    fake_stripe.add(sub)
    deliver(sf.event("customer.subscription.created", sub))
    _renewal_failed(fake_stripe, payer, sub, at=_ago(2), next_attempt=_ago(-1))

    updated = sf.event("customer.subscription.updated", sub)
    assert_processed(deliver(updated), updated)

    # The failed renewal was seen (the subscription is stored past_due), and is in grace.
    assert Subscription.objects.get(id=sub["id"]).status == "past_due"
    customer.refresh_from_db()
    assert customer.plan == "flowkit"


@pytest.mark.parametrize("status", ["canceled", "unpaid"])
def test_when_stripe_gives_up_the_plan_drops_to_starter(
    deliver, fake_stripe, payer, customer, status, subscribe
):
    sub = subscribe("launchpack")
    invoice = _renewal_failed(fake_stripe, payer, sub, at=_ago(1), next_attempt=_ago(-2))
    deliver(sf.event("customer.subscription.updated", sub))
    customer.refresh_from_db()
    assert customer.plan == "launchpack"

    invoice["next_payment_attempt"] = None
    sub["status"] = status
    kind = (
        "customer.subscription.deleted" if status == "canceled" else "customer.subscription.updated"
    )
    deliver(sf.event(kind, sub))

    customer.refresh_from_db()
    assert customer.plan == "starter"


def test_sandbox_clock_ahead_of_ours_the_grace_ends_on_stripes_clock(
    deliver, fake_stripe, payer, customer, subscribe
):
    # The sandbox clock was advanced 40 days: its renewal failed "in our future", and
    # its retry 8 days later says the grace is over, though our clock says it has not
    # even started.
    failed = _ago(-40)
    sub = subscribe("flowkit")
    invoice = _renewal_failed(fake_stripe, payer, sub, at=failed, next_attempt=failed + 3 * DAY)
    deliver(_event_at("customer.subscription.updated", sub, failed))
    customer.refresh_from_db()
    assert customer.plan == "flowkit"

    invoice.update(attempt_count=2, next_payment_attempt=failed + 15 * DAY)
    deliver(_event_at("invoice.payment_failed", invoice, failed + 8 * DAY))

    customer.refresh_from_db()
    assert customer.plan == "starter"


def test_a_late_old_event_does_not_bring_back_a_grace_that_ran_out(
    deliver, fake_stripe, payer, customer, subscribe
):
    failed = _ago(-40)
    sub = subscribe("flowkit")
    invoice = _renewal_failed(fake_stripe, payer, sub, at=failed, next_attempt=failed + 3 * DAY)
    invoice.update(attempt_count=2, next_payment_attempt=failed + 15 * DAY)
    deliver(_event_at("invoice.payment_failed", invoice, failed + 8 * DAY))
    customer.refresh_from_db()
    assert customer.plan == "starter"

    # Delivered late: the subscription's own event from the day it failed.
    deliver(_event_at("customer.subscription.updated", sub, failed))

    customer.refresh_from_db()
    assert customer.plan == "starter"
    assert PlanChange.objects.filter(user=customer).count() == 2


def _rechecks(customer) -> list[DBTaskResult]:
    return [
        t
        for t in DBTaskResult.objects.filter(task_path__endswith="plan_grace_recheck")
        if t.args_kwargs["args"] == [customer.pk]
    ]


def test_the_plan_drops_at_the_grace_end_with_no_webhook(
    deliver, fake_stripe, payer, customer, monkeypatch, subscribe
):
    failed = _ago(6)
    sub = subscribe("flowkit")
    _renewal_failed(fake_stripe, payer, sub, at=failed, next_attempt=_ago(-1))
    deliver(sf.event("customer.subscription.updated", sub))
    customer.refresh_from_db()
    assert customer.plan == "flowkit"

    grace_end = datetime.fromtimestamp(failed, tz=UTC) + timedelta(days=7)
    (recheck,) = _rechecks(customer)
    assert abs(recheck.run_after - grace_end) < timedelta(seconds=5)
    # A recheck that runs early changes nothing ...
    assert plan_grace_recheck.call(customer.pk) is False
    # ... and the one at the grace end, with no webhook since, ends the plan.
    later = recheck.run_after
    monkeypatch.setattr(timezone, "now", lambda: later)
    assert plan_grace_recheck.call(customer.pk) is True

    customer.refresh_from_db()
    assert customer.plan == "starter"
    change = PlanChange.objects.latest("id")
    assert change.reason.startswith("failed-payment grace period ended")
    # The customer is told, as when the invoice's own webhook ends the plan.
    ended = OnboardingMessage.objects.get(user=customer, channel="email", plan_change=change)
    assert ended.template == OnboardingMessage.Template.PLAN_ENDED


def test_the_recheck_is_timed_on_stripes_clock_when_it_runs_ahead(
    deliver, fake_stripe, payer, customer, subscribe
):
    failed = _ago(-40)
    sub = subscribe("flowkit")
    _renewal_failed(fake_stripe, payer, sub, at=failed, next_attempt=failed + 3 * DAY)

    deliver(_event_at("customer.subscription.updated", sub, failed + 2 * DAY))

    # 5 days of grace are left on Stripe's clock: the recheck is 5 days from our now.
    (recheck,) = _rechecks(customer)
    assert abs(recheck.run_after - (timezone.now() + timedelta(days=5))) < timedelta(seconds=30)


def test_an_active_subscription_schedules_no_recheck(customer, subscribe):
    subscribe("flowkit")

    assert _rechecks(customer) == []


def test_a_late_event_of_an_older_invoice_does_not_end_a_plan_in_grace(
    deliver, fake_stripe, payer, customer, subscribe
):
    # The first invoice's invoice.paid arrives after the renewal failed but before any
    # of the renewal's own events: the subscription it re-reads is past_due on an
    # invoice the app has not seen yet. That invoice is read too, so the plan is kept
    # (and nobody is told their plan ended).
    sub = subscribe("flowkit")
    first = sf.invoice(cus=payer, sub=sub, status="paid")
    fake_stripe.add(first)
    _renewal_failed(fake_stripe, payer, sub, at=_ago(1), next_attempt=_ago(-2))

    paid = sf.event("invoice.paid", first)
    assert_processed(deliver(paid), paid)

    assert Subscription.objects.get(id=sub["id"]).status == "past_due"
    customer.refresh_from_db()
    assert customer.plan == "flowkit"
    assert not PlanChange.objects.filter(user=customer, new_plan="starter").exists()


def test_an_unpaid_upgrade_after_a_failed_renewal_moves_no_grace(
    deliver, fake_stripe, payer, customer, subscribe
):
    # Issue 27, defect 4: the unpaid upgrade invoice became the subscription's latest
    # invoice, so grace was judged by it (no retries: plan dropped) and staff's "Customers
    # in dunning" lost the customer. Grace is judged by the renewal, whatever else is open.
    from billing.dunning import dunning_load

    sub = subscribe("flowkit")
    renewal = _renewal_failed(fake_stripe, payer, sub, at=_ago(2), next_attempt=_ago(-1))
    deliver(_event_at("invoice.payment_failed", renewal, _ago(2)))
    upgrade = sf.invoice(cus=payer, sub=sub, status="open")
    upgrade.update(
        created=_ago(0.1),
        amount_due=5000,
        amount_remaining=5000,
        attempted=True,
        attempt_count=1,
        next_payment_attempt=None,
        billing_reason="subscription_update",
        status_transitions={"finalized_at": _ago(0.1), "paid_at": None, "voided_at": None},
    )
    fake_stripe.add(upgrade)
    sub.update(latest_invoice=upgrade["id"])
    deliver(_event_at("invoice.payment_failed", upgrade, _ago(0.1)))
    updated = sf.event("customer.subscription.updated", sub)
    assert_processed(deliver(updated), updated)

    customer.refresh_from_db()
    found = dunning_load([customer.pk]).get(customer.pk)
    assert customer.plan == "flowkit"  # the renewal's grace runs for 5 more days
    assert found is not None
    assert found.invoice_id == renewal["id"]
    assert found.amount == 4900
    assert found.plan_kept
