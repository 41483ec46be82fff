"""One event's processing looks up dj-stripe's API key and Account once, not per object.

dj-stripe stores every object it syncs with its owner Account, found through
`Account.get_or_retrieve_for_api_key(api_key)` (a savepoint, the APIKey row, get or
create, and the Account row) for every object and nested object it syncs (the invoice,
its subscription, its customer...), and its event handlers ask the Account for its
secret key (`Account.get_default_api_key`, an APIKey query) for each object they sync:
about a dozen statements and savepoints per event, the same answers each time (the
bench's *Per event* table, devtools/bench/RESULTS.md). Within one event the answers cannot change
unless an APIKey or Account row is written, so `account_cache()` remembers them for the
block, and forgets everything as soon as such a row is saved or deleted in this process.
Outside the block dj-stripe behaves as shipped: no process-wide cache that another
process's key rotation could make stale.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.db.models.signals import post_delete, post_save
from djstripe.models import Account, APIKey

# For the block being run (None outside any block): api_key -> its Account (or None),
# and ("secret key", account pk, livemode) -> that Account's secret key.
_accounts: ContextVar[dict[Any, Any] | None] = ContextVar("stripe_accounts", default=None)
# APIKey/Account rows written in this process (see _forget).
_writes = [0]

_shipped = Account.get_or_retrieve_for_api_key.__func__
_shipped_key: Callable[[Account, bool | None], str] = Account.get_default_api_key


def _get_or_retrieve_for_api_key(cls: type[Account], api_key: str) -> Any:
    cache = _accounts.get()
    if cache is None:
        return _shipped(cls, api_key)
    if api_key in cache:
        return cache[api_key]
    writes = _writes[0]
    account = _shipped(cls, api_key)
    # A lookup that created the APIKey or Account (the first event after a key change)
    # is not remembered: a savepoint around it could still roll the new rows back.
    if _writes[0] == writes:
        cache[api_key] = account
    return account


def _get_default_api_key(self: Account, livemode: bool | None = None) -> str:
    cache = _accounts.get()
    if cache is None or self.pk is None:
        return _shipped_key(self, livemode)
    key = ("secret key", self.pk, livemode)
    if key not in cache:
        cache[key] = _shipped_key(self, livemode)
    secret: str = cache[key]
    return secret


# Installed on import (billing.webhook_queue imports this module): the wrappers only
# change anything inside account_cache().
Account.get_or_retrieve_for_api_key = classmethod(_get_or_retrieve_for_api_key)
Account.get_default_api_key = _get_default_api_key


@contextmanager
def account_cache() -> Iterator[None]:
    """Within the block, each API key's Account is looked up once."""
    token = _accounts.set({})
    try:
        yield
    finally:
        _accounts.reset(token)


def _forget(**_: Any) -> None:
    _writes[0] += 1
    # A key or account written (an account.updated event, a key rotated by staff in the
    # same process): the next lookup reads the database again.
    cache = _accounts.get()
    if cache is not None:
        cache.clear()


for _model in (Account, APIKey):
    post_save.connect(_forget, sender=_model, dispatch_uid=f"stripe_cache_{_model.__name__}_save")
    post_delete.connect(
        _forget, sender=_model, dispatch_uid=f"stripe_cache_{_model.__name__}_delete"
    )
