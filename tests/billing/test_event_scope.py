"""What one event's processing remembers (billing/event_scope.py): dj-stripe's API key
and Account are looked up once per event, not once per object dj-stripe syncs, and a
subscription read from Stripe in the event (with its invoice, or by dj-stripe) is not
asked for again."""

from __future__ import annotations

import re
from contextlib import nullcontext

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from djstripe.models import Account, APIKey, Invoice, Subscription

from billing import event_scope, webhook_queue
from billing.models import WebhookDelivery
from tests.billing import stripe_fakes as sf

pytestmark = pytest.mark.django_db

KEY_OR_ACCOUNT = re.compile(r'(?:FROM|INTO|UPDATE)\s+"djstripe_(?:apikey|account)"', re.I)
# Once per event: the key's APIKey row and its Account (get_or_retrieve_for_api_key),
# then that Account's secret key (get_default_api_key).
ONCE = 3


@pytest.fixture
def invoice_paid(fake_stripe, catalog, payer) -> dict:
    """invoice.paid for a FlowKit renewal: dj-stripe re-reads the invoice, then syncs the
    subscription, its items and the customer, each with its owner Account."""
    sub = sf.subscription(cus=payer, prc=catalog["flowkit_monthly"])
    inv = sf.invoice(cus=payer, sub=sub)
    fake_stripe.add(sub, inv)
    return sf.event("invoice.paid", inv)


def _lookups(deliver, event: dict) -> list[str]:
    """The APIKey and Account statements of the worker's processing of `event`."""
    assert deliver(event, process=False).status_code == 200
    delivery = WebhookDelivery.objects.get(event_id=event["id"])
    with CaptureQueriesContext(connection) as queries:
        assert webhook_queue.delivery_process(delivery.pk) == "processed"
    return [q["sql"] for q in queries.captured_queries if KEY_OR_ACCOUNT.search(q["sql"])]


def test_an_event_looks_up_the_key_and_account_once(deliver, invoice_paid):
    # The first event stores the APIKey and Account rows (dj-stripe asks Stripe for the
    # key's account); the second costs what every later event costs.
    _lookups(deliver, sf.event("invoice.paid", invoice_paid["data"]["object"]))

    lookups = _lookups(deliver, invoice_paid)

    assert len(lookups) <= ONCE, "\n".join(lookups)


def test_without_the_scope_dj_stripe_repeats_them(deliver, invoice_paid, monkeypatch):
    # The bound above is not met by chance: dj-stripe as shipped repeats the lookups for
    # each object it syncs, and the count above sees them.
    _lookups(deliver, sf.event("invoice.paid", invoice_paid["data"]["object"]))
    monkeypatch.setattr(webhook_queue, "event_scope", nullcontext)

    lookups = _lookups(deliver, invoice_paid)

    assert len(lookups) > ONCE, "\n".join(lookups)


def test_the_first_event_creates_the_key_and_account_once(deliver, invoice_paid):
    # The very first event writes the rows: those lookups are not kept, yet every object
    # ends up with the one Account.
    assert deliver(invoice_paid).status_code == 200

    assert APIKey.objects.count() == 1
    assert Account.objects.count() == 1


def test_a_key_rotated_in_the_scope_is_read_again(invoice_paid, deliver):
    assert deliver(invoice_paid).status_code == 200
    account = Account.objects.get()
    with event_scope.event_scope():
        assert account.get_default_api_key(False) == _secret(account)
        APIKey.objects.filter(djstripe_owner_account=account).delete()
        key = APIKey.objects.create(
            secret="sk_test_" + "R" * 24,
            livemode=False,
            type="secret",
            djstripe_owner_account=account,
        )

        assert account.get_default_api_key(False) == key.secret


def _secret(account: Account) -> str:
    secret: str = APIKey.objects.get(djstripe_owner_account=account, type="secret").secret
    return secret


def _line(inv: dict, sub: dict) -> dict:
    """The renewal's line, as Stripe shows it: it names the subscription by id."""
    item = sub["items"]["data"][0]
    return {
        "id": sf.new_id("il"),
        "object": "line_item",
        "amount": 4900,
        "currency": "gbp",
        "livemode": False,
        "metadata": {},
        "quantity": 1,
        "subtotal": 4900,
        "description": "1 × SmartFlow FlowKit",
        "discountable": True,
        "discounts": [],
        "discount_amounts": [],
        "taxes": [],
        "pretax_credit_amounts": [],
        "invoice": inv["id"],
        "subscription": sub["id"],
        "period": {"start": sf.NOW, "end": sf.NOW + 30 * 86400},
        "parent": {
            "type": "subscription_item_details",
            "subscription_item_details": {
                "subscription": sub["id"],
                "subscription_item": item["id"],
            },
        },
        "pricing": {"type": "price_details", "price_details": {"price": item["price"]["id"]}},
    }


