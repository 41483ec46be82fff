"""GET /v1/events as Stripe answers it: the last 30 days only, `types` (at most 20, never
with `type`), `created` ranges and `starting_after` pages, which the app's recovery of
missed webhooks (billing/webhook_recover.py) relies on."""

from __future__ import annotations

import pytest
import stripe

from devtools.stripe_sandbox import actions, store


def test_types_pages_and_created_range(db):
    since = store.now()
    made = [stripe.Customer.create(email=f"c{n}@example.com") for n in range(3)]
    stripe.Product.create(name="Not asked for")

    first = stripe.Event.list(types=["customer.created"], created={"gte": since}, limit=2)
    rest = stripe.Event.list(
        types=["customer.created"],
        created={"gte": since},
        limit=2,
        starting_after=first.data[-1].id,
    )
    later = stripe.Event.list(types=["customer.created"], created={"gt": store.now()})

    listed = [e.data.object.id for e in [*first.data, *rest.data]]
    assert listed == [c.id for c in reversed(made)]  # newest first
    assert first.has_more
    assert not rest.has_more
    assert later.data == []


def test_events_older_than_30_days_are_not_listed_any_more(db):
    customer = stripe.Customer.create(email="old@example.com")
    [event] = stripe.Event.list(type="customer.created").data
    actions.clock_advance(days=29)
    kept = stripe.Event.list(type="customer.created").data

    actions.clock_advance(days=2)

    assert [e.id for e in kept] == [event.id]
    assert stripe.Event.list(type="customer.created").data == []
    assert stripe.Event.list(types=["customer.created"]).data == []
    assert stripe.Event.retrieve(event.id).data.object.id == customer.id


def test_types_takes_at_most_20_names(db):
    names = [f"invoice.kind_{n}" for n in range(21)]
    stripe.Event.list(types=names[:20])

    with pytest.raises(stripe.InvalidRequestError, match="at most 20"):
        stripe.Event.list(types=names)


def test_type_and_types_do_not_go_together(db):
    with pytest.raises(stripe.InvalidRequestError, match="either `type` or `types`"):
        stripe.Event.list(type="invoice.paid", types=["invoice.created"])


def test_pages_walk_both_ways_through_events_of_the_same_second(db, monkeypatch):
    """Pages are cut in SQL from a cursor (created, then insertion, then id): events of one
    second are each listed once, forwards with starting_after and back with ending_before."""
    monkeypatch.setattr(store, "now", lambda: 1_900_000_000)
    made = [stripe.Customer.create(email=f"same{n}@example.com").id for n in range(5)]
    newest_first = [e.data.object.id for e in stripe.Event.list(type="customer.created").data]

    forwards, after = [], None
    while True:
        page = stripe.Event.list(
            type="customer.created", limit=2, **({"starting_after": after} if after else {})
        )
        forwards += page.data
        if not page.has_more:
            break
        after = page.data[-1].id
    back = stripe.Event.list(type="customer.created", limit=2, ending_before=forwards[-1].id)
    first = stripe.Event.list(type="customer.created", limit=2, ending_before=forwards[2].id)

    assert newest_first == made[::-1]
    assert [e.data.object.id for e in forwards] == newest_first
    assert [e.id for e in back.data] == [e.id for e in forwards[-3:-1]]
    assert back.has_more
    assert [e.id for e in first.data] == [e.id for e in forwards[:2]]
    assert not first.has_more


def test_a_cursor_outside_the_listing_is_refused(db):
    stripe.Customer.create(email="c@example.com")
    product = stripe.Product.create(name="Other type")
    [other] = stripe.Event.list(type="product.created").data

    with pytest.raises(stripe.InvalidRequestError, match="No such object"):
        stripe.Event.list(type="customer.created", starting_after=other.id)
    assert product.id == other.data.object.id
