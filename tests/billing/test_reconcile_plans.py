from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from billing.models import PlanChange
from tests.billing import stripe_fakes as sf

pytestmark = pytest.mark.django_db


def _run(*args: str) -> str:
    out = StringIO()
    call_command("reconcile_plans", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_dry_run_reports_drift_and_changes_nothing(customer):
    User.objects.filter(pk=customer.pk).update(plan="launchpack")  # behind billing's back

    out = _run("--dry-run")

    assert "customer@example.com: stored launchpack, computed starter" in out
    assert "1 drifted, would fix 1" in out
    customer.refresh_from_db()
    assert customer.plan == "launchpack"
    assert not PlanChange.objects.exists()


def test_reconcile_fixes_drift_with_source_reconcile(
    customer, deliver, fake_stripe, catalog, payer
):
    sub = sf.subscription(cus=payer, prc=catalog["flowkit_monthly"])
    fake_stripe.add(sub)
    deliver(sf.event("customer.subscription.created", sub))
    User.objects.filter(pk=customer.pk).update(plan="starter")

    out = _run()

    customer.refresh_from_db()
    assert customer.plan == "flowkit"
    assert PlanChange.objects.latest("id").source == "reconcile"
    assert "fixed 1" in out
    assert "0 drifted" in _run()  # safe to run twice


def _queries_for(n_users: int) -> int:
    User.objects.bulk_create(User(email=f"u{i}-{n_users}@example.com") for i in range(n_users))
    with CaptureQueriesContext(connection) as ctx:
        _run("--dry-run")
    User.objects.all().delete()
    return len(ctx.captured_queries)


def test_query_count_does_not_grow_with_users():
    assert _queries_for(5) == _queries_for(200)
