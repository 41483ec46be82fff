"""The sandbox's Stripe API for checkout sessions."""

from __future__ import annotations

import copy
import re

from django.conf import settings

from devtools.stripe_sandbox import invoices, objects, store
from devtools.stripe_sandbox.api.params import (
    as_bool,
    field_equals,
    filtered,
    int_param,
    required,
)
from devtools.stripe_sandbox.api.router import ID, route
from devtools.stripe_sandbox.events import event_emit
from devtools.stripe_sandbox.store import Obj, StripeError, virtual

CHECKOUT_MODES = ("payment", "setup", "subscription")


def checkout_url(session_id: str) -> str:
    # Read at call time: tests (and live servers) override SITE_URL.
    return f"{settings.SITE_URL}/sandbox/checkout/{session_id}/"


def _line_items(params: Obj, mode: str) -> list[Obj]:
    raw = params.get("line_items")
    if not raw:
        raise StripeError(f"`line_items` is required in `{mode}` mode.", param="line_items")
    if not isinstance(raw, list):
        raise StripeError("Invalid array", param="line_items")
    items = []
    for index, line in enumerate(raw):
        param = f"line_items[{index}][price]"
        if not isinstance(line, dict) or not line.get("price"):
            raise StripeError("You must specify either `price` or `price_data`.", param=param)
        price = store.find(line["price"], "price")
        if price is None:
            raise store.missing("price", line["price"], param=param, status=400)
        if not price["active"]:
            raise StripeError(f"The price specified ({price['id']}) is inactive.", param=param)
        if mode == "payment" and price["type"] == "recurring":
            raise StripeError(
                "You specified `payment` mode but passed a recurring price. Either switch to "
                "`subscription` mode or use only one-time prices.",
                param=param,
            )
        quantity = int_param(line, "quantity", default=1, minimum=1)
        items.append(
            {
                "id": store.new_id("li"),
                "object": "item",
                "adjustable_quantity": None,
                "amount_discount": 0,
                "amount_subtotal": price["unit_amount"] * quantity,
                "amount_tax": 0,
                "amount_total": price["unit_amount"] * quantity,
                "currency": price["currency"],
                "description": invoices.product_name(price),
                "metadata": {},
                "price": price,
                "quantity": quantity,
            }
        )
    if mode == "subscription" and not any(li["price"]["type"] == "recurring" for li in items):
        raise StripeError(
            "You must provide at least one recurring price in `subscription` mode.",
            param="line_items",
        )
    if len({li["currency"] for li in items}) > 1:
        raise StripeError("All line items must share one currency.", param="line_items")
    return items


