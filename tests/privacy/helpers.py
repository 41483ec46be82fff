"""Helpers of the personal-data tests: the sandbox's deliveries, and a scan of every
table for a person's details."""

from __future__ import annotations

import json
from typing import Any

from django.apps import apps
from django.db import models

from devtools.stripe_sandbox.delivery import deliver_pending
from tests.sandbox_app import app_transport

PHONE = "+447700900461"
NAME = "Ada Lovelace"
PASSWORD = "correct-horse-battery-staple-42"


def deliver_events(client: Any) -> None:
    """Every webhook the sandbox has queued, delivered and processed."""
    assert deliver_pending(transport=app_transport(client)).failed == 0


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def rows_mentioning(*needles: str) -> list[str]:
    """Every row of every table but the sandbox's (Stripe's own storage) with a text or
    JSON column that contains any of `needles` (any case): "app.Model #pk field"."""
    wanted = [n.casefold() for n in needles if n]
    found = []
    for model in apps.get_models():
        if model._meta.app_config.name == "devtools.stripe_sandbox":
            continue
        fields = [
            f
            for f in model._meta.concrete_fields
            if isinstance(f, models.CharField | models.TextField | models.JSONField)
        ]
        if not fields:
            continue
        for row in model._default_manager.all():
            for field in fields:
                text = _text(getattr(row, field.attname)).casefold()
                # JSON escapes non-ASCII; Stripe's bodies are stored as sent.
                if any(n in text for n in wanted):
                    found.append(f"{model._meta.label} #{row.pk} {field.name}")
    return found
