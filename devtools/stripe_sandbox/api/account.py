"""The sandbox's Stripe API for the account."""

from __future__ import annotations

from devtools.stripe_sandbox import objects, store
from devtools.stripe_sandbox.api.router import ID, route
from devtools.stripe_sandbox.store import Obj


def _account() -> Obj:
    account = store.find(objects.ACCOUNT_ID, "account")
    return account or store.save(objects.account())


@route("GET", "/account")
def account_retrieve(params: Obj) -> Obj:
    return _account()


@route("GET", f"/accounts/{ID}")
def accounts_retrieve(params: Obj, id: str) -> Obj:
    if id != objects.ACCOUNT_ID:
        raise store.missing("account", id)
    return _account()
