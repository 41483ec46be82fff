"""What one Stripe event's processing remembers, for as long as it runs and no longer.

The worker opens `event_scope()` in the event's transaction, under the customer's lock
(billing/webhook_queue.py); outside one, dj-stripe and the handlers behave as shipped
(as they do with SPEED_PLAIN=event_scope, for the bench's side-by-side measurement).

- **dj-stripe's Account and key.** dj-stripe looks up the API key's owner Account
  (`Account.get_or_retrieve_for_api_key`: a savepoint, the APIKey row, the Account row)
  for every object it syncs, and that Account's secret key (`get_default_api_key`) for
  every object its handlers fetch: 19 of a renewal's statements, the same answers each
  time. In a scope each is asked once. Writing an APIKey or Account row (an
  `account.updated` event, the first event after a key is added) forgets the answers,
  and a lookup that wrote one is not kept: a savepoint around it may roll it back.
- **The subscriptions fetched in the event** (`subscription_fetched`): rows made from an
  answer of Stripe's in the scope, so billing/checkout.py's `_subscription_sync` need not
  GET them again. dj-stripe's GET of an invoice asks for the invoice's subscription too
  (`expand`, one request instead of two: `_invoice_retrieve`), syncs it and hands dj-stripe
  the invoice with the subscription's id, as stored invoices always have it. And when
  dj-stripe syncs an object that names an unknown subscription, it GETs it and creates its
  row (Subscription has no expand_fields). Our code syncs what Stripe answered to a
  retrieve, a modify, a cancel or a list, so a subscription we change at Stripe has its row
  made current at once, and the row stays Stripe's latest word within the event.
- **The rows the handlers read** (`synced_data`): an `invoice.paid`'s handlers read the
  stripe_data of the subscription dj-stripe has just synced four times (its next charge,
  dunning's end, the refund of a payment after the end) and the invoice's twice. In a
  scope each row is read once and a copy given to each caller, until the row is saved or
  deleted. In-process, 120 storm renewals each way, two alternating rounds
  (SPEED_PLAIN=synced_rows for the plain one): statements per event 76 -> 72 (first
  meeting) and 56 -> 52 (customer known), the worker's CPU per event 37.5, 38.8 -> 34.8,
  34.3 ms (customer known).

Measured against its plain version (`make bench --only storm`, 800 renewals at 2 workers ×
16, one run each, SPEED_PLAIN=event_scope for the plain one): 17.0 → 21.3 events/s
(+25 %), 3.5 → 3.0 Stripe calls per event. The invoice's expanded subscription then took
a renewal from 3 Stripe calls to 2 (the bench's bound from Stripe's rate limit: 30 → 45
events/s, and 300 ms less waiting per event); against its plain version
(SPEED_PLAIN=invoice_expand, the same 800-renewal storm, two bench runs back to back):
first meeting 17.5 → 17.9 events/s, known customers 20.4 → 21.3, Stripe requests per
event 3.0 → 2.0. Its CPU is the same within noise (in-process, 150 renewals each way:
40-42 ms against 38-41 ms): the sandbox and stripe-python handle the same subscription.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import stripe
from django.conf import settings
from django.db.models import Model
from django.db.models.signals import post_delete, post_save
from djstripe.models import Account, APIKey, Invoice, Subscription


@dataclass
class _Scope:
    answers: dict[tuple[Any, ...], Any] = field(default_factory=dict)
    writes: int = 0  # APIKey and Account rows written in the scope
    subscriptions_synced: set[str] = field(default_factory=set)
    # `synced_data`: a row's stripe_data as JSON text (None: no row), by (model, Stripe id).
    rows: dict[tuple[type[Model], str], str | None] = field(default_factory=dict)


_scope: ContextVar[_Scope | None] = ContextVar("billing_event_scope", default=None)


@contextmanager
def event_scope() -> Iterator[None]:
    if "event_scope" in settings.SPEED_PLAIN:  # the bench measures it against plain
        yield
        return
    token = _scope.set(_Scope())
    try:
        yield
    finally:
        _scope.reset(token)


def subscription_fetched(subscription_id: str) -> bool:
    """Whether the subscription's row was made from Stripe's answer in this event's scope:
    dj-stripe's GET of it, or of an invoice of it (`_invoice_retrieve`)."""
    scope = _scope.get()
    return scope is not None and subscription_id in scope.subscriptions_synced


# The rows `synced_data` remembers in a scope: a save or delete of one (post_save, post_delete,
# connected below) forgets it. Neither model is written by QuerySet.update, which sends no
# signal, in the app or in dj-stripe.
_REMEMBERED_ROWS = (Invoice, Subscription)


