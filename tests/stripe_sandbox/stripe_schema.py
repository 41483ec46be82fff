"""The pinned API version's object schemas, read from stripe-python's typed models.

stripe-python's resource classes (`stripe.Subscription`, `stripe.checkout.Session`...) are
generated from Stripe's OpenAPI spec for the version the package pins (the project pins the
same one, `2026-08-26.dahlia`), and declare every field with a type annotation, nested
hashes as nested `StripeObject` classes. `validate(obj)` checks a JSON object against them.

How the annotations are read (the optionality rule):

- `X` (not `Optional`): always sent, never null, at any depth.
- `Optional[X]`: the generator writes it for two things the spec tells apart: a field that
  is always sent but may be null (`subscription.customer_account`), and a field that is not
  always sent (includable ones such as `invoice.confirmation_secret`, sent only on
  `expand[]`; conditional ones such as `deleted`, or the per-payment-method sub-hashes of
  `payment_method_options`). The package keeps no trace of the difference (no
  `NotRequired`, nothing in the docstrings), so the rule is:
  - on a resource (a class with an `OBJECT_NAME`: a top-level object, an expanded one, a
    list entry), an `Optional` field is nullable and must be sent, unless `SOMETIMES_ABSENT`
    names it, with why (Stripe's API reference for the version: includable or conditional);
  - in a nested hash (`subscription.billing_mode`), an `Optional` field may be absent, since
    that is where the spec puts most of its optional sub-hashes; when sent it is checked.
  An includable field must not be sent unless the request expanded it.
- A polymorphic object (a `type` field whose values name sub-hashes, as `payment_method`
  has `card`, `sepa_debit`...) may omit the sub-hashes of the other types.
- `Literal[...]` is an enum. `Union[Literal[...], str]`, the package's way of staying
  forward compatible, is still checked against the literals: they are this version's values.
- `ExpandableField[X]` is an id (a string) or the object X; `ListObject[X]` is Stripe's list
  envelope; `UntypedStripeObject[X]` (metadata...) a hash of X; `Decimal` a decimal string.
- A field the class does not declare is reported; a `_`-prefixed one is the sandbox's own
  bookkeeping, which must never reach a client.
"""

from __future__ import annotations

import ast
import decimal
import functools
import importlib
import inspect
import types
import typing
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar, Union, get_args, get_origin

from stripe._list_object import ListObject
from stripe._object_classes import OBJECT_CLASSES
from stripe._search_result_object import SearchResultObject
from stripe._stripe_object import StripeObject, UntypedStripeObject

