"""Removing a person's details from rows that are kept: Stripe JSON by field, any text
by value. The rules of privacy.erasure's redaction and of its late sweeps
(privacy.tasks); nothing here decides whose rows, or deletes one."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, overload

from django.apps import apps
from django.db import models
from django.db.models.functions import Cast
from django.utils import timezone
from djstripe.models import Customer, Event, WebhookEventTrigger

from privacy.models import Erasure

REDACTED = "[erased]"

# Not ours (app names): the offline Stripe sandbox stands in for Stripe's own storage.
NOT_OUR_DATA = frozenset({"devtools.stripe_sandbox"})

# The fields of Stripe's objects that hold a person's details, by object type.
STRIPE_PERSONAL_FIELDS: dict[str, frozenset[str]] = {
    "customer": frozenset(
        {"email", "name", "phone", "address", "shipping", "description", "individual_name"}
    ),
    "invoice": frozenset(
        {
            "customer_email",
            "customer_name",
            "customer_phone",
            "customer_address",
            "customer_shipping",
            "customer_tax_ids",
        }
    ),
    "charge": frozenset({"billing_details", "receipt_email", "shipping"}),
    "payment_intent": frozenset({"receipt_email", "shipping"}),
    "payment_method": frozenset({"billing_details"}),
    "checkout.session": frozenset(
        {"customer_details", "customer_email", "shipping_details", "collected_information"}
    ),
    "tax_id": frozenset({"value"}),
    "mandate": frozenset({"customer_acceptance"}),
}


def not_ours(model: type[models.Model]) -> bool:
    config = model._meta.app_config
    return config is not None and config.name in NOT_OUR_DATA


def customer_models() -> list[type[models.Model]]:
    """dj-stripe's models whose rows belong to one customer (invoices, charges...)."""
    return [
        model
        for model in apps.get_app_config("djstripe").get_models()
        if any(
            f.name == "customer" and f.is_relation and f.related_model is Customer
            for f in model._meta.concrete_fields
        )
    ]


def stripe_redact(value: Any, identifiers: list[str], *, kind: str | None = None) -> Any:
    """A copy of Stripe JSON with the personal fields of each object emptied and any
    other mention of `identifiers` replaced. `kind` types a dict with no `object` key
    (an event's `previous_attributes`)."""
    if isinstance(value, Mapping):
        own = value.get("object")
        kind = own if isinstance(own, str) else kind
        personal = STRIPE_PERSONAL_FIELDS.get(kind or "", frozenset())
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key in personal:
                out[key] = None
            elif kind == "event" and key == "data" and isinstance(item, Mapping):
                obj = item.get("object")
                inner = obj.get("object") if isinstance(obj, Mapping) else None
                out[key] = {
                    k: stripe_redact(
                        v, identifiers, kind=inner if k == "previous_attributes" else None
                    )
                    for k, v in item.items()
                }
            else:
                out[key] = stripe_redact(item, identifiers)
        return out
    return scrub(value, identifiers)


def _previous(key: str, kind: str | None) -> str | None:
    # An event's `previous_attributes` are fields of its object, with no `object` key.
    return kind if key == "previous_attributes" else None


@overload
def scrub(value: str, identifiers: list[str]) -> str: ...
@overload
def scrub(value: Any, identifiers: list[str]) -> Any: ...
def scrub(value: Any, identifiers: list[str]) -> Any:
    """`value` (text or JSON) with every mention of `identifiers` replaced, any case."""
    if isinstance(value, str):
        for identifier in identifiers:
            value = re.sub(re.escape(identifier), REDACTED, value, flags=re.IGNORECASE)
        return value
    if isinstance(value, Mapping):
        return {k: scrub(v, identifiers) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, identifiers) for v in value]
    return value


def stripe_rows_redact(
    customer_ids: list[str], identifiers: list[str], searchable: list[str]
) -> int:
    """dj-stripe's copies of the customers' objects, and the events and webhook bodies
    that mention them: the records stay, the person's details go."""
    count = 0
    rows: list[models.Model] = list(Customer.objects.filter(id__in=customer_ids))
    for model in customer_models():
        rows += list(model._default_manager.filter(customer__id__in=customer_ids))
    for row in rows:
        row.stripe_data = stripe_redact(row.stripe_data, identifiers)  # type: ignore[attr-defined]
        row.metadata = scrub(row.metadata, identifiers)  # type: ignore[attr-defined]
        if isinstance(row, Customer):
            row.email = ""
            row.date_purged = row.date_purged or timezone.now()
        row.save()
        count += 1
    return count + webhook_bodies_redact([*customer_ids, *searchable], identifiers)


def webhook_bodies_redact(mentions: list[str], identifiers: list[str]) -> int:
    """Redact the stored Stripe events and webhook bodies that mention any of
    `mentions` (customer ids, an email address). Safe to repeat."""
    count = 0
    for event in _mentioning(Event.objects.all(), "stripe_data", mentions):
        event.stripe_data = stripe_redact(event.stripe_data, identifiers)
        event.data = stripe_redact(event.data, identifiers, kind=None)
        event.save()
        count += 1
    for trigger in _mentioning(WebhookEventTrigger.objects.all(), "body", mentions):
        trigger.body = _body_redact(trigger.body, identifiers)
        trigger.traceback = scrub(trigger.traceback, identifiers)
        trigger.save()
        count += 1
    return count


def _body_redact(body: str, identifiers: list[str]) -> str:
    try:
        parsed = json.loads(body)
    except ValueError:
        return scrub(body, identifiers)
    return json.dumps(stripe_redact(parsed, identifiers), separators=(",", ":"))


def _mentioning(rows: models.QuerySet[Any], field: str, mentions: list[str]) -> list[Any]:
    if not mentions:
        return []
    query = models.Q()
    for mention in mentions:
        query |= models.Q(_as_text__icontains=mention)
    return list(rows.annotate(_as_text=Cast(field, models.TextField())).filter(query))


def rows_scrub(rows: Iterable[Any], identifiers: list[str]) -> int:
    """Scrub every text and JSON column of `rows`; a webhook body as Stripe JSON."""
    count = 0
    for row in rows:
        changed = False
        if isinstance(row, WebhookEventTrigger):
            body = _body_redact(row.body, identifiers)
            changed, row.body = body != row.body, body
        for field in row._meta.concrete_fields:
            if isinstance(field, models.CharField | models.TextField | models.JSONField):
                before = getattr(row, field.attname)
                after = scrub(before, identifiers)
                if after != before:
                    setattr(row, field.attname, after)
                    changed = True
        if changed:
            row.save()
            count += 1
    return count


def everywhere_scrub(searchable: list[str], identifiers: list[str]) -> int:
    """The net under the targeted redaction (privacy.erasure): every text and JSON
    column of every table of ours that still mentions any of `searchable` (the address,
    the phone number), such as a staff note, a task's error or the event of a checkout
    paid before the account existed. Slow on a big database; an erasure is rare."""
    if not searchable:
        return 0
    count = 0
    for model in apps.get_models():
        if not_ours(model) or model is Erasure:
            continue
        for field in model._meta.concrete_fields:
            if isinstance(field, models.CharField | models.TextField | models.JSONField):
                rows = _mentioning(model._default_manager.all(), field.name, searchable)
                count += rows_scrub(rows, identifiers)
    return count
