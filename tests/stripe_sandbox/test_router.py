"""What one API request costs the sandbox's database: a request that only reads opens no
transaction of its own, reads the clock once, and reads each object once."""

from __future__ import annotations

from typing import Any

import pytest
import stripe
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from devtools.stripe_sandbox import store
from devtools.stripe_sandbox.api import router
from devtools.stripe_sandbox.models import IdempotentRequest


def _sql(queries: CaptureQueriesContext) -> list[str]:
    return [query["sql"] for query in queries.captured_queries]


def _preview(subscribed: Any, **options: Any) -> Any:
    return stripe.Invoice.create_preview(
        customer=subscribed.customer, subscription=subscribed.id, **options
    )


def test_a_retrieve_opens_no_savepoint_in_the_callers_transaction(subscribed):
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        stripe.Subscription.retrieve(subscribed.id)

    assert len(_sql(queries)) == 1, "\n".join(_sql(queries))


def test_a_preview_opens_no_savepoint_and_reads_the_clock_and_each_object_once(subscribed):
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        preview = _preview(subscribed)

    sql = _sql(queries)
    reads = [s for s in sql if s.startswith("SELECT")]
    assert preview.billing_reason == "upcoming"
    assert not [s for s in sql if "SAVEPOINT" in s], "\n".join(sql)
    assert len([s for s in reads if "sandbox_sandboxclock" in s]) == 1, "\n".join(sql)
    assert len([s for s in reads if subscribed.id in s]) == 1, "\n".join(sql)
    assert len([s for s in reads if subscribed.customer in s]) == 1, "\n".join(sql)


def test_a_preview_is_replayed_under_its_idempotency_key(subscribed):
    first = _preview(subscribed, idempotency_key="preview-1")
    again = _preview(subscribed, idempotency_key="preview-1")

    assert first.id.startswith("upcoming_in_")
    assert again.id == first.id


def test_a_write_still_happens_in_a_transaction_of_its_own(subscribed):
    with CaptureQueriesContext(connection) as queries:
        stripe.Subscription.modify(subscribed.id, metadata={"k": "v"})

    assert any("SAVEPOINT" in s for s in _sql(queries)), "\n".join(_sql(queries))


def test_a_key_answered_first_by_a_concurrent_request_keeps_its_answer(db):
    router._remember("key-1", "POST", "/v1/customers", 200, {"id": "cus_first"})
    router._remember("key-1", "POST", "/v1/customers", 200, {"id": "cus_second"})

    assert IdempotentRequest.objects.get(key="key-1").body == '{"id": "cus_first"}'


def test_the_clock_moved_within_a_request_is_read_anew(db):
    with store.clock_read_once():
        before = store.clock_offset()
        store.clock_advance(3600)

        assert store.clock_offset() == before + 3600


@pytest.mark.parametrize("paths", [[], ["customer"]])
def test_the_answer_is_a_copy_without_private_keys(subscribed, paths):
    stored = store.get(subscribed.id, "subscription")
    stored["_private"] = {"card": "4242"}

    answer = store.expand(stored, paths)
    answer["metadata"]["changed"] = "yes"

    assert "_private" not in answer
    assert "changed" not in stored["metadata"]
    assert stored["customer"] == subscribed.customer