# Optional fields of resources that Stripe does not always send, as (object type, or that
# plus a nested class, field): INCLUDABLE ones only when expanded, CONDITIONAL ones only in
# some states or when set. Other resources may join as the sandbox grows.
INCLUDABLE = "includable"
CONDITIONAL = "conditional"
SOMETIMES_ABSENT: dict[tuple[str, str], str] = {
    # Deletable resources: only on what DELETE answers (then with id and object only).
    ("*", "deleted"): CONDITIONAL,
    # Only with Adaptive Pricing / a presentment currency.
    ("*", "presentment_details"): CONDITIONAL,
    ("account", "company"): CONDITIONAL,
    ("account", "groups"): CONDITIONAL,
    ("account", "individual"): CONDITIONAL,
    ("charge", "authorization_code"): CONDITIONAL,
    ("charge", "level3"): CONDITIONAL,
    ("charge", "radar_options"): CONDITIONAL,
    ("charge", "transfer"): CONDITIONAL,
    ("checkout.session.TotalDetails", "breakdown"): INCLUDABLE,
    ("checkout.session", "branding_settings"): CONDITIONAL,
    ("checkout.session", "excluded_payment_method_types"): CONDITIONAL,
    ("checkout.session", "line_items"): INCLUDABLE,
    ("checkout.session", "name_collection"): CONDITIONAL,
    ("checkout.session", "optional_items"): CONDITIONAL,
    ("checkout.session", "redirect_on_completion"): CONDITIONAL,
    ("checkout.session", "return_url"): CONDITIONAL,
    ("checkout.session", "tax_id_collection"): CONDITIONAL,
    ("customer", "business_name"): CONDITIONAL,
    ("customer", "cash_balance"): INCLUDABLE,
    ("customer", "customer_account"): CONDITIONAL,
    ("customer", "individual_name"): CONDITIONAL,
    ("customer", "invoice_credit_balance"): INCLUDABLE,
    ("customer", "sources"): INCLUDABLE,
    ("customer", "subscriptions"): INCLUDABLE,
    ("customer", "tax"): INCLUDABLE,
    ("customer", "tax_ids"): INCLUDABLE,
    ("dispute", "network_reason_code"): CONDITIONAL,
    ("event", "account"): CONDITIONAL,
    ("event", "context"): CONDITIONAL,
    ("invoice", "amount_paid_off_stripe"): CONDITIONAL,
    ("invoice", "confirmation_secret"): INCLUDABLE,
    ("invoice", "payments"): INCLUDABLE,
    ("invoice", "threshold_reason"): CONDITIONAL,
    ("invoiceitem", "frozen_fields"): CONDITIONAL,
    ("invoiceitem", "proration_details"): CONDITIONAL,
    ("item", "discounts"): INCLUDABLE,
    ("item", "taxes"): INCLUDABLE,
    ("payment_intent", "allowed_payment_method_types"): CONDITIONAL,
    ("payment_intent", "hooks"): CONDITIONAL,
    ("payment_intent", "payment_details"): CONDITIONAL,
    ("payment_method", "radar_options"): CONDITIONAL,
    ("plan", "tiers"): INCLUDABLE,
    ("price", "currency_options"): INCLUDABLE,
    ("price", "tiers"): INCLUDABLE,
    ("refund", "description"): CONDITIONAL,
    ("refund", "failure_balance_transaction"): CONDITIONAL,
    ("refund", "failure_reason"): CONDITIONAL,
    ("refund", "instructions_email"): CONDITIONAL,
    ("refund", "next_action"): CONDITIONAL,
    ("refund", "pending_reason"): CONDITIONAL,
    ("setup_intent", "allowed_payment_method_types"): CONDITIONAL,
    ("setup_intent", "attach_to_self"): CONDITIONAL,
    ("setup_intent", "customer_account"): CONDITIONAL,
    ("setup_intent", "managed_payments"): CONDITIONAL,
    ("subscription_item", "billed_until"): CONDITIONAL,
    # Only on the answer that creates the endpoint.
    ("webhook_endpoint", "secret"): CONDITIONAL,
}


@dataclass(frozen=True)
class Violation:
    path: str
    problem: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


@dataclass(frozen=True)
class Field:
    annotation: Any  # without its Optional
    nullable: bool


def class_for(object_type: str) -> type[StripeObject] | None:
    """stripe-python's class for Stripe's `object` value ("checkout.session" -> Session)."""
    entry = OBJECT_CLASSES.get(object_type)
    if entry is None:
        return None
    return getattr(importlib.import_module(entry[0]), entry[1])


@functools.cache
def _namespace(module_name: str) -> dict[str, Any]:
    """The module's globals plus what it imports only for type checking (the classes its
    annotations name as strings, e.g. "Customer")."""
    module = importlib.import_module(module_name)
    names: dict[str, Any] = {"StripeObject": StripeObject, "ListObject": ListObject}
    names.update(vars(module))
    for node in ast.walk(ast.parse(inspect.getsource(module))):
        if not (isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)):
            continue
        for statement in node.body:
            # Parameter classes are only named by method signatures, never by fields.
            if not isinstance(statement, ast.ImportFrom) or ".params" in (statement.module or ""):
                continue
            imported = importlib.import_module(statement.module or "")
            for alias in statement.names:
                names[alias.asname or alias.name] = getattr(imported, alias.name)
    return names


def _outer_path(cls: type) -> str:
    """ "checkout.session.TotalDetails" for Session.TotalDetails: the object type of the
    resource the class is nested in, then the nested class names."""
    parts = cls.__qualname__.split(".")
    outer = getattr(importlib.import_module(cls.__module__), parts[0])
    name = getattr(outer, "OBJECT_NAME", None) or parts[0]
    return ".".join([name, *parts[1:]])


