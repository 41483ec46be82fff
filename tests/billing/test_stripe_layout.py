from __future__ import annotations

from billing.stripe_layout import invoice_subscription_id, subscription_period
from tests.billing import stripe_fakes as sf


def _sub(**values):
    cus = sf.customer()
    prc = sf.price(prod=sf.product(), lookup_key="flowkit_monthly")
    return sf.subscription(cus=cus, prc=prc, period_start=1_700_000_000, **values)


def test_the_period_is_read_from_the_items_in_the_pinned_layout():
    assert subscription_period(_sub()) == (1_700_000_000, 1_700_000_000 + 30 * 86400)


def test_the_period_is_read_from_the_subscription_in_the_old_layout():
    sub = _sub()
    for item in sub["items"]["data"]:
        del item["current_period_start"], item["current_period_end"]
    sub.update(current_period_start=1_600_000_000, current_period_end=1_602_592_000)

    assert subscription_period(sub) == (1_600_000_000, 1_602_592_000)


def test_a_subscription_without_a_period_has_none():
    assert subscription_period({"id": "sub_x", "items": {"data": []}}) == (None, None)


def test_the_invoice_subscription_is_found_in_both_layouts():
    sub = _sub()
    pinned = sf.invoice(cus={"id": sub["customer"]}, sub=sub)
    old = {**pinned, "parent": None, "subscription": sub["id"]}
    expanded = {**old, "subscription": {"id": sub["id"], "object": "subscription"}}

    assert invoice_subscription_id(pinned) == sub["id"]
    assert invoice_subscription_id(old) == sub["id"]
    assert invoice_subscription_id(expanded) == sub["id"]
    assert invoice_subscription_id({**pinned, "parent": None}) == ""
