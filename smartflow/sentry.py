"""Errors to Sentry: sentry-sdk with its Django integration, started by smartflow/
settings.py when SENTRY_DSN is set, as Sentry's Django guide does it. Unset, sentry-sdk is
not even imported and nothing is sent.

What reaches Sentry: unhandled exceptions in requests and management commands (the
Django integration), and every log record at ERROR (its logging integration, on by
default): a failed task, an email provider refusing, a new billing alert
(billing/alerts.py). Nothing personal is collected automatically: no user identity,
cookies, request bodies, query strings, SQL parameters or local variables (sentry-sdk's
`data_collection`, which replaced `send_default_pii`); the exception, its stack and the
URL path are enough to act on. Log messages go as written: a billing alert's text names
the customer's email, as the email to ADMINS does."""

from __future__ import annotations

from typing import Any


def sentry_configure(
    *, dsn: str, environment: str, traces_sample_rate: float, transport: Any = None
) -> None:
    """Start sentry-sdk for this process. `transport` replaces the HTTP one (tests)."""
    import sentry_sdk
    from sentry_sdk.integrations.django import DjangoIntegration

    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        traces_sample_rate=traces_sample_rate,
        data_collection={
            "user_info": False,
            "cookies": {"mode": "off"},
            "http_bodies": [],
            "url_query_params": {"mode": "off"},
            "stack_frame_variables": False,
            # SQL breadcrumbs keep the statements, not their values (emails, session keys).
            "database_query_data": False,
        },
        integrations=[DjangoIntegration()],
        transport=transport,
    )