@functools.cache
def fields_of(cls: type) -> dict[str, Field]:
    """The fields `cls` declares, by name."""
    parts = cls.__qualname__.split(".")
    local: dict[str, Any] = {}
    scope: Any = importlib.import_module(cls.__module__)
    for part in parts:  # the enclosing classes' nested classes, for names used unquoted
        scope = getattr(scope, part)
        local.update({k: v for k, v in vars(scope).items() if isinstance(v, type)})
    hints = typing.get_type_hints(cls, globalns=_namespace(cls.__module__), localns=local)
    fields = {}
    for name, annotation in hints.items():
        if name.startswith("_") or name == "OBJECT_NAME" or get_origin(annotation) is ClassVar:
            continue
        args = get_args(annotation)
        nullable = _is_union(annotation) and type(None) in args
        if nullable:
            rest = tuple(a for a in args if a is not type(None))
            annotation = rest[0] if len(rest) == 1 else Union[rest]  # noqa: UP007
        fields[name] = Field(annotation=annotation, nullable=nullable)
    return fields


def _is_union(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, types.UnionType)


def absence(cls: type, field: str) -> str | None:
    """Why `field` of `cls` may be absent (INCLUDABLE, CONDITIONAL), or None: always sent."""
    return SOMETIMES_ABSENT.get((_outer_path(cls), field)) or SOMETIMES_ABSENT.get(("*", field))


def validate(
    obj: Any, cls: type | None = None, *, path: str = "", asked: frozenset[str] = frozenset()
) -> list[Violation]:
    """Every way `obj` (JSON) departs from the schema of `cls` (by default the class of
    its `object`). `asked` holds the dotted paths expanded in the request, which may carry
    includable fields."""
    violations: list[Violation] = []
    if cls is None:
        object_type = obj.get("object") if isinstance(obj, dict) else None
        cls = class_for(object_type or "")
        if cls is None:
            return [
                Violation(path or "<root>", f"no stripe-python class for object {object_type!r}")
            ]
    root = path or str(obj.get("object"))
    _check_object(obj, cls, root, frozenset(f"{root}.{a}" for a in asked), violations)
    return violations


def validate_list(body: Any, *, path: str = "list") -> list[Violation]:
    """The envelope of a list answer (its entries are validated one by one)."""
    violations: list[Violation] = []
    _check_list(body, Any, path, frozenset(), violations)
    return violations


def _check_object(
    obj: Any, cls: type, path: str, asked: frozenset[str], out: list[Violation]
) -> None:
    if not isinstance(obj, dict):
        out.append(
            Violation(path, f"expected an object ({cls.__qualname__}), got {_json_type(obj)}")
        )
        return
    fields = fields_of(cls)
    if obj.get("deleted") is True and "deleted" in fields:
        # Stripe's deleted_<type>: id, object and deleted only.
        for key in set(obj) - {"id", "object", "deleted"}:
            out.append(Violation(f"{path}.{key}", "field on a deleted object"))
        return
    resource = getattr(cls, "OBJECT_NAME", None) is not None
    for name, field in fields.items():
        where = f"{path}.{name}"
        if name not in obj:
            if field.nullable and (not resource or absence(cls, name) or _is_variant(fields, name)):
                continue
            out.append(Violation(where, "missing" + ("" if field.nullable else " (never null)")))
            continue
        if absence(cls, name) == INCLUDABLE and not _asked_for(asked, path, name):
            out.append(
                Violation(
                    where, "sent without being asked for (Stripe includes it only on expand[])"
                )
            )
        value = obj[name]
        if value is None:
            if not field.nullable:
                out.append(Violation(where, "null, but never null"))
            continue
        _check_value(value, field.annotation, where, asked, out)
    for key in obj:
        if key in fields:
            continue
        if key.startswith("_"):
            out.append(Violation(f"{path}.{key}", "the sandbox's private bookkeeping, sent out"))
        else:
            out.append(Violation(f"{path}.{key}", f"not a field of {cls.__qualname__}"))


def _is_variant(fields: dict[str, Field], name: str) -> bool:
    """Whether `name` is one of the per-type sub-hashes of a polymorphic object (a `type`
    field whose values name them, as in `payment_method`): only its own type's is sent."""
    kind = fields.get("type")
    return kind is not None and name in _literals(kind.annotation)


def _asked_for(asked: frozenset[str], path: str, name: str) -> bool:
    # Compared on field names only: "list.data.0.line_items" is the same as "line_items".
    return _field_path(f"{path}.{name}") in {_field_path(a) for a in asked}


def _field_path(path: str) -> str:
    return ".".join(p for p in path.split(".") if not p.isdigit() and p != "data")


