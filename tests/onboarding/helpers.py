"""Fakes at the providers' boundaries and helpers to drive the outbox like billing does
(the fixtures that set them up, `onboarding_settings`, `twilio` and `buyer`, are in
tests/conftest.py: the back-office tests use them too).

Email: a small anymail backend that fails as scripted, then behaves as anymail's test
backend (messages in django.core.mail.outbox). SMS: twilio's HTTP client replaced by a
recorder answering scripted responses. Tasks: the real django-tasks database worker.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import requests
from anymail.backends.test import EmailBackend as AnymailTestBackend
from anymail.exceptions import AnymailRequestsAPIError
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone
from django_tasks_db.models import DBTaskResult, get_date_max
from twilio.http.response import Response as TwilioResponse

from accounts.models import User
from billing.models import PlanChange
from billing.signals import plan_changed

SITE_URL = "https://app.smartflow.test"
TWILIO_SID = "AC" + "0" * 32
TWILIO_TOKEN = "twilio-test-auth-token"
TWILIO_FROM = "+447700900000"


def http_response(status: int, body: dict[str, Any]) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.reason = "Service Unavailable" if status >= 500 else "Bad Request"
    response._content = json.dumps(body).encode()
    return response


class ScriptedEmailBackend(AnymailTestBackend):
    """anymail's test backend, raising the scripted errors first (one per send)."""

    script: ClassVar[list[BaseException]] = []
    attempts = 0

    def post_to_esp(self, payload: Any, message: Any) -> Any:
        type(self).attempts += 1
        if self.script:
            raise self.script.pop(0)
        return super().post_to_esp(payload, message)


def esp_error(status: int) -> AnymailRequestsAPIError:
    return AnymailRequestsAPIError(
        response=http_response(status, {"errors": [{"message": "nope"}]}),
        backend=ScriptedEmailBackend(),
    )


def esp_timeout() -> AnymailRequestsAPIError:
    # What anymail raises when the ESP does not answer: its error, caused by requests'.
    try:
        raise requests.ReadTimeout("Read timed out. (read timeout=30)")
    except requests.ReadTimeout as cause:
        error = AnymailRequestsAPIError("Error posting to https://api.esp.test/send:")
        error.__cause__ = cause
        return error


class FakeTwilio:
    """Stands in for twilio's HTTP client: records requests, answers from a script."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: list[TwilioResponse | BaseException] = []

    def error(self, status: int, code: int, message: str = "error") -> None:
        body = {"code": code, "message": message, "status": status}
        self.script.append(TwilioResponse(status, json.dumps(body)))

    def request(self, method: str, url: str, **kwargs: Any) -> TwilioResponse:
        self.requests.append({"method": method, "url": url, **kwargs})
        if self.script:
            answer = self.script.pop(0)
            if isinstance(answer, BaseException):
                raise answer
            return answer
        sid = f"SM{len(self.requests):032d}"
        return TwilioResponse(201, json.dumps({"sid": sid, "status": "queued"}))


def activate(
    user: User, plan: str, *, notify: bool | None = True, source: str = "checkout"
) -> PlanChange:
    """What billing does: change the plan, write the PlanChange, send plan_changed."""
    with transaction.atomic():
        old_plan = user.plan
        user.plan = plan
        user.save(update_fields=["plan"])
        change = PlanChange.objects.create(
            user=user, old_plan=old_plan, new_plan=plan, source=source, stripe_event_id="evt_1"
        )
        plan_changed.send(sender=PlanChange, plan_change=change, notify=notify)
    return change


def run_worker() -> None:
    call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload", verbosity=0)


def retries_come_due() -> list[DBTaskResult]:
    """Let the backoff pass: every task waiting for later becomes due now."""
    waiting = list(
        DBTaskResult.objects.filter(
            status="READY", run_after__gt=timezone.now(), run_after__lt=get_date_max()
        )
    )
    DBTaskResult.objects.filter(pk__in=[t.pk for t in waiting]).update(run_after=timezone.now())
    return waiting
