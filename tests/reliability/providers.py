"""Email providers for the reliability tests, installed as Django email backends: the
boundary where the provider really is (EMAIL_BACKEND), never our own code."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import requests
from anymail.backends.test import EmailBackend as AnymailTestBackend
from anymail.exceptions import AnymailRequestsAPIError
from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend


def _esp_answer(status: int) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.reason = "Too Many Requests" if status == 429 else "Service Unavailable"
    response._content = json.dumps({"errors": [{"message": "try later"}]}).encode()
    return response


class OutageEmailBackend(AnymailTestBackend):
    """anymail's test backend (what it accepts goes to django.core.mail.outbox) behind an
    outage: while `down`, every send fails the way an ESP answers when it is down or
    overloaded (5xx, 429), one after the other."""

    down: ClassVar[bool] = False
    refused: ClassVar[int] = 0
    answers: ClassVar[Sequence[int]] = (503, 502, 429, 500)

    def post_to_esp(self, payload: Any, message: Any) -> Any:
        cls = type(self)
        if cls.down:
            status = cls.answers[cls.refused % len(cls.answers)]
            cls.refused += 1
            raise AnymailRequestsAPIError(response=_esp_answer(status), backend=self)
        return super().post_to_esp(payload, message)


class LedgerEmailBackend(BaseEmailBackend):
    """A provider for a worker in another process. Every message it accepts is appended
    to the file RELIABILITY_LEDGER names (its id and recipients), flushed to disk before
    anything else. For the message RELIABILITY_HANG names, the answer then never comes
    (for two minutes): the worker is killed while it waits."""

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        ledger = Path(os.environ["RELIABILITY_LEDGER"])
        for message in email_messages:
            message_id = str(getattr(message, "metadata", {}).get("onboarding_message", ""))
            with ledger.open("a") as file:
                file.write(json.dumps({"message": message_id, "to": message.to}) + "\n")
                file.flush()
                os.fsync(file.fileno())
            if message_id and message_id == os.environ.get("RELIABILITY_HANG"):
                threading.Event().wait(120)
        return len(email_messages)


def ledger_read(path: Path) -> list[str]:
    """Ids of the messages the ledger provider accepted, one per acceptance."""
    if not path.exists():
        return []
    return [json.loads(line)["message"] for line in path.read_text().splitlines() if line]