def _literals(annotation: Any) -> set[Any]:
    if get_origin(annotation) is Literal:
        return set(get_args(annotation))
    if _is_union(annotation):
        return set().union(*(_literals(a) for a in get_args(annotation)))
    return set()


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _check_value(
    value: Any, annotation: Any, path: str, asked: frozenset[str], out: list[Violation]
) -> None:
    if annotation is Any or isinstance(annotation, TypeVar):
        return
    origin, args = get_origin(annotation), get_args(annotation)
    if _is_union(annotation):
        _check_union(value, args, path, asked, out)
        return
    if origin is Literal:
        if value not in args:
            out.append(Violation(path, f"{value!r} is not one of {sorted(map(str, args))}"))
        return
    if annotation is decimal.Decimal:
        # Stripe sends decimals as strings ("4900", "12.5").
        try:
            decimal.Decimal(value if isinstance(value, str) else "x")
        except decimal.InvalidOperation:
            out.append(Violation(path, f"expected a decimal string, got {_json_type(value)}"))
        return
    simple = {bool: "boolean", int: "integer", float: "number", str: "string"}
    if annotation in simple:
        ok = (
            isinstance(value, bool)
            if annotation is bool
            else isinstance(value, (int, float) if annotation is float else annotation)
            and not isinstance(value, bool)
        )
        if not ok:
            out.append(Violation(path, f"expected {simple[annotation]}, got {_json_type(value)}"))
        return
    if origin is list:
        if not isinstance(value, list):
            out.append(Violation(path, f"expected array, got {_json_type(value)}"))
            return
        for index, item in enumerate(value):
            _check_value(item, args[0] if args else Any, f"{path}.{index}", asked, out)
        return
    if origin is dict or (inspect.isclass(origin) and issubclass(origin, UntypedStripeObject)):
        if not isinstance(value, dict):
            out.append(Violation(path, f"expected object, got {_json_type(value)}"))
            return
        item_type = args[-1] if args else Any
        for key, item in value.items():
            _check_value(item, item_type, f"{path}.{key}", asked, out)
        return
    if inspect.isclass(origin) and issubclass(origin, (ListObject, SearchResultObject)):
        _check_list(value, args[0] if args else Any, path, asked, out)
        return
    if inspect.isclass(annotation) and issubclass(annotation, StripeObject):
        _check_object(value, annotation, path, asked, out)
        return
    out.append(Violation(path, f"cannot check against {annotation!r}"))


def _check_list(
    value: Any, item: Any, path: str, asked: frozenset[str], out: list[Violation]
) -> None:
    if not isinstance(value, dict) or value.get("object") != "list":
        out.append(Violation(path, f"expected a list envelope, got {_json_type(value)}"))
        return
    for key, kind in (("data", list), ("has_more", bool), ("url", str)):
        if not isinstance(value.get(key), kind):
            out.append(Violation(f"{path}.{key}", f"expected {kind.__name__}"))
    for key in set(value) - {"object", "data", "has_more", "url"}:
        out.append(Violation(f"{path}.{key}", "not a field of a list"))
    for index, entry in enumerate(value.get("data") or []):
        _check_value(entry, item, f"{path}.data.{index}", asked, out)


def _check_union(
    value: Any, args: tuple[Any, ...], path: str, asked: frozenset[str], out: list[Violation]
) -> None:
    literals = _literals(Union[args])  # noqa: UP007
    arms = [a for a in args if get_origin(a) is not Literal]
    if literals and isinstance(value, str):
        # An enum, forward compatible (`| str`) or not: the literals are this version's values.
        if value not in literals:
            out.append(Violation(path, f"{value!r} is not one of {sorted(map(str, literals))}"))
        return
    if isinstance(value, dict) and isinstance(value.get("object"), str):
        # Expandable or polymorphic: the arm of the object's own type.
        for arm in arms:
            if inspect.isclass(arm) and getattr(arm, "OBJECT_NAME", None) == value["object"]:
                _check_object(value, arm, path, asked, out)
                return
    best: list[Violation] | None = None
    for arm in arms:
        found: list[Violation] = []
        _check_value(value, arm, path, asked, found)
        if not found:
            return
        if best is None or len(found) < len(best):
            best = found
    out.extend(best or [Violation(path, f"{_json_type(value)} matches no type of {args!r}")])