@route("POST", "/checkout/sessions")
def checkout_session_create(params: Obj) -> Obj:
    mode = required(params, "mode")
    if mode not in CHECKOUT_MODES:
        raise StripeError(f"Invalid mode: must be one of {', '.join(CHECKOUT_MODES)}", param="mode")
    if mode == "setup":
        raise StripeError("The sandbox does not support `setup` mode.", param="mode")
    success = required(params, "success_url")
    if not re.match(r"https?://", success):
        raise StripeError("Not a valid URL", param="success_url")
    customer_id = params.get("customer")
    if customer_id and store.find(customer_id, "customer") is None:
        raise store.missing("customer", customer_id, param="customer", status=400)
    items = _line_items(params, mode)
    total = sum(li["amount_total"] for li in items)
    tax_settings = _tax_settings(params, customer_id)
    session_id = store.new_id("cs_test")
    ts = store.now()
    expires = int_param(params, "expires_at", default=ts + 86400)
    session = {
        "id": session_id,
        "object": "checkout.session",
        "adaptive_pricing": {"enabled": False},
        "after_expiration": None,
        "allow_promotion_codes": True if as_bool(params.get("allow_promotion_codes")) else None,
        "amount_subtotal": total,
        "amount_total": total,
        **tax_settings,
        "cancel_url": params.get("cancel_url") or None,
        "client_reference_id": params.get("client_reference_id") or None,
        "client_secret": None,
        "collected_information": None,
        "consent": None,
        "consent_collection": None,
        "created": ts,
        "currency": items[0]["currency"],
        "currency_conversion": None,
        "custom_fields": [],
        "custom_text": {
            "after_submit": None,
            "shipping_address": None,
            "submit": None,
            "terms_of_service_acceptance": None,
        },
        "customer": customer_id or None,
        "customer_account": None,
        "customer_creation": None if customer_id else "if_required",
        "customer_details": None,
        "customer_email": params.get("customer_email") or None,
        "discounts": [],
        "expires_at": expires,
        "integration_identifier": None,
        "invoice": None,
        "invoice_creation": _invoice_creation(params, mode),
        "livemode": False,
        "locale": params.get("locale") or None,
        "managed_payments": None,
        "metadata": objects.metadata_merge({}, params.get("metadata")),
        "mode": mode,
        "origin_context": None,
        "payment_intent": None,
        "payment_link": None,
        "payment_method_collection": "always",
        "payment_method_configuration_details": None,
        "payment_method_options": {"card": {"request_three_d_secure": "automatic"}},
        "payment_method_types": ["card"],
        "payment_status": "unpaid",
        "permissions": None,
        "phone_number_collection": {"enabled": False},
        "recovered_from": None,
        "saved_payment_method_options": None,
        "setup_intent": None,
        "shipping_address_collection": None,
        "shipping_cost": None,
        "shipping_options": [],
        "status": "open",
        "submit_type": None,
        "subscription": None,
        "success_url": success,
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        # This version's value for Stripe's hosted page (earlier versions said "hosted").
        "ui_mode": "hosted_page",
        "url": checkout_url(session_id),
        "wallet_options": None,
        "_line_items": items,
        # Free days before the first payment (subscription_data[trial_period_days]).
        "_trial_period_days": _trial_period_days(params, mode),
        "_subscription_metadata": objects.metadata_merge(
            {}, (params.get("subscription_data") or {}).get("metadata")
        ),
        "_payment_intent_metadata": objects.metadata_merge(
            {}, (params.get("payment_intent_data") or {}).get("metadata")
        ),
    }
    if session["allow_promotion_codes"] and params.get("discounts"):
        raise StripeError(
            "You may only specify one of these parameters: allow_promotion_codes, discounts.",
            param="allow_promotion_codes",
        )
    return store.save(session)


def _invoice_creation(params: Obj, mode: str) -> Obj | None:
    """`invoice_creation`: a paid invoice after a one-off payment (Stripe makes one for
    every subscription anyway, so it is null there and refused as a parameter)."""
    asked = params.get("invoice_creation") or {}
    if mode != "payment":
        if asked:
            raise StripeError(
                "You can only set `invoice_creation` in `payment` mode.",
                param="invoice_creation",
            )
        return None
    data = asked.get("invoice_data") or {}
    return {
        "enabled": as_bool(asked.get("enabled")),
        "invoice_data": {
            "account_tax_ids": None,
            "custom_fields": None,
            "description": data.get("description") or None,
            "footer": data.get("footer") or None,
            "issuer": None,
            "metadata": objects.metadata_merge({}, data.get("metadata")),
            "rendering_options": None,
        },
    }


def _trial_period_days(params: Obj, mode: str) -> int | None:
    data = params.get("subscription_data") or {}
    if data.get("trial_period_days") in (None, ""):
        return None
    param = "subscription_data[trial_period_days]"
    if mode != "subscription":
        raise StripeError(
            "`subscription_data` is only allowed in `subscription` mode.", param=param
        )
    days = int_param(data, "trial_period_days", default=0, minimum=1)
    if days > 730:  # Stripe's limit: two years
        raise StripeError("The trial period can be at most 730 days.", param=param)
    return days