def synced_data(model: type[Model], stripe_id: str) -> dict[str, Any] | None:
    """The `stripe_data` of dj-stripe's row `stripe_id` of `model` (None: no such row),
    as a handler reads what dj-stripe has just synced. In a scope a subscription's or an
    invoice's is read from the database once and given again (a copy: each caller may
    change its own) until the row is saved or deleted: an invoice.paid's handlers read
    its subscription four times and the invoice twice."""
    scope = _scope.get()
    if scope is None or model not in _REMEMBERED_ROWS or "synced_rows" in settings.SPEED_PLAIN:
        return _synced_read(model, stripe_id)
    key = (model, stripe_id)
    if key in scope.rows:
        text = scope.rows[key]
        copy: dict[str, Any] | None = None if text is None else json.loads(text)
        return copy
    data = _synced_read(model, stripe_id)
    scope.rows[key] = None if data is None else json.dumps(data)
    return data


def _synced_read(model: type[Model], stripe_id: str) -> dict[str, Any] | None:
    data: dict[str, Any] | None = (
        model._default_manager.filter(id=stripe_id).values_list("stripe_data", flat=True).first()
    )
    return data


def _row_written(sender: type[Model], instance: Model, **_: Any) -> None:
    if (scope := _scope.get()) is not None:
        scope.rows.pop((sender, str(getattr(instance, "id", ""))), None)


def _remembered(key: tuple[Any, ...], lookup: Callable[[], Any]) -> Any:
    scope = _scope.get()
    if scope is None:
        return lookup()
    if key in scope.answers:
        return scope.answers[key]
    writes = scope.writes
    answer = lookup()
    if scope.writes == writes:
        scope.answers[key] = answer
    return answer


_shipped_account = Account.get_or_retrieve_for_api_key.__func__
_shipped_key = Account.get_default_api_key


def _account_for_key(cls: type[Account], api_key: str) -> Any:
    return _remembered(("account", api_key), lambda: _shipped_account(cls, api_key))


def _secret_key(self: Account, livemode: bool | None = None) -> str:
    if self.pk is None:  # an unsaved Account: nothing to remember it by
        key: str = _shipped_key(self, livemode)
    else:
        key = _remembered(("key", self.pk, livemode), lambda: _shipped_key(self, livemode))
    return key


_shipped_invoice_retrieve = Invoice.api_retrieve
# Stripe's path of an invoice's subscription on this API version (billing/stripe_layout.py).
_INVOICE_SUBSCRIPTION = "parent.subscription_details.subscription"


def _invoice_retrieve(self: Invoice, api_key: str | None = None, **kwargs: Any) -> Any:
    """dj-stripe's GET of an invoice (its webhook handler re-reads the invoice of every
    invoice event), in a scope with the invoice's subscription expanded: the subscription
    is synced from that answer and the invoice handed on with its id in its place."""
    scope = _scope.get()
    if scope is None or "invoice_expand" in settings.SPEED_PLAIN:  # the bench's plain one
        return _shipped_invoice_retrieve(self, api_key=api_key, **kwargs)
    self.expand_fields = [*type(self).expand_fields, _INVOICE_SUBSCRIPTION]
    try:
        invoice = _shipped_invoice_retrieve(self, api_key=api_key, **kwargs)
    finally:
        del self.expand_fields
    # A StripeObject, not a dict: a field it lacks raises AttributeError.
    details = getattr(getattr(invoice, "parent", None), "subscription_details", None)
    subscription = getattr(details, "subscription", None)
    if details is not None and isinstance(subscription, stripe.Subscription):
        Subscription.sync_from_stripe_data(subscription, api_key=api_key)
        scope.subscriptions_synced.add(subscription.id)
        details["subscription"] = subscription.id
    return invoice


# Installed on import (billing.webhook_queue imports this module); they change nothing
# outside a scope.
Account.get_or_retrieve_for_api_key = classmethod(_account_for_key)
Account.get_default_api_key = _secret_key
Invoice.api_retrieve = _invoice_retrieve


def _key_or_account_written(**_: Any) -> None:
    if (scope := _scope.get()) is not None:
        scope.writes += 1
        scope.answers.clear()


def _subscription_saved(instance: Subscription, created: bool, **_: Any) -> None:
    if created and (scope := _scope.get()) is not None:
        scope.subscriptions_synced.add(instance.id)


for _model in (Account, APIKey):
    post_save.connect(_key_or_account_written, sender=_model, dispatch_uid=f"scope_{_model}_save")
    post_delete.connect(
        _key_or_account_written, sender=_model, dispatch_uid=f"scope_{_model}_delete"
    )
post_save.connect(_subscription_saved, sender=Subscription, dispatch_uid="scope_subscription")
for _model in _REMEMBERED_ROWS:
    post_save.connect(_row_written, sender=_model, dispatch_uid=f"scope_row_{_model}_save")
    post_delete.connect(_row_written, sender=_model, dispatch_uid=f"scope_row_{_model}_delete")
