"""The reliability suite: concurrent and reordered webhooks, hostile requests, provider
outages, killed workers, CSRF across the URLconf and the deployment settings.

Stripe is faked at stripe-python's HTTP client (tests/conftest.py: fake_stripe and the
fixtures beside it); the live server's request threads share the fake with the test.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection


@pytest.fixture(autouse=True)
def _stripe_delivery(stripe_delivery: int) -> None:
    """These journeys run with webhooks delivered as Stripe delivers them
    (tests/conftest.py: stripe_delivery; a failure prints the seed)."""


@pytest.fixture
def postgresql() -> None:
    """Skip the test on SQLite: it needs transactions that overlap and row locks, as
    production's PostgreSQL has; SQLite runs one write transaction at a time."""
    if connection.vendor != "postgresql":
        pytest.skip(
            "PostgreSQL only (overlapping transactions, row locks): SQLite runs one write "
            "transaction at a time; run with DATABASE_URL=postgres://..."
        )


@pytest.fixture
def webhook_url(live_server: Any, endpoint: Any) -> str:
    """The live server's Stripe webhook URL, the server ready for a crowd.

    Django's test server accepts 10 pending connections, then resets the rest; gunicorn
    in production queues 2048. Calling listen() again on the listening socket raises the
    queue, so that 50 deliveries at once are all received, as in production.
    """
    live_server.thread.httpd.socket.listen(2048)
    return f"{live_server.url}/stripe/webhook/{endpoint.djstripe_uuid}/"
