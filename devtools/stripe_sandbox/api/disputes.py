"""The sandbox's Stripe API for disputes (opened by `stripe_sandbox dispute`)."""

from __future__ import annotations

from devtools.stripe_sandbox import disputes, store
from devtools.stripe_sandbox.api.params import field_equals, filtered
from devtools.stripe_sandbox.api.router import ID, route
from devtools.stripe_sandbox.store import Obj


@route("GET", f"/disputes/{ID}")
def dispute_retrieve(params: Obj, id: str) -> Obj:
    return store.get(id, "dispute")


@route("GET", "/disputes")
def dispute_list(params: Obj) -> Obj:
    return filtered(
        "dispute",
        params,
        "/v1/disputes",
        charge=field_equals("charge"),
        payment_intent=field_equals("payment_intent"),
    )


@route("POST", f"/disputes/{ID}/close")
def dispute_close(params: Obj, id: str) -> Obj:
    """Accepting the dispute: it is lost."""
    return disputes.dispute_close(id, outcome="lost")[0]
