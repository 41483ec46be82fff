"""Stripe for billing tests (the offline sandbox, recorded) and builders of Stripe objects.

Objects start from Stripe's own examples (tests/fixtures/stripe/fixtures3.json) with real
values put in; references to objects a test did not make are cleared, so dj-stripe
does not go looking for them. `FakeStripe` is the offline sandbox installed as
stripe-python's HTTP client (the boundary where Stripe really is), with objects a test
stores in it and a record of every call.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import itertools
import json
import re
import time
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import stripe

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "stripe" / "fixtures3.json"
API_VERSION = "2026-08-26.dahlia"
# The signing secret of the `endpoint` fixture's webhook endpoint (tests/conftest.py).
SECRET = "whsec_test_secret_for_billing_tests"
NOW = int(time.time())
_counter = itertools.count(1)

_ID = re.compile(r"^[a-z]{2,5}_[A-Za-z0-9_]+$")


@cache
def _fixtures() -> dict[str, Any]:
    return json.loads(FIXTURES.read_text())["resources"]


def _base(kind: str, **values: Any) -> dict[str, Any]:
    obj = copy.deepcopy(_fixtures()[kind])
    for key, value in list(obj.items()):
        # Clear references to example objects that do not exist here.
        if key not in ("id", "object") and isinstance(value, str) and _ID.match(value):
            obj[key] = None
    obj.update(livemode=False, created=NOW, metadata={})
    obj.update(values)
    return obj


def new_id(prefix: str) -> str:
    return f"{prefix}_test{next(_counter):06d}{int(time.time() * 1000) % 100000:05d}"


def customer(*, id: str | None = None, email: str = "payer@example.com", **values: Any) -> dict:
    return _base(
        "customer",
        id=id or new_id("cus"),
        email=email,
        discount=None,
        invoice_settings={
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        **values,
    )


def product(*, id: str | None = None, name: str = "SmartFlow", **values: Any) -> dict:
    return _base(
        "product",
        id=id or new_id("prod"),
        name=name,
        default_price=None,
        marketing_features=[],
        **values,
    )


def price(
    *,
    prod: dict,
    lookup_key: str | None,
    amount: int = 4900,
    recurring: bool = True,
    id: str | None = None,
    interval: str = "month",
) -> dict:
    return _base(
        "price",
        id=id or new_id("price"),
        product=prod["id"],
        lookup_key=lookup_key,
        unit_amount=amount,
        unit_amount_decimal=str(amount),
        currency="gbp",
        active=True,
        type="recurring" if recurring else "one_time",
        recurring={
            "interval": interval,
            "interval_count": 1,
            "meter": None,
            "usage_type": "licensed",
            "trial_period_days": None,
        }
        if recurring
        else None,
    )


def subscription(
    *,
    cus: dict,
    prc: dict,
    status: str = "active",
    period_start: int = NOW,
    id: str | None = None,
    metadata: dict | None = None,
) -> dict:
    sub_id = id or new_id("sub")
    item = _base(
        "subscription_item",
        id=new_id("si"),
        subscription=sub_id,
        price=prc,
        quantity=1,
        current_period_start=period_start,
        current_period_end=period_start + 30 * 86400,
        discounts=[],
        tax_rates=[],
    )
    item.pop("plan", None)
    return _base(
        "subscription",
        id=sub_id,
        customer=cus["id"],
        status=status,
        items={
            "object": "list",
            "data": [item],
            "has_more": False,
            "url": f"/v1/subscription_items?subscription={sub_id}",
        },
        metadata=metadata or {},
        start_date=period_start,
        billing_cycle_anchor=period_start,
        currency="gbp",
        default_tax_rates=[],
        discounts=[],
        canceled_at=NOW if status == "canceled" else None,
        ended_at=NOW if status == "canceled" else None,
        # Stripe's example has these set; a subscription nobody changed has neither.
        pending_update=None,
        cancel_at_period_end=False,
        cancel_at=None,
    )


def invoice(*, cus: dict, sub: dict, status: str = "paid", id: str | None = None) -> dict:
    return _base(
        "invoice",
        id=id or new_id("in"),
        customer=cus["id"],
        status=status,
        currency="gbp",
        amount_due=4900,
        amount_paid=4900 if status == "paid" else 0,
        amount_remaining=0 if status == "paid" else 4900,
        parent={
            "type": "subscription_details",
            "quote_details": None,
            "subscription_details": {"subscription": sub["id"], "metadata": {}},
        },
        lines={"object": "list", "data": [], "has_more": False, "url": "/v1/invoices/x/lines"},
        discounts=[],
        default_tax_rates=[],
        total_discount_amounts=[],
        total_taxes=[],
        account_tax_ids=None,
        customer_tax_ids=[],
    )


def session(
    *,
    cus: dict,
    mode: str,
    user_id: int | None,
    status: str = "complete",
    payment_status: str = "paid",
    sub: dict | None = None,
    payment_intent: str | None = None,
    amount: int = 4900,
    id: str | None = None,
) -> dict:
    metadata = {"djstripe_subscriber": str(user_id), "app_user_id": str(user_id)} if user_id else {}
    return _base(
        "checkout.session",
        id=id or new_id("cs_test"),
        customer=cus["id"],
        customer_details={
            "email": cus["email"],
            "address": None,
            "name": None,
            "phone": None,
            "tax_exempt": "none",
            "tax_ids": [],
            "business_name": None,
            "individual_name": None,
        },
        mode=mode,
        status=status,
        payment_status=payment_status,
        subscription=sub["id"] if sub else None,
        payment_intent=payment_intent,
        metadata=metadata,
        amount_total=amount,
        amount_subtotal=amount,
        currency="gbp",
        url=None,
        success_url="http://testserver/billing/success/?session_id={CHECKOUT_SESSION_ID}",
        cancel_url="http://testserver/pricing/",
        discounts=[],
    )


def payment_intent(*, cus: dict, amount: int = 49000, id: str | None = None) -> dict:
    return _base(
        "payment_intent",
        id=id or new_id("pi"),
        customer=cus["id"],
        amount=amount,
        amount_received=amount,
        currency="gbp",
        status="succeeded",
        payment_method_types=["card"],
    )


def charge(*, cus: dict, pi: dict, refunded: bool = False, id: str | None = None) -> dict:
    return _base(
        "charge",
        id=id or new_id("ch"),
        customer=cus["id"],
        payment_intent=pi["id"],
        amount=pi["amount"],
        amount_captured=pi["amount"],
        amount_refunded=pi["amount"] if refunded else 0,
        refunded=refunded,
        currency="gbp",
        status="succeeded",
        paid=True,
        captured=True,
        refunds={"object": "list", "data": [], "has_more": False, "url": "/v1/refunds"},
    )


def event(kind: str, obj: dict, *, id: str | None = None, previous: dict | None = None) -> dict:
    # Stripe never sends the sandbox's private bookkeeping (keys starting with "_").
    public = {k: v for k, v in obj.items() if not k.startswith("_")}
    data: dict[str, Any] = {"object": copy.deepcopy(public)}
    if previous is not None:
        data["previous_attributes"] = previous
    return {
        "id": id or new_id("evt"),
        "object": "event",
        "api_version": API_VERSION,
        "created": int(time.time()),
        "data": data,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": kind,
    }


def signature(payload: bytes, secret: str, *, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


class FakeStripe(stripe.HTTPClient):
    """The offline sandbox as stripe-python's HTTP client, with what tests need on top:
    every call recorded in `calls`, objects stored with `add` (so a test can put Stripe
    in exactly the state it describes, e.g. a past_due subscription), and `fail` to make
    Stripe answer 500. The sandbox answers everything else, so the suite has one model
    of Stripe (devtools/stripe_sandbox/)."""

    name = "fake-stripe"

    def __init__(self) -> None:
        # Imported here: the builders above serve processes without the sandbox installed
        # (the production-settings tests sign events with them).
        from devtools.stripe_sandbox.client import SandboxHTTPClient

        super().__init__()
        self._sandbox = SandboxHTTPClient()
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.fail: stripe.StripeError | None = None
        # The dicts tests added, with what was last stored for each: a test that edits
        # one (say `sub["status"] = "canceled"`) changes Stripe's copy, as it did when
        # the fake held the very dict, and the sandbox's own changes flow back into it.
        self._added: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}

    def close(self) -> None:
        pass

    def add(self, *objs: dict[str, Any]) -> None:
        from devtools.stripe_sandbox import store

        for obj in objs:
            store.save(copy.deepcopy(obj))
            self._added[obj["id"]] = (obj, copy.deepcopy(obj))

    @property
    def objects(self) -> _StoredObjects:
        self._push()
        return _StoredObjects(self)

    def calls_to(self, method: str, prefix: str) -> list[dict[str, Any]]:
        return [p for m, path, p in self.calls if m == method and path.startswith(prefix)]

    def request(self, method, url, headers, post_data=None, *, _usage=None):
        parts = urlsplit(url)
        params = dict(parse_qsl(parts.query)) | dict(parse_qsl(post_data or ""))
        self.calls.append((method.upper(), parts.path, params))
        if self.fail is not None:
            return json.dumps({"error": {"type": "api_error", "message": str(self.fail)}}), 500, {}
        self._push()
        try:
            return self._sandbox.request(method, url, headers, post_data, _usage=_usage)
        finally:
            self._pull()

    def _push(self) -> None:
        from devtools.stripe_sandbox import store

        for obj, stored in self._added.values():
            if obj != stored:
                store.save(copy.deepcopy(obj))
                self._added[obj["id"]] = (obj, copy.deepcopy(obj))

    def _pull(self) -> None:
        from devtools.stripe_sandbox import store

        for object_id, (obj, stored) in list(self._added.items()):
            current = store.find(object_id)
            if current is not None and current != stored:
                obj.clear()
                obj.update(copy.deepcopy(current))
                self._added[object_id] = (obj, copy.deepcopy(current))


class _StoredObjects:
    """`fake.objects[id]`: what the sandbox stores for `id`, as a dict the test may edit
    (its edits reach the sandbox before the next call); assigning stores an object."""

    def __init__(self, fake: FakeStripe) -> None:
        self.fake = fake

    def __getitem__(self, object_id: str) -> dict[str, Any]:
        from devtools.stripe_sandbox import store

        if object_id not in self.fake._added:
            obj = store.find(object_id)
            if obj is None:
                raise KeyError(object_id)
            self.fake._added[object_id] = (obj, copy.deepcopy(obj))
        return self.fake._added[object_id][0]

    def __setitem__(self, object_id: str, obj: dict[str, Any]) -> None:
        self.fake.add({**obj, "id": object_id})

    def values(self) -> list[dict[str, Any]]:
        from devtools.stripe_sandbox.models import StripeObject

        return [row.data for row in StripeObject.objects.order_by("pk")]
