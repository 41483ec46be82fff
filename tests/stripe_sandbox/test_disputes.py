"""`stripe_sandbox dispute`: a dispute on the customer's latest charge, retrievable and
listed through stripe-python, closed won or lost with the events Stripe sends."""

from __future__ import annotations

from io import StringIO

import pytest
import stripe
from django.core.management import CommandError, call_command
from djstripe.models import Dispute, WebhookEventTrigger

from devtools.stripe_sandbox.delivery import deliver_pending
from tests.sandbox_app import app_transport
from tests.stripe_sandbox.helpers import event_types

EMAIL = "customer@example.com"


def _run(*args: str) -> str:
    out = StringIO()
    call_command("stripe_sandbox", *args, stdout=out)
    return out.getvalue().strip()


def _latest_charge(customer_id: str) -> stripe.Charge:
    return stripe.Charge.list(customer=customer_id).data[0]


def test_dispute_opens_on_the_latest_charge(subscribed):
    charge = _latest_charge(subscribed.customer)
    before = event_types()

    summary = _run("dispute", "--email", EMAIL)

    dispute = stripe.Dispute.list(charge=charge.id).data[0]
    assert summary == (
        f"Opened dispute {dispute.id} (£49.00, fraudulent) on charge {charge.id} of {EMAIL}: "
        "needs_response."
    )
    assert event_types()[len(before) :] == [
        "charge.dispute.created",
        "charge.dispute.funds_withdrawn",
    ]
    got = stripe.Dispute.retrieve(dispute.id)
    assert (got.status, got.amount, got.charge, got.currency) == (
        "needs_response",
        4900,
        charge.id,
        "gbp",
    )
    assert got.payment_intent == charge.payment_intent
    assert got.evidence_details.due_by > got.created
    assert stripe.Charge.retrieve(charge.id).disputed is True
    assert [d.id for d in stripe.Dispute.list().data] == [dispute.id]
    assert _run("dispute", "--email", EMAIL) == (
        f"Charge {charge.id} of {EMAIL} is disputed already: {dispute.id}."
    )
    assert len(event_types()) == len(before) + 2


def test_won_dispute_goes_under_review_then_closes_and_reinstates_funds(subscribed):
    _run("dispute", "--email", EMAIL)
    before = event_types()

    summary = _run("dispute", "--email", EMAIL, "--close", "won")

    dispute = stripe.Dispute.list().data[0]
    assert summary.startswith(f"Closed dispute {dispute.id} on charge ")
    assert summary.endswith(": won.")
    assert dispute.status == "won"
    assert dispute.evidence_details.has_evidence is True
    assert event_types()[len(before) :] == [
        "charge.dispute.updated",
        "charge.dispute.closed",
        "charge.dispute.funds_reinstated",
    ]
    updated = stripe.Event.list(type="charge.dispute.updated").data[0]
    assert updated.data.object.status == "under_review"
    assert updated.data.previous_attributes["status"] == "needs_response"
    assert _run("dispute", "--email", EMAIL, "--close", "lost") == (
        f"Dispute {dispute.id} of {EMAIL} is won already."
    )


def test_lost_dispute_closes_with_the_funds_withdrawn(subscribed):
    _run("dispute", "--email", EMAIL)
    before = event_types()

    _run("dispute", "--email", EMAIL, "--close", "lost")

    assert stripe.Dispute.list().data[0].status == "lost"
    assert event_types()[len(before) :] == ["charge.dispute.closed"]


def test_accepting_a_dispute_through_the_api_loses_it(subscribed):
    _run("dispute", "--email", EMAIL)
    dispute = stripe.Dispute.list().data[0]

    closed = stripe.Dispute.close(dispute.id)

    assert closed.status == "lost"


def test_no_charge_no_dispute(stripe_customer):
    with pytest.raises(CommandError, match="no successful charge"):
        _run("dispute", "--email", EMAIL)
    with pytest.raises(CommandError, match="no successful charge"):
        _run("dispute", "--email", EMAIL, "--close", "won")


def test_dispute_events_are_processed_by_djstripe(client, subscribed):
    transport = app_transport(client)
    deliver_pending(transport=transport)
    _run("dispute", "--email", EMAIL)
    _run("dispute", "--email", EMAIL, "--close", "won")

    report = deliver_pending(transport=transport)

    assert report.failed == 0
    triggers = WebhookEventTrigger.objects.all()
    assert triggers
    assert all(t.processed and not t.exception for t in triggers)
    assert Dispute.objects.get().status == "won"
