"""Billing Portal configurations as Stripe keeps them (`billing_portal.configuration`).

A configuration decides what a portal session offers: card update, invoice history,
customer details, cancellation (at once or at the period end, with a reason) and plan
changes (to which prices, with which prorations). The parameters are checked against the
shapes of Stripe's API reference for the pinned version (stripe-python's
`ConfigurationCreateParams`/`ConfigurationModifyParams`): an unknown key, a bad enum or a
missing required field is refused as Stripe refuses it, naming the parameter.

The account's default configuration (`is_default`) stands in for the settings saved in
Stripe's dashboard, which a session uses when it names no configuration: the sandbox's
are deliberately permissive (cancel at once, switch to any active recurring price, charged
at once), the settings an app must not leave to chance.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from devtools.stripe_sandbox import objects, store
from devtools.stripe_sandbox.store import Obj, StripeError

CANCELLATION_REASONS = (
    "customer_service",
    "low_quality",
    "missing_features",
    "other",
    "switched_service",
    "too_complex",
    "too_expensive",
    "unused",
)
# What Stripe sets when a configuration names no reasons (its API reference's example).
DEFAULT_REASONS = ["too_expensive", "missing_features", "switched_service", "unused", "other"]
PRORATIONS = ("always_invoice", "create_prorations", "none")


@dataclass(frozen=True)
class Param:
    """One parameter's shape: `kind` is bool, str, enum, list, hash or metadata;
    `required` is "always", "create" (required when creating only) or None."""

    kind: str
    required: str | None = None
    choices: tuple[str, ...] = ()
    item: Param | None = None
    fields: dict[str, Param] = field(default_factory=dict)
    # Whether "" may be posted (Stripe's way of sending an empty list or clearing a value).
    emptiable: bool = False


def _hash(required: str | None = None, **fields: Param) -> Param:
    return Param("hash", required=required, fields=fields)


def _enum(*choices: str, required: str | None = None) -> Param:
    return Param("enum", required=required, choices=choices)


BOOL = Param("bool")
BOOL_REQUIRED = Param("bool", required="always")
BOOL_ON_CREATE = Param("bool", required="create")
STR = Param("str")
STR_EMPTIABLE = Param("str", emptiable=True)

FEATURES = _hash(
    customer_update=_hash(
        allowed_updates=Param(
            "list",
            item=_enum("address", "email", "name", "phone", "shipping", "tax_id"),
            emptiable=True,
        ),
        enabled=BOOL_ON_CREATE,
    ),
    invoice_history=_hash(enabled=BOOL_REQUIRED),
    payment_method_update=_hash(enabled=BOOL_REQUIRED, payment_method_configuration=STR_EMPTIABLE),
    subscription_cancel=_hash(
        cancellation_reason=_hash(
            enabled=BOOL_REQUIRED,
            feedback_options=Param("list", item=STR, emptiable=True),
            options=Param(
                "list", required="create", item=_enum(*CANCELLATION_REASONS), emptiable=True
            ),
        ),
        enabled=BOOL_ON_CREATE,
        mode=_enum("at_period_end", "immediately"),
        proration_behavior=_enum(*PRORATIONS),
    ),
    subscription_update=_hash(
        billing_cycle_anchor=_enum("now", "unchanged"),
        default_allowed_updates=Param(
            "list", item=_enum("price", "promotion_code", "quantity"), emptiable=True
        ),
        enabled=BOOL_ON_CREATE,
        products=Param(
            "list",
            item=_hash(
                adjustable_quantity=_hash(
                    enabled=BOOL_REQUIRED, maximum=Param("int"), minimum=Param("int")
                ),
                prices=Param("list", required="always", item=STR),
                product=Param("str", required="always"),
            ),
            emptiable=True,
        ),
        proration_behavior=_enum(*PRORATIONS),
        schedule_at_period_end=_hash(
            conditions=Param(
                "list",
                item=_hash(
                    type=_enum("decreasing_item_amount", "shortening_interval", required="always")
                ),
            )
        ),
        trial_update_behavior=_enum("continue_trial", "end_trial"),
    ),
)
COMMON = {
    "business_profile": _hash(
        headline=STR_EMPTIABLE, privacy_policy_url=STR_EMPTIABLE, terms_of_service_url=STR_EMPTIABLE
    ),
    "default_return_url": STR_EMPTIABLE,
    "expand": Param("list", item=STR),
    "login_page": _hash(enabled=BOOL_REQUIRED),
    "metadata": Param("metadata", emptiable=True),
    "name": STR_EMPTIABLE,
}
CREATE = Param(
    "hash", fields={**COMMON, "features": Param("hash", required="always", fields=FEATURES.fields)}
)
UPDATE = Param("hash", fields={**COMMON, "active": BOOL, "features": FEATURES})


def _name(path: str, key: str) -> str:
    return f"{path}[{key}]" if path else key


def check(params: Obj, *, creating: bool) -> None:
    """Refuse what Stripe refuses: unknown parameters, wrong types and enums, missing
    required ones (the whole tree, before anything is changed)."""
    _check_hash(params, CREATE if creating else UPDATE, "", creating=creating)


def _check_hash(value: Any, spec: Param, path: str, *, creating: bool) -> None:
    if not isinstance(value, dict):
        raise StripeError("Invalid object", param=path or None)
    for key in value:
        if key not in spec.fields:
            raise StripeError(
                f"Received unknown parameter: {_name(path, key)}", param=_name(path, key)
            )
    for key, sub in spec.fields.items():
        name = _name(path, key)
        if key not in value:
            if sub.required == "always" or (sub.required == "create" and creating):
                raise StripeError(f"Missing required param: {name}.", param=name)
            continue
        _check_value(value[key], sub, name, creating=creating)


def _check_value(value: Any, spec: Param, name: str, *, creating: bool) -> None:
    if value == "" and spec.emptiable:
        return
    if spec.kind == "hash":
        _check_hash(value, spec, name, creating=creating)
    elif spec.kind == "metadata":
        if not isinstance(value, dict):
            raise StripeError("Invalid object", param=name)
    elif spec.kind == "list":
        if not isinstance(value, list):
            raise StripeError("Invalid array", param=name)
        assert spec.item is not None
        for index, entry in enumerate(value):
            _check_value(entry, spec.item, f"{name}[{index}]", creating=True)
    elif spec.kind == "bool":
        if str(value).lower() not in ("true", "false"):
            raise StripeError(f"Invalid boolean: {value}", param=name)
    elif spec.kind == "int":
        store.integer(value, name)
    elif spec.kind == "enum":
        if value not in spec.choices:
            raise StripeError(
                f"Invalid {name}: must be one of {', '.join(spec.choices)}", param=name
            )
    elif not isinstance(value, str) or value == "":
        raise StripeError(f"Invalid string: {value!r}", param=name)


# --- The object -------------------------------------------------------------------------


def _flag(value: Any) -> bool:
    return str(value).lower() == "true"


def _list(value: Any) -> list[Any]:
    return [] if value in ("", None) else list(value)


def blank(*, is_default: bool = False) -> Obj:
    """A configuration with Stripe's defaults: every feature off, cancellation (if turned
    on) at the period end without prorations."""
    ts = store.now()
    return {
        "id": store.new_id("bpc"),
        "object": "billing_portal.configuration",
        "active": True,
        "application": None,
        "business_profile": {
            "headline": None,
            "privacy_policy_url": None,
            "terms_of_service_url": None,
        },
        "created": ts,
        "default_return_url": None,
        "features": {
            "customer_update": {"allowed_updates": [], "enabled": False},
            "invoice_history": {"enabled": False},
            "payment_method_update": {"enabled": False, "payment_method_configuration": None},
            "subscription_cancel": {
                "cancellation_reason": {"enabled": False, "options": list(DEFAULT_REASONS)},
                "enabled": False,
                "mode": "at_period_end",
                "proration_behavior": "none",
            },
            "subscription_update": {
                "billing_cycle_anchor": None,
                "default_allowed_updates": [],
                "enabled": False,
                "products": [],
                "proration_behavior": "none",
                "schedule_at_period_end": {"conditions": []},
                "trial_update_behavior": "end_trial",
            },
        },
        "is_default": is_default,
        "livemode": False,
        "login_page": {"enabled": False, "url": None},
        "metadata": {},
        "name": None,
        "updated": ts,
    }


def apply(config: Obj, params: Obj) -> Obj:
    """Set what `params` names (checked by `check`), leaving the rest as it was, then the
    rules Stripe applies across fields."""
    config = copy.deepcopy(config)
    if "active" in params:
        if config["is_default"] and not _flag(params["active"]):
            raise StripeError("You cannot deactivate the default configuration.", param="active")
        config["active"] = _flag(params["active"])
    for key in ("default_return_url", "name"):
        if key in params:
            config[key] = params[key] or None
    for key, value in (params.get("business_profile") or {}).items():
        config["business_profile"][key] = value or None
    if "login_page" in params:
        config["login_page"]["enabled"] = _flag(params["login_page"]["enabled"])
    if "metadata" in params:
        config["metadata"] = objects.metadata_merge(config["metadata"], params["metadata"])
    features = params.get("features") or {}
    _apply_features(config["features"], features)
    _validate(config["features"])
    return config


def _apply_features(have: Obj, given: Obj) -> None:
    for name, values in given.items():
        target = have[name]
        for key, value in values.items():
            if key == "enabled":
                target[key] = _flag(value)
            elif key == "cancellation_reason":
                reason = target[key]
                reason["enabled"] = _flag(value["enabled"])
                if "options" in value:
                    reason["options"] = _list(value["options"])
                if "feedback_options" in value:
                    reason["feedback_options"] = _list(value["feedback_options"])
            elif key == "products":
                target[key] = [
                    {
                        "adjustable_quantity": _quantity(p.get("adjustable_quantity")),
                        "prices": list(p["prices"]),
                        "product": p["product"],
                    }
                    for p in _list(value)
                ]
            elif key == "schedule_at_period_end":
                conditions = value.get("conditions") or []
                target[key] = {"conditions": [{"type": c["type"]} for c in conditions]}
            elif key in ("allowed_updates", "default_allowed_updates"):
                target[key] = _list(value)
            else:
                target[key] = value or None


def _quantity(value: Obj | None) -> Obj:
    value = value or {}
    return {
        "enabled": _flag(value.get("enabled", False)),
        "maximum": int(value["maximum"]) if value.get("maximum") not in (None, "") else None,
        "minimum": int(value.get("minimum") or 0),
    }


def _validate(features: Obj) -> None:
    cancel = features["subscription_cancel"]
    if cancel["proration_behavior"] == "always_invoice":
        raise StripeError(
            "Invalid features[subscription_cancel][proration_behavior]: "
            "always_invoice is not supported for cancellations.",
            param="features[subscription_cancel][proration_behavior]",
        )
    if cancel["proration_behavior"] == "create_prorations" and cancel["mode"] != "immediately":
        raise StripeError(
            "features[subscription_cancel][proration_behavior] can only be create_prorations "
            "when features[subscription_cancel][mode] is immediately.",
            param="features[subscription_cancel][proration_behavior]",
        )
    if cancel["cancellation_reason"]["enabled"] and not cancel["cancellation_reason"]["options"]:
        raise StripeError(
            "At least one cancellation reason option is required when cancellation reasons "
            "are enabled.",
            param="features[subscription_cancel][cancellation_reason][options]",
        )
    update = features["subscription_update"]
    products = update["products"] or []
    if len(products) > 10:
        raise StripeError(
            "You can pass at most 10 products.", param="features[subscription_update][products]"
        )
    for index, entry in enumerate(products):
        name = f"features[subscription_update][products][{index}]"
        if store.find(entry["product"], "product") is None:
            raise store.missing("product", entry["product"], param=f"{name}[product]", status=400)
        for price_id in entry["prices"]:
            price = store.find(price_id, "price")
            if price is None or price["product"] != entry["product"] or not price.get("recurring"):
                raise StripeError(
                    f"The price {price_id} is not a recurring price of {entry['product']}.",
                    param=f"{name}[prices]",
                )
    if update["enabled"] and not (products and update["default_allowed_updates"]):
        raise StripeError(
            "To enable subscription updates, features[subscription_update][products] and "
            "features[subscription_update][default_allowed_updates] must not be empty.",
            param="features[subscription_update]",
        )


# --- The default (the dashboard's settings) and what a session uses ------------------


def default() -> Obj:
    """The account's default configuration, made on first use as the dashboard's settings:
    permissive, so that a session naming no configuration shows what an app risks."""
    for config in store.all_of("billing_portal.configuration"):
        if config["is_default"]:
            return config
    config = blank(is_default=True)
    by_product: dict[str, list[str]] = {}
    for price in store.all_of("price"):
        if price["active"] and price.get("recurring"):
            by_product.setdefault(price["product"], []).append(price["id"])
    features = config["features"]
    features["customer_update"] = {
        "allowed_updates": ["email", "address", "shipping", "phone", "tax_id"],
        "enabled": True,
    }
    features["invoice_history"]["enabled"] = True
    features["payment_method_update"]["enabled"] = True
    features["subscription_cancel"].update(enabled=True, mode="immediately")
    if by_product:
        features["subscription_update"].update(
            enabled=True,
            default_allowed_updates=["price"],
            proration_behavior="always_invoice",
            products=[
                {
                    "adjustable_quantity": {"enabled": False, "maximum": None, "minimum": 1},
                    "prices": prices,
                    "product": product,
                }
                for product, prices in list(by_product.items())[:10]
            ],
        )
    return store.save(config)


def for_session(config_id: str | None) -> Obj:
    """The configuration a new session uses: the one named (which must exist and be
    active), else the default."""
    if not config_id:
        return default()
    config = store.find(config_id, "billing_portal.configuration")
    if config is None:
        raise store.missing("configuration", config_id, param="configuration", status=400)
    if not config["active"]:
        raise StripeError(
            f"The configuration {config_id} is inactive and cannot be used to create portal "
            "sessions.",
            param="configuration",
        )
    return config


def switchable_prices(config: Obj) -> set[str]:
    """The prices a portal session under `config` may switch a subscription to."""
    update = config["features"]["subscription_update"]
    if not update["enabled"] or "price" not in update["default_allowed_updates"]:
        return set()
    return {price for entry in update["products"] or [] for price in entry["prices"]}