def _tax_settings(params: Obj, customer_id: str | None) -> Obj:
    """automatic_tax, billing_address_collection, tax_id_collection and what Stripe
    requires with them: a customer passed in must have an address or let Checkout save
    the one entered (`customer_update[address]=auto`)."""
    automatic = as_bool((params.get("automatic_tax") or {}).get("enabled"))
    collection = params.get("billing_address_collection") or None
    if collection not in (None, "auto", "required"):
        raise StripeError(
            f"Invalid billing_address_collection: {collection}", param="billing_address_collection"
        )
    update = params.get("customer_update") or {}
    if update and not customer_id:
        raise StripeError(
            "`customer_update` can only be used with `customer`.", param="customer_update"
        )
    customer = store.find(customer_id, "customer") if customer_id else None
    if (
        automatic
        and customer is not None
        and not (customer.get("address") or {}).get("country")
        and "auto" not in (update.get("address"), update.get("shipping"))
    ):
        raise StripeError(
            "Automatic tax calculation in Checkout requires a valid address on the Customer. "
            "Add a valid address to the Customer or set either `customer_update[address]` to "
            "'auto' or `customer_update[shipping]` to 'auto' to save the address entered in "
            "Checkout to the Customer.",
            param="automatic_tax[enabled]",
        )
    tax_ids = as_bool((params.get("tax_id_collection") or {}).get("enabled"))
    return {
        "automatic_tax": {
            "enabled": automatic,
            "liability": {"account": None, "type": "self"} if automatic else None,
            "provider": "stripe" if automatic else None,
            "status": "requires_location_inputs" if automatic else None,
        },
        "billing_address_collection": collection,
        "tax_id_collection": {"enabled": tax_ids, "required": "never"},
        "_customer_update": {k: v for k, v in update.items() if v in ("auto", "never")},
    }


@virtual("checkout.session", "line_items")
def _session_line_items(session: Obj) -> Obj:
    return store.list_envelope(
        copy.deepcopy(session.get("_line_items") or []),
        f"/v1/checkout/sessions/{session['id']}/line_items",
    )


@virtual("item", "discounts")
def _item_discounts(item: Obj) -> list[Obj]:
    return copy.deepcopy(item.get("_discounts") or [])


@virtual("item", "taxes")
def _item_taxes(item: Obj) -> list[Obj]:
    return copy.deepcopy(item.get("_taxes") or [])


@virtual("total_details", "breakdown")
def _breakdown(details: Obj) -> Obj:
    # Made when the session completed (checkout_pricing.quote_apply).
    return copy.deepcopy(details.get("_breakdown")) or {"discounts": [], "taxes": []}


@route("GET", f"/checkout/sessions/{ID}")
def checkout_session_retrieve(params: Obj, id: str) -> Obj:
    return store.get(id, "checkout.session")


@route("GET", f"/checkout/sessions/{ID}/line_items")
def checkout_session_line_items(params: Obj, id: str) -> Obj:
    session = store.get(id, "checkout.session")
    return store.paginate(
        session.get("_line_items") or [], params, f"/v1/checkout/sessions/{id}/line_items"
    )


@route("POST", f"/checkout/sessions/{ID}/expire")
def checkout_session_expire(params: Obj, id: str) -> Obj:
    session = store.get(id, "checkout.session", lock=True)
    if session["status"] != "open":
        raise StripeError(
            f'Only Checkout Sessions with a status in ["open"] can be expired. This Checkout '
            f'Session has a status of "{session["status"]}".',
        )
    session["status"] = "expired"
    session["url"] = None
    store.save(session)
    event_emit("checkout.session.expired", session)
    return session


@route("GET", "/checkout/sessions")
def checkout_session_list(params: Obj) -> Obj:
    return filtered(
        "checkout.session",
        params,
        "/v1/checkout/sessions",
        customer=field_equals("customer"),
        payment_intent=field_equals("payment_intent"),
        subscription=field_equals("subscription"),
        status=field_equals("status"),
    )
