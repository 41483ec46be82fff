"""The sandbox's Stripe API for the Billing Portal: configurations and sessions."""

from __future__ import annotations

from django.conf import settings

from devtools.stripe_sandbox import portal_configurations, store
from devtools.stripe_sandbox.api.params import filtered, flag_is, required, updated
from devtools.stripe_sandbox.api.router import ID, route
from devtools.stripe_sandbox.events import event_emit
from devtools.stripe_sandbox.store import Obj, StripeError

CONFIGURATIONS = "/v1/billing_portal/configurations"
SESSION_PARAMS = (
    "configuration",
    "customer",
    "customer_account",
    "expand",
    "flow_data",
    "locale",
    "on_behalf_of",
    "return_url",
)


def portal_url(session_id: str) -> str:
    return f"{settings.SITE_URL}/sandbox/portal/{session_id}/"


@route("POST", "/billing_portal/configurations")
def configuration_create(params: Obj) -> Obj:
    portal_configurations.check(params, creating=True)
    config = portal_configurations.apply(portal_configurations.blank(), params)
    store.save(config)
    event_emit("billing_portal.configuration.created", config)
    return config


@route("GET", f"/billing_portal/configurations/{ID}")
def configuration_retrieve(params: Obj, id: str) -> Obj:
    return store.get(id, "billing_portal.configuration", kind="configuration")


@route("POST", f"/billing_portal/configurations/{ID}")
def configuration_update(params: Obj, id: str) -> Obj:
    portal_configurations.check(params, creating=False)
    before = store.get(id, "billing_portal.configuration", kind="configuration", lock=True)
    config = portal_configurations.apply(before, params)
    return updated(config, before, "billing_portal.configuration.updated")


@route("GET", "/billing_portal/configurations")
def configuration_list(params: Obj) -> Obj:
    return filtered(
        "billing_portal.configuration",
        params,
        CONFIGURATIONS,
        active=flag_is("active"),
        is_default=flag_is("is_default"),
    )


@route("POST", "/billing_portal/sessions")
def portal_session_create(params: Obj) -> Obj:
    for key in params:
        if key not in SESSION_PARAMS:
            raise StripeError(f"Received unknown parameter: {key}", param=key)
    customer_id = required(params, "customer")
    if store.find(customer_id, "customer") is None:
        raise store.missing("customer", customer_id, param="customer", status=400)
    config = portal_configurations.for_session(params.get("configuration"))
    session_id = store.new_id("bps")
    return store.save(
        {
            "id": session_id,
            "object": "billing_portal.session",
            "configuration": config["id"],
            "created": store.now(),
            "customer": customer_id,
            "customer_account": None,
            "flow": None,
            "livemode": False,
            "locale": params.get("locale") or None,
            "on_behalf_of": None,
            "return_url": params.get("return_url")
            or config["default_return_url"]
            or settings.SITE_URL,
            "url": portal_url(session_id),
        }
    )
