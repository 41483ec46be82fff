"""The sandbox's webhook deliveries into the app, for tests that need no server."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from billing.webhook_queue import process_due
from devtools.stripe_sandbox.delivery import Transport, client_transport


def app_transport(client: Any) -> Transport:
    """Each delivery through the test `client`, then what the app acknowledged processed
    as its worker would (billing/webhook_queue.py), before the next one is sent: a worker
    that keeps up. (Processing can call the sandbox, which emits further events.)"""
    send = client_transport(client)

    def deliver(url: str, body: bytes, headers: Mapping[str, str]) -> int:
        status = send(url, body, headers)
        process_due()
        return status

    return deliver
