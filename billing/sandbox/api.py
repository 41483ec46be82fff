"""The sandbox's answer to each Stripe API request: routing, validation, expansion."""

from __future__ import annotations

import copy
import json
import logging
import re
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from billing.sandbox import actions, objects, store
from billing.sandbox.events import changes, current_request, event_emit
from billing.sandbox.models import IdempotentRequest, StripeObject
from billing.sandbox.store import Obj, StripeError, virtual
from billing.stripe_layout import invoice_subscription_id

logger = logging.getLogger(__name__)

Handler = Callable[..., Obj]
ROUTES: list[tuple[str, re.Pattern[str], Handler]] = []
ID = r"(?P<id>[A-Za-z0-9_]+)"


def route(method: str, pattern: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        ROUTES.append((method, re.compile(f"^/v1{pattern}$"), handler))
        return handler

    return register


def api_request(
    method: str, path: str, params: Obj, headers: dict[str, str], *, request_id: str = ""
) -> tuple[int, Obj]:
    """Answer one request as Stripe would: (HTTP status, JSON body)."""
    method = method.upper()
    request_id = request_id or store.new_id("req")
    key = headers.get("Idempotency-Key") if method == "POST" else None
    if key and (seen := IdempotentRequest.objects.filter(key=key).first()):
        if (seen.method, seen.path) != (method, path):
            return 400, StripeError(
                "Keys for idempotent requests can only be used for the same endpoint.",
                type="idempotency_error",
            ).body()
        return seen.status, json.loads(seen.body)
    for route_method, pattern, route_handler in ROUTES:
        if route_method == method and (match := pattern.match(path)):
            handler = route_handler
            break
    else:
        error = StripeError(f"Unrecognized request URL ({method}: {path}).", status=404)
        return error.status, error.body()
    token = current_request.set((request_id if method != "GET" else None, key))
    try:
        with transaction.atomic():
            result = handler(params, **match.groupdict())
            expansions = [p for p in params.get("expand") or [] if isinstance(p, str)]
            status, body = 200, store.expand(result, expansions)
            if key:
                _remember(key, method, path, status, body)
    except StripeError as error:
        logger.info("Stripe sandbox: %s %s -> %s %s", method, path, error.status, error.message)
        status, body = error.status, error.body()
    except Exception:
        # A bug in the sandbox: answered like Stripe's own 500s, logged with its traceback.
        logger.exception("Stripe sandbox: %s %s failed", method, path)
        error = StripeError(
            "The sandbox failed to answer this request.", status=500, type="api_error"
        )
        status, body = error.status, error.body()
    finally:
        current_request.reset(token)
    return status, body


def _remember(key: str, method: str, path: str, status: int, body: Obj) -> None:
    try:
        with transaction.atomic():
            IdempotentRequest.objects.create(
                key=key, method=method, path=path, status=status, body=json.dumps(body)
            )
    except IntegrityError:
        pass  # a concurrent request with the same key answered first


# --- Parameter helpers ------------------------------------------------------------------


def _required(params: Obj, name: str) -> Any:
    value = params.get(name)
    if value in (None, ""):
        raise StripeError(f"Missing required param: {name}.", param=name)
    return value


def _int(params: Obj, name: str, *, default: int | None = None, minimum: int = 0) -> int:
    value = params.get(name)
    if value in (None, ""):
        if default is None:
            raise StripeError(f"Missing required param: {name}.", param=name)
        return default
    try:
        number = int(value)
    except (TypeError, ValueError) as exc:
        raise StripeError(f"Invalid integer: {value}", param=name) from exc
    if number < minimum:
        raise StripeError(f"This value must be greater than or equal to {minimum}.", param=name)
    return number


def _bool(value: Any) -> bool:
    return str(value).lower() == "true"


def _list(params: Obj, name: str) -> list[Any]:
    value = params.get(name)
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _update_fields(obj: Obj, params: Obj, fields: tuple[str, ...]) -> None:
    for field in fields:
        if field in params:
            value = params[field]
            if field == "active":
                value = _bool(value)
            obj[field] = value if value != "" else None


def _updated(obj: Obj, before: Obj, event_type: str) -> Obj:
    if diff := changes(before, obj):
        if "updated" in obj:
            obj["updated"] = store.now()
        store.save(obj)
        event_emit(event_type, obj, previous=diff)
    return obj


def _filtered(type: str, params: Obj, url: str, **checks: Callable[[Obj, Any], bool]) -> Obj:
    wanted = {name: params[name] for name in checks if params.get(name) not in (None, "", [])}
    items = store.select(
        type, lambda obj: all(checks[name](obj, value) for name, value in wanted.items())
    )
    return store.paginate(items, params, url)


def _field(name: str) -> Callable[[Obj, Any], bool]:
    return lambda obj, value: obj.get(name) == value


def _flag(name: str) -> Callable[[Obj, Any], bool]:
    return lambda obj, value: obj.get(name) is _bool(value)


# --- Account ----------------------------------------------------------------------------


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


# --- Customers --------------------------------------------------------------------------

CUSTOMER_FIELDS = (
    "email",
    "name",
    "description",
    "phone",
    "address",
    "shipping",
    "preferred_locales",
)


@route("POST", "/customers")
def customer_create(params: Obj) -> Obj:
    return actions.customer_create(params)


@route("GET", f"/customers/{ID}")
def customer_retrieve(params: Obj, id: str) -> Obj:
    return store.get(id, "customer")


@route("POST", f"/customers/{ID}")
def customer_update(params: Obj, id: str) -> Obj:
    customer = store.get(id, "customer", lock=True)
    before = copy.deepcopy(customer)
    _update_fields(customer, params, CUSTOMER_FIELDS)
    if "metadata" in params:
        customer["metadata"] = objects.metadata_merge(customer["metadata"], params["metadata"])
    if invoice_settings := params.get("invoice_settings"):
        customer["invoice_settings"].update(invoice_settings)
    return _updated(customer, before, "customer.updated")


@route("DELETE", f"/customers/{ID}")
def customer_delete(params: Obj, id: str) -> Obj:
    customer = store.get(id, "customer")
    StripeObject.objects.filter(pk=id).delete()
    event_emit("customer.deleted", customer)
    return {"id": id, "object": "customer", "deleted": True}


@route("GET", "/customers")
def customer_list(params: Obj) -> Obj:
    return _filtered("customer", params, "/v1/customers", email=_field("email"))


@route("GET", f"/customers/{ID}/(?P<sub>sources|payment_methods|tax_ids|balance_transactions)")
def customer_sublist(params: Obj, id: str, sub: str) -> Obj:
    store.get(id, "customer")
    return store.list_envelope([], f"/v1/customers/{id}/{sub}")


@virtual("customer", "sources")
def _customer_sources(customer: Obj) -> Obj:
    return store.list_envelope([], f"/v1/customers/{customer['id']}/sources")


# --- Products and prices ----------------------------------------------------------------


@route("POST", "/products")
def product_create(params: Obj) -> Obj:
    _required(params, "name")
    if params.get("id") and store.find(params["id"]):
        raise StripeError(
            f"Product already exists: {params['id']}", param="id", code="resource_already_exists"
        )
    product = store.save(objects.product(params))
    event_emit("product.created", product)
    return product


@route("GET", f"/products/{ID}")
def product_retrieve(params: Obj, id: str) -> Obj:
    return store.get(id, "product")


@route("POST", f"/products/{ID}")
def product_update(params: Obj, id: str) -> Obj:
    product = store.get(id, "product", lock=True)
    before = copy.deepcopy(product)
    _update_fields(product, params, ("name", "description", "active", "default_price", "url"))
    if "metadata" in params:
        product["metadata"] = objects.metadata_merge(product["metadata"], params["metadata"])
    return _updated(product, before, "product.updated")


@route("GET", "/products")
def product_list(params: Obj) -> Obj:
    return _filtered(
        "product",
        params,
        "/v1/products",
        active=_flag("active"),
        ids=lambda obj, ids: obj["id"] in (ids if isinstance(ids, list) else [ids]),
    )


@route("GET", f"/products/{ID}/features")
def product_features(params: Obj, id: str) -> Obj:
    store.get(id, "product")
    return store.list_envelope([], f"/v1/products/{id}/features")


@route("POST", "/prices")
def price_create(params: Obj) -> Obj:
    currency = _required(params, "currency")
    if not re.fullmatch(r"[a-zA-Z]{3}", currency):
        raise StripeError(f"Invalid currency: {currency}", param="currency")
    unit_amount = _int(params, "unit_amount")
    if product_data := params.get("product_data"):
        product = store.save(objects.product(product_data))
        event_emit("product.created", product)
    else:
        product = store.find(_required(params, "product"), "product")
        if product is None:
            raise store.missing("product", params["product"], param="product", status=400)
    recurring = params.get("recurring")
    if recurring is not None and recurring.get("interval") not in {"day", "week", "month", "year"}:
        raise StripeError(
            "Invalid recurring[interval]: must be one of day, week, month, or year",
            param="recurring[interval]",
        )
    lookup_key = params.get("lookup_key")
    if lookup_key:
        holders = store.select("price", lambda p: p.get("lookup_key") == lookup_key)
        if holders and not _bool(params.get("transfer_lookup_key")):
            raise StripeError(
                f"A price (`{holders[0]['id']}`) already uses that lookup key.",
                param="lookup_key",
            )
        for holder in holders:
            before = copy.deepcopy(holder)
            holder["lookup_key"] = None
            _updated(holder, before, "price.updated")
    price = store.save(objects.price(params, unit_amount=unit_amount, product_id=product["id"]))
    event_emit("price.created", price)
    return price


@route("GET", f"/prices/{ID}")
def price_retrieve(params: Obj, id: str) -> Obj:
    return store.get(id, "price")


@route("POST", f"/prices/{ID}")
def price_update(params: Obj, id: str) -> Obj:
    price = store.get(id, "price", lock=True)
    before = copy.deepcopy(price)
    _update_fields(price, params, ("active", "nickname", "lookup_key"))
    if "metadata" in params:
        price["metadata"] = objects.metadata_merge(price["metadata"], params["metadata"])
    return _updated(price, before, "price.updated")


@route("GET", "/prices")
def price_list(params: Obj) -> Obj:
    lookup_keys = _list(params, "lookup_keys")
    items = store.select(
        "price",
        lambda p: (
            (not lookup_keys or p.get("lookup_key") in lookup_keys)
            and ("active" not in params or p["active"] is _bool(params["active"]))
            and (not params.get("product") or p["product"] == params["product"])
            and (not params.get("type") or p["type"] == params["type"])
            and (not params.get("currency") or p["currency"] == params["currency"].lower())
            and (
                not (params.get("recurring") or {}).get("interval")
                or (p.get("recurring") or {}).get("interval") == params["recurring"]["interval"]
            )
        ),
    )
    return store.paginate(items, params, "/v1/prices")


# --- Checkout sessions ------------------------------------------------------------------

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
        quantity = _int(line, "quantity", default=1, minimum=1)
        items.append(
            {
                "id": store.new_id("li"),
                "object": "item",
                "amount_discount": 0,
                "amount_subtotal": price["unit_amount"] * quantity,
                "amount_tax": 0,
                "amount_total": price["unit_amount"] * quantity,
                "currency": price["currency"],
                "description": actions.product_name(price),
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
    mode = _required(params, "mode")
    if mode not in CHECKOUT_MODES:
        raise StripeError(f"Invalid mode: must be one of {', '.join(CHECKOUT_MODES)}", param="mode")
    if mode == "setup":
        raise StripeError("The sandbox does not support `setup` mode.", param="mode")
    success = _required(params, "success_url")
    if not re.match(r"https?://", success):
        raise StripeError("Not a valid URL", param="success_url")
    customer_id = params.get("customer")
    if customer_id and store.find(customer_id, "customer") is None:
        raise store.missing("customer", customer_id, param="customer", status=400)
    items = _line_items(params, mode)
    total = sum(li["amount_total"] for li in items)
    session_id = store.new_id("cs_test")
    ts = store.now()
    expires = _int(params, "expires_at", default=ts + 86400)
    session = {
        "id": session_id,
        "object": "checkout.session",
        "adaptive_pricing": {"enabled": False},
        "after_expiration": None,
        "allow_promotion_codes": None,
        "amount_subtotal": total,
        "amount_total": total,
        "automatic_tax": {"enabled": False, "liability": None, "provider": None, "status": None},
        "billing_address_collection": None,
        "cancel_url": params.get("cancel_url") or None,
        "client_reference_id": params.get("client_reference_id") or None,
        "client_secret": None,
        "collected_information": None,
        "consent": None,
        "consent_collection": None,
        "created": ts,
        "currency": items[0]["currency"],
        "custom_fields": [],
        "custom_text": {
            "after_submit": None,
            "shipping_address": None,
            "submit": None,
            "terms_of_service_acceptance": None,
        },
        "customer": customer_id or None,
        "customer_creation": None if customer_id else "if_required",
        "customer_details": None,
        "customer_email": params.get("customer_email") or None,
        "discounts": [],
        "expires_at": expires,
        "invoice": None,
        "invoice_creation": None,
        "livemode": False,
        "locale": params.get("locale") or None,
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
        "ui_mode": "hosted",
        "url": checkout_url(session_id),
        "wallet_options": None,
        "_line_items": items,
        "_subscription_metadata": objects.metadata_merge(
            {}, (params.get("subscription_data") or {}).get("metadata")
        ),
        "_payment_intent_metadata": objects.metadata_merge(
            {}, (params.get("payment_intent_data") or {}).get("metadata")
        ),
    }
    return store.save(session)


@virtual("checkout.session", "line_items")
def _session_line_items(session: Obj) -> Obj:
    return store.list_envelope(
        copy.deepcopy(session.get("_line_items") or []),
        f"/v1/checkout/sessions/{session['id']}/line_items",
    )


@virtual("total_details", "breakdown")
def _breakdown(details: Obj) -> Obj:
    return {"discounts": [], "taxes": []}


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
    return _filtered(
        "checkout.session",
        params,
        "/v1/checkout/sessions",
        customer=_field("customer"),
        payment_intent=_field("payment_intent"),
        subscription=_field("subscription"),
        status=_field("status"),
    )


# --- Subscriptions ----------------------------------------------------------------------


@route("GET", f"/subscriptions/{ID}")
def subscription_retrieve(params: Obj, id: str) -> Obj:
    return store.get(id, "subscription")


@route("POST", f"/subscriptions/{ID}")
def subscription_update(params: Obj, id: str) -> Obj:
    return actions.subscription_update(id, params)


@route("DELETE", f"/subscriptions/{ID}")
def subscription_cancel(params: Obj, id: str) -> Obj:
    return actions.subscription_cancel(id)


@route("GET", "/subscriptions")
def subscription_list(params: Obj) -> Obj:
    status = params.get("status") or ""

    def wanted(sub: Obj) -> bool:
        if status == "all":
            return True
        if status:
            return sub["status"] == status
        return sub["status"] not in {"canceled", "incomplete_expired"}

    items = store.select(
        "subscription",
        lambda s: (
            wanted(s)
            and (not params.get("customer") or s["customer"] == params["customer"])
            and (
                not params.get("price")
                or any(i["price"]["id"] == params["price"] for i in s["items"]["data"])
            )
        ),
    )
    return store.paginate(items, params, "/v1/subscriptions")


@route("GET", f"/subscription_items/{ID}")
def subscription_item_retrieve(params: Obj, id: str) -> Obj:
    return store.get(id, "subscription_item")


@route("GET", "/subscription_items")
def subscription_item_list(params: Obj) -> Obj:
    sub = store.get(_required(params, "subscription"), "subscription")
    return store.paginate(sub["items"]["data"], params, "/v1/subscription_items")


# --- Invoices, payments, charges, refunds -----------------------------------------------


@route("GET", f"/invoices/{ID}")
def invoice_retrieve(params: Obj, id: str) -> Obj:
    return store.get(id, "invoice")


@route("GET", f"/invoices/{ID}/lines")
def invoice_lines(params: Obj, id: str) -> Obj:
    return store.paginate(
        store.get(id, "invoice")["lines"]["data"], params, f"/v1/invoices/{id}/lines"
    )


def _invoice_subscription(invoice: Obj, value: str) -> bool:
    return invoice_subscription_id(invoice) == value


@route("GET", "/invoices")
def invoice_list(params: Obj) -> Obj:
    return _filtered(
        "invoice",
        params,
        "/v1/invoices",
        customer=_field("customer"),
        status=_field("status"),
        subscription=_invoice_subscription,
    )


@route("GET", f"/payment_intents/{ID}")
def payment_intent_retrieve(params: Obj, id: str) -> Obj:
    return store.get(id, "payment_intent")


@route("GET", "/payment_intents")
def payment_intent_list(params: Obj) -> Obj:
    return _filtered("payment_intent", params, "/v1/payment_intents", customer=_field("customer"))


@route("GET", f"/charges/{ID}")
def charge_retrieve(params: Obj, id: str) -> Obj:
    return store.get(id, "charge")


@route("GET", "/charges")
def charge_list(params: Obj) -> Obj:
    return _filtered(
        "charge",
        params,
        "/v1/charges",
        customer=_field("customer"),
        payment_intent=_field("payment_intent"),
    )


@route("POST", "/refunds")
def refund_create(params: Obj) -> Obj:
    amount = _int(params, "amount", minimum=1) if params.get("amount") not in (None, "") else None
    return actions.refund_create(
        charge_id=params.get("charge") or None,
        payment_intent_id=params.get("payment_intent") or None,
        amount=amount,
        reason=params.get("reason") or None,
        metadata=objects.metadata_merge({}, params.get("metadata")),
    )


@route("GET", f"/refunds/{ID}")
def refund_retrieve(params: Obj, id: str) -> Obj:
    return store.get(id, "refund")


@route("GET", "/refunds")
def refund_list(params: Obj) -> Obj:
    return _filtered(
        "refund",
        params,
        "/v1/refunds",
        charge=_field("charge"),
        payment_intent=_field("payment_intent"),
    )


# --- Billing portal ---------------------------------------------------------------------


def portal_url(session_id: str) -> str:
    return f"{settings.SITE_URL}/sandbox/portal/{session_id}/"


@route("POST", "/billing_portal/sessions")
def portal_session_create(params: Obj) -> Obj:
    customer_id = _required(params, "customer")
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
            "flow": None,
            "livemode": False,
            "locale": params.get("locale") or None,
            "on_behalf_of": None,
            "return_url": params.get("return_url") or settings.SITE_URL,
            "url": portal_url(session_id),
        }
    )


# --- Events and webhook endpoints -------------------------------------------------------


@route("GET", f"/events/{ID}")
def event_retrieve(params: Obj, id: str) -> Obj:
    return store.get(id, "event")


@route("GET", "/events")
def event_list(params: Obj) -> Obj:
    types = _list(params, "types") or ([params["type"]] if params.get("type") else [])

    def matches(event: Obj) -> bool:
        return not types or any(
            event["type"] == t or (t.endswith("*") and event["type"].startswith(t[:-1]))
            for t in types
        )

    return store.paginate(store.select("event", matches), params, "/v1/events")


@route("GET", f"/webhook_endpoints/{ID}")
def webhook_endpoint_retrieve(params: Obj, id: str) -> Obj:
    return store.get(id, "webhook_endpoint")


@route("GET", "/webhook_endpoints")
def webhook_endpoint_list(params: Obj) -> Obj:
    return store.paginate(store.all_of("webhook_endpoint"), params, "/v1/webhook_endpoints")
