"""Errors reach people: a server error is emailed to ADMINS (LOGGING's mail_admins) and
sent to Sentry when SENTRY_DSN is set (smartflow/sentry.py); with neither, nothing is
sent and `check --deploy` warns (onboarding.W001)."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
import sentry_sdk
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse
from django.urls import path
from sentry_sdk.transport import Transport

from smartflow.sentry import sentry_configure
from smartflow.settings import _admins


def _boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("the boom view always fails")


urlpatterns = [path("boom/", _boom)]


@pytest.fixture
def failing_client(client):
    client.raise_request_exception = False
    return client


# --- Email to ADMINS --------------------------------------------------------------------


@pytest.mark.urls(__name__)
def test_a_server_error_is_emailed_to_admins(failing_client, settings, mailoutbox):
    settings.ADMINS = [("Ops", "ops@example.com")]

    assert failing_client.get("/boom/").status_code == 500

    (mail,) = mailoutbox
    assert mail.to == ["ops@example.com"]
    assert mail.from_email == settings.SERVER_EMAIL
    assert mail.subject.startswith("[SmartFlow] ERROR")
    assert "Internal Server Error: /boom/" in mail.subject
    assert "the boom view always fails" in mail.body


@pytest.mark.urls(__name__)
def test_with_no_admins_a_server_error_is_emailed_to_nobody(failing_client, settings, mailoutbox):
    settings.ADMINS = []

    assert failing_client.get("/boom/").status_code == 500
    assert mailoutbox == []


def test_admins_are_read_as_name_and_address_pairs():
    assert _admins("Ops <ops@example.com>, jo@example.com") == [
        ("Ops", "ops@example.com"),
        ("jo@example.com", "jo@example.com"),
    ]
    assert _admins("") == []
    assert _admins("  ") == []


@pytest.mark.parametrize("bad", ["ops", "Ops <ops example.com>", "Ops <>"])
def test_an_admin_without_an_address_stops_start_up(bad):
    with pytest.raises(ImproperlyConfigured, match="ADMINS"):
        _admins(bad)


def test_check_deploy_warns_when_nobody_gets_the_errors(settings):
    settings.DEBUG = False
    settings.ADMINS = []

    found = checks.run_checks(include_deployment_checks=True, tags=[checks.Tags.security])
    assert "onboarding.W001" in [m.id for m in found]

    settings.ADMINS = [("Ops", "ops@example.com")]
    found = checks.run_checks(include_deployment_checks=True, tags=[checks.Tags.security])
    assert "onboarding.W001" not in [m.id for m in found]


# --- Sentry -----------------------------------------------------------------------------


class _Captured(Transport):
    """Sentry's transport, kept in this process: what would have been sent."""

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.events: list[dict[str, Any]] = []

    def capture_envelope(self, envelope: Any) -> None:
        self.events += [item.payload.json for item in envelope.items if item.type == "event"]


@pytest.fixture
def sentry_events():
    transport = _Captured()
    sentry_configure(
        dsn="https://public@sentry.example.invalid/1",
        environment="test",
        traces_sample_rate=0.0,
        transport=transport,
    )
    try:
        yield transport.events
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.get_global_scope().set_client(None)


@pytest.mark.urls(__name__)
def test_a_server_error_reaches_sentry_without_personal_data(
    failing_client, customer, sentry_events
):
    failing_client.force_login(customer)

    assert failing_client.get("/boom/").status_code == 500
    sentry_sdk.flush()

    [event] = [e for e in sentry_events if e.get("exception")]
    assert event["exception"]["values"][-1]["value"] == "the boom view always fails"
    assert event["transaction"].endswith("boom/")  # the view's URL pattern
    assert event["environment"] == "test"
    # Nor in the SQL breadcrumbs' parameters, which also hold session keys.
    assert "user" not in event
    assert customer.email not in repr(event)
    assert "db.params" not in repr(event)
    assert "cookies" not in event.get("request", {})


def _sentry_in_a_fresh_process(**env: str) -> str:
    code = (
        "import django; django.setup(); import sentry_sdk; "
        "from sentry_sdk.integrations.django import DjangoIntegration; "
        "c = sentry_sdk.get_client(); "
        "print(c.is_active(), c.get_integration(DjangoIntegration) is not None)"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SENTRY_")}
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, **env, "DEBUG": "true", "DJANGO_SETTINGS_MODULE": "smartflow.settings"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_sentry_starts_with_its_django_integration_when_a_dsn_is_set():
    # No event is captured, so nothing is sent to the made-up host.
    dsn = "https://public@sentry.example.invalid/1"
    assert _sentry_in_a_fresh_process(SENTRY_DSN=dsn) == "True True"
    assert _sentry_in_a_fresh_process() == "False False"
