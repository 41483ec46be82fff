"""One table from Stripe event type to one handler (billing/handlers.py), reached through
one dj-stripe receiver (billing/webhooks.py): no event type has two receivers whose order
is the order of declaration, and each event finds its user once."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from djstripe.models import Event
from djstripe.signals import WEBHOOK_SIGNALS

from billing import payers
from billing.disputes import DISPUTE_EVENTS
from billing.dunning import TEST_CLOCK_READY
from billing.handlers import HANDLERS
from billing.webhooks import stripe_event_handle
from tests.billing import stripe_fakes as sf
from tests.billing.webhooks import assert_processed

EVENT_TYPE = re.compile(r"`([a-z_]+(?:\.[a-z_]+)+)`")


def _project_receivers() -> dict[str, list[Any]]:
    """For each dj-stripe event signal, the receivers connected to it from outside
    dj-stripe (the project's), in the order Django calls them."""
    found: dict[str, list[Any]] = {}
    for event_type, signal in WEBHOOK_SIGNALS.items():
        sync, async_ = signal._live_receivers(Event)
        ours = [r for r in [*sync, *async_] if not r.__module__.startswith("djstripe")]
        if ours:
            found[event_type] = ours
    return found


def test_every_handled_event_type_reaches_its_handler_through_one_receiver():
    assert _project_receivers() == {t: [stripe_event_handle] for t in HANDLERS}


def test_the_table_covers_the_disputes_and_the_test_clock():
    assert set(DISPUTE_EVENTS) | {TEST_CLOCK_READY} <= HANDLERS.keys()


def test_the_event_types_the_deploy_guide_has_stripe_send_are_the_table():
    # The live endpoint is set up in Stripe's dashboard with the list the deploy guide
    # gives ("Events: ..."); the test clock's is sent in test mode only.
    base = Path(settings.BASE_DIR)
    lists = [
        EVENT_TYPE.findall(match)
        for path in [base / "README.md", *sorted((base / "docs").rglob("*.md"))]
        for match in re.findall(r"Events: (.+?)\n\n", path.read_text(), re.S)
    ]
    assert len(lists) == 1, "one list of the endpoint's event types in the docs"
    assert sorted(lists[0]) == sorted(HANDLERS.keys() - {TEST_CLOCK_READY})


@pytest.fixture
def lookups(monkeypatch) -> list[str | None]:
    """The customer of every user lookup billing's handlers make."""
    seen: list[str | None] = []
    find = payers.user_find

    def counted(**kwargs: Any) -> Any:
        seen.append(kwargs["customer_id"])
        return find(**kwargs)

    monkeypatch.setattr(payers, "user_find", counted)
    return seen


def _event(kind: str, fake_stripe: sf.FakeStripe, payer: dict, catalog: dict) -> dict:
    sub = sf.subscription(cus=payer, prc=catalog["flowkit_monthly"])
    fake_stripe.add(sub)
    if kind.startswith("invoice."):
        inv = sf.invoice(cus=payer, sub=sub, status="paid" if kind == "invoice.paid" else "open")
        fake_stripe.add(inv)
        return sf.event(kind, inv)
    if kind == "charge.refunded":
        pi = sf.payment_intent(cus=payer)
        charge = sf.charge(cus=payer, pi=pi, refunded=True)
        fake_stripe.add(pi, charge)
        return sf.event(kind, charge)
    return sf.event(kind, sub, previous={"cancel_at_period_end": True})


# The four types that had a second receiver for the customer's notice, each finding the
# user again.
@pytest.mark.django_db
@pytest.mark.parametrize(
    "kind",
    ["invoice.paid", "invoice.payment_failed", "customer.subscription.updated", "charge.refunded"],
)
def test_an_event_finds_its_user_once(deliver, fake_stripe, catalog, payer, lookups, kind):
    event = _event(kind, fake_stripe, payer, catalog)

    assert_processed(deliver(event), event)

    assert lookups == [payer["id"]]
