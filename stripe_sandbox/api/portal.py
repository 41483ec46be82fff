"""The sandbox's Stripe API for billing portal sessions."""

from __future__ import annotations

from django.conf import settings

from stripe_sandbox import store
from stripe_sandbox.api.params import (
    required,
)
from stripe_sandbox.api.router import route
from stripe_sandbox.store import Obj


def portal_url(session_id: str) -> str:
    return f"{settings.SITE_URL}/sandbox/portal/{session_id}/"


@route("POST", "/billing_portal/sessions")
def portal_session_create(params: Obj) -> Obj:
    customer_id = required(params, "customer")
    if store.find(customer_id, "customer") is None:
        raise store.missing("customer", customer_id, param="customer", status=400)
    session_id = store.new_id("bps")
    return store.save(
        {
            "id": session_id,
            "object": "billing_portal.session",
            "configuration": "bpc_sandbox",
            "created": store.now(),
            "customer": customer_id,
            "customer_account": None,
            "flow": None,
            "livemode": False,
            "locale": params.get("locale") or None,
            "on_behalf_of": None,
            "return_url": params.get("return_url") or settings.SITE_URL,
            "url": portal_url(session_id),
        }
    )
