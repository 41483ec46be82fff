"""SMS through Twilio: one function to send, one error type, and segment counting.

On only when TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and a sender (TWILIO_PHONE_NUMBER or
TWILIO_MESSAGING_SERVICE_SID) are set (accounts.phone.sms_missing_settings, where SMS
consent is given or refused); the client is built per send, never at import.
"""

from __future__ import annotations

import requests
from django.conf import settings
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from onboarding.errors import ProviderError, request_never_left

TIMEOUT_SECONDS = 15

# Twilio error codes (https://www.twilio.com/docs/api/errors).
INVALID_NUMBER = 21211
OPTED_OUT = 21610
NOT_MOBILE = 21614
TOO_MANY_REQUESTS = 20429
_PERMANENT_CODES = {INVALID_NUMBER, OPTED_OUT, NOT_MOBILE}

# Twilio's default opt-out / opt-in keywords (Advanced Opt-Out uses the same lists).
OPT_OUT_WORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
)
OPT_IN_WORDS = frozenset({"START", "YES", "UNSTOP"})

# GSM 03.38: the basic set costs one septet a character, the extension table two.
_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")


class SmsError(ProviderError):
    """An SMS that was not sent (see ProviderError); `code` is Twilio's error code."""

    def __init__(self, reason: str, *, code: int | None = None, **flags: bool):
        super().__init__(reason, **flags)
        self.code = code

    @property
    def opted_out(self) -> bool:
        return self.code == OPTED_OUT


def sms_segments(text: str) -> int:
    """How many segments (billed messages) `text` takes.

    GSM-7 when every character is in the GSM alphabet: 160 septets in one segment, 153
    per part when concatenated. Otherwise (an emoji, a curly quote) UCS-2: 70 UTF-16
    code units, 67 per part. A character is never split across two parts.
    """
    if all(ch in _GSM7_BASIC or ch in _GSM7_EXTENDED for ch in text):
        units = [2 if ch in _GSM7_EXTENDED else 1 for ch in text]
        single, part = 160, 153
    else:
        units = [2 if ord(ch) > 0xFFFF else 1 for ch in text]  # surrogate pairs
        single, part = 70, 67
    if sum(units) <= single:
        return 1
    segments, used = 1, 0
    for size in units:
        if used + size > part:
            segments, used = segments + 1, 0
        used += size
    return segments


def sms_send(*, to: str, body: str, status_callback: str) -> str:
    """Send one SMS; return Twilio's message SID. Raises SmsError."""
    client = Client(
        settings.TWILIO_ACCOUNT_SID,
        settings.TWILIO_AUTH_TOKEN,
        http_client=TwilioHttpClient(timeout=TIMEOUT_SECONDS),
    )
    sender = (
        {"messaging_service_sid": settings.TWILIO_MESSAGING_SERVICE_SID}
        if settings.TWILIO_MESSAGING_SERVICE_SID
        else {"from_": settings.TWILIO_PHONE_NUMBER}
    )
    try:
        message = client.messages.create(
            to=to, body=body, status_callback=status_callback, **sender
        )
    except (TwilioRestException, TwilioServiceException) as exc:
        raise _twilio_error(exc) from exc
    except requests.RequestException as exc:
        if request_never_left(exc):
            raise SmsError(f"Twilio unreachable: {exc}", retry=True) from exc
        raise SmsError(f"no answer from Twilio: {exc}", outcome_unknown=True) from exc
    except TwilioException as exc:
        raise SmsError(f"Twilio client error: {exc}") from exc
    return str(message.sid)


def _twilio_error(exc: TwilioRestException | TwilioServiceException) -> SmsError:
    code = int(exc.code) if exc.code is not None else None
    status = int(exc.status)
    detail = getattr(exc, "msg", None) or getattr(exc, "title", "")
    reason = f"Twilio {status} error {code}: {detail}"
    if code in _PERMANENT_CODES:
        return SmsError(reason, code=code)
    return SmsError(
        reason, code=code, retry=code == TOO_MANY_REQUESTS or status == 429 or status >= 500
    )