def _paid_then_renewed(deliver, fake_stripe, catalog, payer) -> tuple[dict, dict]:
    """A FlowKit subscription whose first invoice.paid is processed, and its renewal's
    invoice at Stripe, not delivered yet."""
    sub = sf.subscription(cus=payer, prc=catalog["flowkit_monthly"])
    first = sf.invoice(cus=payer, sub=sub)
    fake_stripe.add(sub, first)
    assert deliver(sf.event("invoice.paid", first)).status_code == 200
    renewal = sf.invoice(cus=payer, sub=sub)
    renewal["lines"]["data"] = [_line(renewal, sub)]
    fake_stripe.add(renewal)
    return sub, renewal


def _subscription_gets(fake_stripe, sub: dict) -> int:
    return len(fake_stripe.calls_to("GET", f"/v1/subscriptions/{sub['id']}"))


def test_a_renewal_asks_stripe_for_the_invoice_with_its_subscription_and_the_preview(
    deliver, fake_stripe, catalog, payer, customer
):
    # dj-stripe's GET of the invoice brings the subscription too (one request, not two);
    # the stored invoice names it by id, as every query of ours expects (billing/dunning).
    sub, renewal = _paid_then_renewed(deliver, fake_stripe, catalog, payer)
    before = len(fake_stripe.calls)

    assert deliver(sf.event("invoice.paid", renewal)).status_code == 200

    calls = [(method, path) for method, path, _ in fake_stripe.calls[before:]]
    assert calls == [
        ("GET", f"/v1/invoices/{renewal['id']}"),
        ("POST", "/v1/invoices/create_preview"),
    ]
    [expanded] = fake_stripe.calls_to("GET", f"/v1/invoices/{renewal['id']}")
    assert "parent.subscription_details.subscription" in expanded.values()
    stored = Invoice.objects.get(id=renewal["id"]).stripe_data
    assert stored["parent"]["subscription_details"]["subscription"] == sub["id"]
    customer.refresh_from_db()
    assert customer.plan == "flowkit"


def test_a_subscription_unknown_here_comes_with_its_invoice(
    deliver, fake_stripe, catalog, payer, customer
):
    # A renewal of a subscription not synced here (made in Stripe's dashboard, say, for
    # a known customer): it is stored from the invoice's answer before dj-stripe stores
    # the invoice's line, so neither dj-stripe nor the handler GETs it.
    sub, renewal = _paid_then_renewed(deliver, fake_stripe, catalog, payer)
    Subscription.objects.filter(id=sub["id"]).delete()
    before = _subscription_gets(fake_stripe, sub)

    assert deliver(sf.event("invoice.paid", renewal)).status_code == 200

    assert _subscription_gets(fake_stripe, sub) == before
    assert Subscription.objects.filter(id=sub["id"]).exists()
    customer.refresh_from_db()
    assert customer.plan == "flowkit"


def test_a_subscription_changed_at_stripe_is_read_again_with_the_invoice(
    deliver, fake_stripe, catalog, payer, customer
):
    sub = sf.subscription(cus=payer, prc=catalog["flowkit_monthly"])
    inv = sf.invoice(cus=payer, sub=sub)
    fake_stripe.add(sub, inv)
    assert deliver(sf.event("invoice.paid", inv)).status_code == 200
    sub["status"] = "past_due"  # changed at Stripe since: the invoice's GET reads it

    assert deliver(sf.event("invoice.paid", inv)).status_code == 200

    assert Subscription.objects.get(id=sub["id"]).stripe_data["status"] == "past_due"


def test_a_subscription_dj_stripe_fetched_in_the_scope_is_not_fetched_again(
    fake_stripe, catalog, payer, customer
):
    # dj-stripe GETs a subscription an object names when it has no row for it (a checkout
    # session's, say): that row is Stripe's answer of the moment, in this event's scope.
    sub = sf.subscription(cus=payer, prc=catalog["flowkit_monthly"])
    fake_stripe.add(sub)
    with event_scope.event_scope():
        assert not event_scope.subscription_fetched(sub["id"])
        Subscription._get_or_retrieve(id=sub["id"])
        assert event_scope.subscription_fetched(sub["id"])
    assert not event_scope.subscription_fetched(sub["id"])


