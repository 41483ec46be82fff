"""The billing columns copied onto the user (status of the latest subscription, newest
Stripe customer, last plan change) follow every path that changes their facts."""

from __future__ import annotations

import importlib
from datetime import timedelta
from io import StringIO
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from djstripe.models import Customer

from accounts.models import User
from billing.checkout import customer_for
from billing.entitlements import BILLING_FIELDS, billing_columns, facts_load
from billing.models import PlanChange
from billing.overrides import override_grant, override_revoke
from billing.stripe_api import customer_get_or_create
from tests.billing import stripe_fakes as sf

pytestmark = pytest.mark.django_db

_backfill = importlib.import_module("accounts.migrations.0005_user_billing_columns_backfill")


def _columns(user: User) -> tuple:
    user.refresh_from_db()
    return tuple(getattr(user, name) for name in BILLING_FIELDS)


def _failing_invoice(fake_stripe, payer, sub, *, days_ago: float) -> None:
    failed = int((timezone.now() - timedelta(days=days_ago)).timestamp())
    invoice = sf.invoice(cus=payer, sub=sub, status="open")
    invoice.update(
        attempt_count=1,
        next_payment_attempt=failed + 9 * 86400,
        status_transitions={"finalized_at": failed, "paid_at": None, "voided_at": None},
    )
    fake_stripe.add(invoice)
    sub["latest_invoice"] = invoice["id"]


def test_a_subscription_sets_status_customer_and_last_change(payer, customer, subscribe):
    subscribe("flowkit")

    status, customer_id, livemode, last_change = _columns(customer)
    change = PlanChange.objects.get(user=customer)
    assert (status, customer_id, livemode) == ("active", payer["id"], False)
    assert last_change == change.created_at


def test_past_due_in_its_grace_changes_the_status_but_not_the_plan(
    deliver, fake_stripe, payer, customer, subscribe
):
    sub = subscribe("flowkit")
    first_change = PlanChange.objects.get(user=customer).created_at
    sub["status"] = "past_due"
    _failing_invoice(fake_stripe, payer, sub, days_ago=2)

    deliver(sf.event("customer.subscription.updated", sub))

    status, customer_id, _, last_change = _columns(customer)
    assert customer.plan == "flowkit"
    assert (status, customer_id, last_change) == ("past_due", payer["id"], first_change)


def test_a_cancelled_subscription_says_canceled_and_dates_the_downgrade(
    deliver, customer, subscribe
):
    sub = subscribe("launchpack")
    sub.update(status="canceled", canceled_at=sf.NOW, ended_at=sf.NOW)

    deliver(sf.event("customer.subscription.deleted", sub))

    status, _, _, last_change = _columns(customer)
    downgrade = PlanChange.objects.filter(user=customer).latest("id")
    assert customer.plan == "starter"
    assert downgrade.new_plan == "starter"
    assert (status, last_change) == ("canceled", downgrade.created_at)


def test_a_new_stripe_customer_is_copied_at_once(fake_stripe, customer):
    created = customer_for(customer)

    status, customer_id, livemode, last_change = _columns(customer)
    assert (status, customer_id, livemode, last_change) == ("", created.id, False, None)
    assert not PlanChange.objects.exists()  # no plan changed


def test_the_stripe_gateway_leaves_the_users_columns_to_its_caller(fake_stripe, customer):
    """billing.stripe_api only talks to Stripe: copying onto the user is plan_refresh's,
    called by billing.checkout.customer_for."""
    created, new = customer_get_or_create(customer)

    assert new
    assert created.subscriber_id == customer.pk
    assert _columns(customer) == ("", "", None, None)


def test_a_comp_and_its_revoke_date_the_last_change(customer, staff_user):
    staff_user.is_superuser = True
    staff_user.save()
    override = override_grant(
        user=customer,
        plan="flowkit",
        reason="Apology",
        expires_at=None,
        notify=False,
        actor=staff_user,
    )
    granted = PlanChange.objects.get(user=customer).created_at
    assert _columns(customer) == ("", "", None, granted)

    override_revoke(override=override, actor=staff_user)

    revoked = PlanChange.objects.filter(user=customer).latest("id")
    assert revoked.new_plan == "starter"
    assert _columns(customer)[3] == revoked.created_at > granted


def test_reconcile_reports_and_repairs_drifted_columns(customer, subscribe):
    subscribe("flowkit")
    expected = _columns(customer)
    User.objects.filter(pk=customer.pk).update(billing_status="canceled", stripe_customer_id="")

    dry = StringIO()
    call_command("reconcile_plans", "--dry-run", stdout=dry, stderr=StringIO())
    assert _columns(customer)[:2] == ("canceled", "")
    out, err = StringIO(), StringIO()
    call_command("reconcile_plans", stdout=out, stderr=err)

    assert "billing_status stored 'canceled', computed 'active'" in dry.getvalue()
    assert "1 drifted, would fix 1" in dry.getvalue()
    assert "1 drifted, fixed 1" in out.getvalue()
    assert "users checked, 1 drifted" in err.getvalue()  # the progress line
    assert _columns(customer) == expected
    assert PlanChange.objects.filter(source="reconcile").count() == 0  # the plan was right


def test_the_backfill_migration_fills_what_plan_refresh_would(customer, outsider, subscribe):
    subscribe("flowkit")
    expected = {u.pk: _columns(u) for u in (customer, outsider)}
    User.objects.update(
        billing_status="",
        stripe_customer_id="",
        stripe_customer_livemode=None,
        last_plan_change_at=None,
    )

    _backfill.billing_columns_backfill(apps, SimpleNamespace(connection=connection))

    assert {u.pk: _columns(u) for u in (customer, outsider)} == expected
    facts = facts_load([customer.pk])[customer.pk]
    assert tuple(billing_columns(facts).as_fields().values()) == expected[customer.pk]


def test_the_latest_customer_and_subscription_win(customer):
    older = timezone.now() - timedelta(days=30)
    for cid, when in (("cus_old", older), ("cus_new", timezone.now())):
        Customer.objects.create(id=cid, livemode=False, subscriber=customer, created=when)

    facts = facts_load([customer.pk])[customer.pk]

    assert billing_columns(facts).stripe_customer_id == "cus_new"
