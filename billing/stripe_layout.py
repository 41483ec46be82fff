"""Fields Stripe moved between API versions, read from either layout.

We pin `2026-08-26.dahlia`, but objects from before API version 2025-03-31.basil still
reach us (events created under an older version, captured payloads replayed, rows
synced long ago). Those keep `current_period_start/end` on the subscription rather than
on its items, and an invoice's subscription at `invoice.subscription` rather than at
`invoice.parent.subscription_details.subscription`. Every read of either goes through
here. A leaf module: it imports no app, so the sandbox reads with it too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def subscription_period(sub: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """The current period of a subscription as Unix times (start, end), or None where
    Stripe gave none: the items' (the latest, should they differ), else the
    subscription's own."""
    items = (sub.get("items") or {}).get("data") or []
    starts = [i["current_period_start"] for i in items if i.get("current_period_start")]
    ends = [i["current_period_end"] for i in items if i.get("current_period_end")]
    return (
        int(max(starts)) if starts else _int(sub.get("current_period_start")),
        int(max(ends)) if ends else _int(sub.get("current_period_end")),
    )


def invoice_subscription_id(invoice: Mapping[str, Any]) -> str:
    """The id of the subscription an invoice bills, or "" for an invoice of none."""
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    value = details.get("subscription") or invoice.get("subscription")
    return (value.get("id") or "") if isinstance(value, Mapping) else (value or "")


def _int(value: Any) -> int | None:
    return int(value) if value else None
