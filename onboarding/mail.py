"""Email through Django's configured backend: an anymail ESP, SMTP or the console.

One function, one error type. Which backend sends is purely settings (EMAIL_BACKEND,
chosen from ANYMAIL_ESP in smartflow/settings.py).
"""

from __future__ import annotations

import smtplib
import socket

import requests
from anymail.exceptions import AnymailAPIError, AnymailError, AnymailRecipientsRefused
from anymail.message import AnymailMessage
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from onboarding.errors import ProviderError, request_never_left


class MailError(ProviderError):
    """An email that was not sent (see ProviderError for what the flags mean)."""


def email_send(
    *,
    to: str,
    subject: str,
    text: str,
    html: str,
    metadata: dict[str, str],
    tags: list[str],
    reply_to: str = "",
) -> str:
    """Send one email; return the provider's message id ("" when the backend has none).
    Replies go to `reply_to` when given (SUPPORT_EMAIL: a person, not the sender).

    Raises MailError, classified for the retry rules.
    """
    message = AnymailMessage(
        subject=subject,
        body=text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[to],
        reply_to=[reply_to] if reply_to else None,
    )
    message.attach_alternative(html, "text/html")
    # Both come back on the ESP's tracking webhooks; other backends ignore them.
    message.metadata = metadata
    message.tags = tags
    try:
        message.send()
    except AnymailRecipientsRefused as exc:
        raise MailError(f"recipient refused: {exc}") from exc
    except AnymailAPIError as exc:
        raise _api_error(exc) from exc
    except AnymailError as exc:
        # Invalid address, unsupported feature...: found before anything was sent.
        raise MailError(f"not sendable: {exc}") from exc
    except ImproperlyConfigured as exc:
        raise MailError(f"email provider misconfigured: {exc}") from exc
    except smtplib.SMTPException as exc:
        raise _smtp_error(exc) from exc
    except OSError as exc:
        raise _socket_error(exc) from exc
    message_id = message.anymail_status.message_id
    if isinstance(message_id, set):  # one id per recipient; there is one recipient
        message_id = next(iter(message_id), None)
    return "" if message_id is None else str(message_id)


def _api_error(exc: AnymailAPIError) -> MailError:
    status = exc.status_code
    cause = exc.__cause__
    if isinstance(cause, requests.RequestException):
        if request_never_left(cause):
            return MailError(f"provider unreachable: {cause}", retry=True)
        return MailError(f"no answer from the provider: {cause}", outcome_unknown=True)
    if status is not None and (status == 429 or status >= 500):
        return MailError(f"provider error {status}: {exc}", retry=True)
    if status is None:
        # The provider answered 2xx but with something anymail could not read.
        return MailError(f"unreadable provider answer: {exc}", outcome_unknown=True)
    return MailError(f"provider refused ({status}): {exc}")


def _smtp_error(exc: smtplib.SMTPException) -> MailError:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return MailError(f"recipient refused: {exc}")
    if isinstance(exc, smtplib.SMTPResponseException):
        # The server answered: 4xx is "try again later" in SMTP, 5xx is final.
        return MailError(f"SMTP {exc.smtp_code}: {exc}", retry=400 <= exc.smtp_code < 500)
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return MailError(f"SMTP connection lost: {exc}", outcome_unknown=True)
    return MailError(f"SMTP error: {exc}")


def _socket_error(exc: OSError) -> MailError:
    if isinstance(exc, ConnectionRefusedError | socket.gaierror):
        return MailError(f"SMTP server unreachable: {exc}", retry=True)
    # A timeout or reset may come after the server took the message.
    return MailError(f"SMTP connection lost: {exc}", outcome_unknown=True)
