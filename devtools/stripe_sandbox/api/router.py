"""Routing: each Stripe API request to its handler, with Stripe's idempotency, expansion
and errors. The handlers live in one module per resource beside this one."""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Callable

from django.db import transaction

from devtools.stripe_sandbox import store
from devtools.stripe_sandbox.events import current_request
from devtools.stripe_sandbox.models import IdempotentRequest
from devtools.stripe_sandbox.store import Obj, StripeError

logger = logging.getLogger(__name__)

Handler = Callable[..., Obj]
ROUTES: list[tuple[str, re.Pattern[str], Handler]] = []
ID = r"(?P<id>[A-Za-z0-9_]+)"
# The handlers that write nothing: every GET's, and the POSTs that only compute (previews).
READ_ONLY: set[Handler] = set()


def route(method: str, pattern: str, *, read_only: bool = False) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        ROUTES.append((method, re.compile(f"^/v1{pattern}$"), handler))
        if read_only or method == "GET":
            READ_ONLY.add(handler)
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
        # A handler that only reads needs no transaction of its own, nor the savepoint
        # that would be one inside the caller's (the idempotent answer kept after it is
        # one statement). Only a database error in it, a sandbox bug answered 500 all
        # the same, would then also fail the caller's transaction.
        with (
            contextlib.nullcontext() if handler in READ_ONLY else transaction.atomic(),
            store.clock_read_once(),
        ):
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
        failure = StripeError(
            "The sandbox failed to answer this request.", status=500, type="api_error"
        )
        status, body = failure.status, failure.body()
    finally:
        current_request.reset(token)
    return status, body


def _remember(key: str, method: str, path: str, status: int, body: Obj) -> None:
    # A concurrent request with the same key that answered first is kept (ON CONFLICT DO
    # NOTHING: no savepoint needed to survive the clash).
    IdempotentRequest.objects.bulk_create(
        [
            IdempotentRequest(
                key=key, method=method, path=path, status=status, body=json.dumps(body)
            )
        ],
        ignore_conflicts=True,
    )
