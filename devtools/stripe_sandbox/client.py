"""stripe-python's HTTP client, pointed at the sandbox instead of api.stripe.com."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import stripe
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from billing import stripe_pace

logger = logging.getLogger(__name__)

_SEGMENT = re.compile(r"\[([^\]]*)\]")


def form_decode(body: str | bytes | None) -> dict[str, Any]:
    """Stripe's form encoding back into nested data:
    `metadata[k]=v` -> {"metadata": {"k": "v"}},
    `line_items[0][price]=p` -> {"line_items": [{"price": "p"}]},
    `expand[]=x` or `expand[0]=x` -> {"expand": ["x"]}."""
    if isinstance(body, bytes):
        body = body.decode()
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body or "", keep_blank_values=True):
        head = key.split("[", 1)[0]
        path = [head, *_SEGMENT.findall(key[len(head) :])]
        node: Any = root
        for index, part in enumerate(path):
            last = index == len(path) - 1
            if part == "":  # "expand[]": append
                part = str(len(node))
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
    decoded: dict[str, Any] = _listify(root, parent="")
    return decoded


def _listify(node: Any, *, parent: str) -> Any:
    """Dicts keyed 0..n become lists (except metadata, whose keys are the user's)."""
    if not isinstance(node, dict):
        return node
    items = {k: _listify(v, parent=k) for k, v in node.items()}
    if parent != "metadata" and items and all(k.isdigit() for k in items):
        return [items[k] for k in sorted(items, key=int)]
    return items


class SandboxHTTPClient(stripe.HTTPClient):
    """Answers stripe-python's requests from the sandbox's database, never the network."""

    name = "smartflow-sandbox"

    def __init__(self) -> None:
        super().__init__()

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
        *,
        _usage: list[str] | None = None,
    ) -> tuple[str, int, Mapping[str, str]]:
        # Imported here: the API modules touch models and tasks, which app loading must
        # not (this client is installed from AppConfig.ready()).
        from devtools.stripe_sandbox import ratelimit
        from devtools.stripe_sandbox.api import api_request
        from devtools.stripe_sandbox.store import new_id

        if settings.STRIPE_SANDBOX_LATENCY_MS > 0:
            # Stripe's round trip, for measuring how long it holds the caller (make bench).
            time.sleep(settings.STRIPE_SANDBOX_LATENCY_MS / 1000)
        parts = urlsplit(url)
        params = form_decode(parts.query if method.lower() in ("get", "delete") else post_data)
        request_id = new_id("req")
        # Over STRIPE_SANDBOX_RATE_LIMIT: Stripe's 429, before anything is read or written.
        if (refused := ratelimit.refusal(request_id)) is not None:
            logger.info("Stripe sandbox: %s %s -> 429 (rate limit)", method.upper(), parts.path)
            return refused
        status, body = api_request(
            method, parts.path, params, dict(headers or {}), request_id=request_id
        )
        # One short line per call, in place of stripe-python's own request log (silenced in
        # sandbox mode by settings.LOGGING), whose api.stripe.com URLs suggest that real
        # Stripe is being called.
        logger.info("Stripe sandbox: %s %s -> %s", method.upper(), parts.path, status)
        response_headers = {
            "Content-Type": "application/json",
            "Request-Id": request_id,
            "Stripe-Version": settings.STRIPE_API_VERSION,
        }
        return json.dumps(body), status, response_headers

    def request_stream(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
        *,
        _usage: list[str] | None = None,
    ) -> tuple[Any, int, Mapping[str, str]]:
        body, status, response_headers = self.request(method, url, headers, post_data)
        return io.BytesIO(body.encode()), status, response_headers

    def close(self) -> None:
        pass  # nothing is open

    async def request_async(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
        *,
        _usage: list[str] | None = None,
    ) -> tuple[bytes, int, Mapping[str, str]]:
        body, status, response_headers = await sync_to_async(self.request)(
            method, url, headers, post_data
        )
        return body.encode(), status, response_headers

    async def request_stream_async(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
        *,
        _usage: list[str] | None = None,
    ) -> tuple[AsyncIterator[bytes], int, Mapping[str, str]]:
        body, status, response_headers = await self.request_async(method, url, headers, post_data)

        async def chunks() -> AsyncIterator[bytes]:
            yield body

        return chunks(), status, response_headers

    async def close_async(self) -> None:
        pass

    def sleep_async(self, secs: float) -> Any:
        return asyncio.sleep(secs)


def sandbox_install() -> None:
    """Make stripe-python talk to the sandbox. Refuses anything that looks live."""
    if settings.STRIPE_LIVE_MODE or any(
        str(getattr(settings, name, "") or "").startswith(("sk_live_", "rk_live_"))
        for name in ("STRIPE_LIVE_SECRET_KEY", "STRIPE_TEST_SECRET_KEY", "STRIPE_SECRET_KEY")
    ):
        raise ImproperlyConfigured(
            "The Stripe sandbox refuses to run with a live Stripe key or STRIPE_LIVE_MODE on."
        )
    # Paced like the real client (billing/stripe_pace.py): the sandbox can answer 429 too.
    stripe_pace.install(SandboxHTTPClient())
    # A retry would only replay the same answer from the same database.
    stripe.max_network_retries = 0
    logger.info("Stripe sandbox installed: no request leaves this machine.")