@pytest.mark.parametrize("plain", ["event_scope", "invoice_expand"])
def test_outside_a_scope_the_invoice_is_read_as_dj_stripe_ships(
    deliver, fake_stripe, invoice_paid, settings, plain
):
    # No scope, or the bench's plain version of the expansion (SPEED_PLAIN).
    settings.SPEED_PLAIN = [plain]
    invoice_id = invoice_paid["data"]["object"]["id"]

    assert deliver(invoice_paid).status_code == 200

    [read] = fake_stripe.calls_to("GET", f"/v1/invoices/{invoice_id}")
    assert "parent.subscription_details.subscription" not in read.values()


def test_speed_plain_turns_the_scope_off(deliver, invoice_paid, settings):
    # The bench's plain version (SPEED_PLAIN=event_scope): dj-stripe as shipped.
    _lookups(deliver, sf.event("invoice.paid", invoice_paid["data"]["object"]))
    settings.SPEED_PLAIN = ["event_scope"]

    lookups = _lookups(deliver, invoice_paid)

    assert len(lookups) > ONCE, "\n".join(lookups)


# --- synced_data: a row's stripe_data read once in a scope --------------------------------

SUBSCRIPTION_READ = re.compile(r'SELECT "djstripe_subscription"\."stripe_data"', re.I)


def _subscription_reads(queries: CaptureQueriesContext) -> int:
    return sum(1 for q in queries.captured_queries if SUBSCRIPTION_READ.search(q["sql"]))


@pytest.fixture
def synced_subscription(fake_stripe, catalog, payer) -> Subscription:
    sub = sf.subscription(cus=payer, prc=catalog["flowkit_monthly"])
    fake_stripe.add(sub)
    return Subscription._get_or_retrieve(id=sub["id"])


def test_an_invoice_paid_reads_its_subscription_once(deliver, invoice_paid):
    # dj-stripe has just synced it; the handlers (next charge, dunning's end, the
    # refund of a payment after the end) read the row it stored once, not four times.
    assert deliver(invoice_paid, process=False).status_code == 200
    delivery = WebhookDelivery.objects.get(event_id=invoice_paid["id"])

    with CaptureQueriesContext(connection) as queries:
        assert webhook_queue.delivery_process(delivery.pk) == "processed"

    assert _subscription_reads(queries) == 1


def test_a_row_is_read_once_in_a_scope_and_each_caller_gets_its_own_copy(
    synced_subscription,
):
    sub_id = synced_subscription.id
    with event_scope.event_scope(), CaptureQueriesContext(connection) as queries:
        first = event_scope.synced_data(Subscription, sub_id)
        assert first is not None
        first["status"] = "changed by a caller"
        second = event_scope.synced_data(Subscription, sub_id)

    assert _subscription_reads(queries) == 1
    assert second is not None
    assert second["status"] == "active"


def test_a_row_saved_or_deleted_in_the_scope_is_read_again(synced_subscription):
    sub_id = synced_subscription.id
    with event_scope.event_scope():
        assert event_scope.synced_data(Subscription, sub_id)["status"] == "active"
        synced_subscription.stripe_data = {**synced_subscription.stripe_data, "status": "past_due"}
        synced_subscription.save()
        assert event_scope.synced_data(Subscription, sub_id)["status"] == "past_due"
        synced_subscription.delete()
        assert event_scope.synced_data(Subscription, sub_id) is None


def test_a_missing_row_stored_later_in_the_scope_is_found(fake_stripe, catalog, payer):
    sub = sf.subscription(cus=payer, prc=catalog["flowkit_monthly"])
    fake_stripe.add(sub)
    with event_scope.event_scope():
        assert event_scope.synced_data(Subscription, sub["id"]) is None
        Subscription._get_or_retrieve(id=sub["id"])
        assert event_scope.synced_data(Subscription, sub["id"]) is not None


@pytest.mark.parametrize("scope", ["none", "plain"])
def test_outside_a_scope_every_read_asks_the_database(synced_subscription, settings, scope):
    # No scope (a page, a command), or the bench's plain version (SPEED_PLAIN).
    settings.SPEED_PLAIN = ["synced_rows"]
    context = event_scope.event_scope() if scope == "plain" else nullcontext()
    with context, CaptureQueriesContext(connection) as queries:
        event_scope.synced_data(Subscription, synced_subscription.id)
        event_scope.synced_data(Subscription, synced_subscription.id)

    assert _subscription_reads(queries) == 2
