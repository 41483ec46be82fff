"""Confirming a mobile number by a code sent by SMS, before SMS consent counts.

A customer with a number and SMS consent asks for a code (`phone_confirmation_start`,
called by the profile and at signup); `phone_code_requested` tells onboarding, whose
worker texts it (onboarding/outbox.py) and, at that moment, makes the code
(`phone_code_issue`). The code is kept only as a keyed hash, lives CODE_LIFETIME, and
dies after MAX_ATTEMPTS wrong entries; a new one can be asked for after RESEND_AFTER, at
most MAX_SENDS_PER_DAY a day. Entering it (`phone_confirm`) marks that number confirmed
(User.phone_confirmed); a different number on the account is not confirmed.

Which settings turn SMS on lives here too (`sms_missing_settings`, used by
onboarding/sms.py), below onboarding, because accounts decides whether SMS consent can
be given at all: with Twilio not configured it cannot, except with DEBUG on, where the
worker writes the code to the log instead (`make run`), as the console email backend does.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac

from accounts.models import PhoneCode, User

logger = logging.getLogger(__name__)

CODE_LIFETIME = timedelta(minutes=10)
MAX_ATTEMPTS = 5
RESEND_AFTER = timedelta(seconds=60)
MAX_SENDS_PER_DAY = 5

# Sent with `user` and `phone_code` (the PhoneCode row) once a code is asked for, inside
# the caller's transaction; onboarding queues the SMS (onboarding/receivers.py).
phone_code_requested = Signal()


class PhoneCodeRefused(Exception):
    """A code that cannot be sent or accepted; `message` says why, for the customer."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def sms_missing_settings() -> list[str]:
    """The Twilio settings still to set; empty when SMS is on."""
    missing = [
        name for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN") if not getattr(settings, name)
    ]
    if not (settings.TWILIO_PHONE_NUMBER or settings.TWILIO_MESSAGING_SERVICE_SID):
        missing.append("TWILIO_PHONE_NUMBER or TWILIO_MESSAGING_SERVICE_SID")
    return missing


def phone_codes_logged() -> bool:
    """True where codes go to the log instead of by SMS: DEBUG on, Twilio not set up."""
    return settings.DEBUG and bool(sms_missing_settings())


def sms_available() -> bool:
    """Whether a customer can give SMS consent (and so get a code) on this site."""
    return not sms_missing_settings() or phone_codes_logged()


@dataclass(frozen=True)
class CodeState:
    """What the profile says about the code of the number on the account."""

    sent: bool  # a code for this number was asked for and is still usable
    expires_at: datetime | None


def phone_code_state(user: User) -> CodeState:
    """Whether the number on the account has a usable code (sent, or on its way)."""
    row = PhoneCode.objects.filter(user=user, phone=user.phone).first() if user.phone else None
    usable = row is not None and row.attempts < MAX_ATTEMPTS and not _expired(row)
    return CodeState(sent=usable, expires_at=row.expires_at if usable and row else None)


def phone_confirmation_start(*, user: User) -> PhoneCode:
    """Ask for a code for the number on `user`'s account (queued, texted by the worker).

    Raises PhoneCodeRefused when SMS is off, there is nothing to confirm, or a code was
    asked for less than RESEND_AFTER ago or MAX_SENDS_PER_DAY times today."""
    if not sms_available():
        raise PhoneCodeRefused("SMS is not available on this site, so we cannot text you a code.")
    if not user.phone_awaits_confirmation:
        raise PhoneCodeRefused("There is no mobile number waiting to be confirmed.")
    now = timezone.now()
    with transaction.atomic():
        row, created = PhoneCode.objects.select_for_update().get_or_create(
            user=user, defaults={"phone": user.phone, "requested_at": now}
        )
        if not created:
            if row.phone == user.phone and now - row.requested_at < RESEND_AFTER:
                wait = int((RESEND_AFTER - (now - row.requested_at)).total_seconds()) + 1
                raise PhoneCodeRefused(
                    f"We have just sent a code. You can ask for another in {wait} seconds."
                )
            if now - row.window_started_at >= timedelta(days=1):
                row.window_started_at, row.sends_in_window = now, 0
            if row.sends_in_window >= MAX_SENDS_PER_DAY:
                raise PhoneCodeRefused(
                    "We have sent as many codes as we can today. Please try again tomorrow."
                )
        # A new request voids the previous code until the worker texts the new one.
        row.phone, row.requested_at = user.phone, now
        row.code_hash, row.expires_at, row.attempts = "", None, 0
        row.sends_in_window += 1
        row.save()
        phone_code_requested.send(sender=User, user=user, phone_code=row)
    logger.info("Phone code requested for user %s", user.pk)
    return row


def phone_code_issue(*, user: User, phone: str) -> str | None:
    """Make the code to text to `phone` now and keep its hash; None when that number no
    longer waits for a code (changed, confirmed or consent withdrawn meanwhile).

    Called by the worker just before it sends the SMS: the code is never stored."""
    with transaction.atomic():
        row = PhoneCode.objects.select_for_update().filter(user=user, phone=phone).first()
        user.refresh_from_db(fields=["phone", "sms_opt_in", "phone_confirmed"])
        if row is None or str(user.phone) != phone or not user.phone_awaits_confirmation:
            return None
        code = f"{secrets.randbelow(10**6):06d}"
        row.code_hash = _code_hash(user=user, phone=phone, code=code)
        row.expires_at = timezone.now() + CODE_LIFETIME
        row.attempts = 0
        row.save(update_fields=["code_hash", "expires_at", "attempts"])
    return code


def phone_confirm(*, user: User, code: str) -> None:
    """Confirm the number on `user`'s account with the code texted to it.

    Raises PhoneCodeRefused (wrong, expired, too many tries, or no code sent)."""
    code = "".join(code.split())
    with transaction.atomic():
        row = (
            PhoneCode.objects.select_for_update().filter(user=user, phone=user.phone).first()
            if user.phone
            else None
        )
        refused = _code_refusal(row, user=user, code=code)
        if row is not None and refused is None:
            user.phone_confirmed = row.phone
            user.phone_confirmed_at = timezone.now()
            user.save(update_fields=["phone_confirmed", "phone_confirmed_at"])
            row.delete()
    # Raised once the transaction has committed the wrong try it counted.
    if refused is not None:
        raise PhoneCodeRefused(refused)
    logger.info("Mobile number confirmed for user %s", user.pk)


def _code_refusal(row: PhoneCode | None, *, user: User, code: str) -> str | None:
    """Why `code` does not confirm the number (a wrong one is counted), or None."""
    if row is None or not row.code_hash:
        return "We have not sent a code to this number yet."
    if row.attempts >= MAX_ATTEMPTS:
        return "Too many wrong codes. Ask for a new code."
    if _expired(row):
        return "That code has expired. Ask for a new code."
    if constant_time_compare(row.code_hash, _code_hash(user=user, phone=str(row.phone), code=code)):
        return None
    row.attempts += 1
    row.save(update_fields=["attempts"])
    left = MAX_ATTEMPTS - row.attempts
    if left:
        return f"That code is not right. {left} tries left."
    return "That code is not right, and that was the last try. Ask for a new code."


def _expired(row: PhoneCode) -> bool:
    return row.expires_at is not None and row.expires_at <= timezone.now()


def _code_hash(*, user: User, phone: str, code: str) -> str:
    # Keyed with SECRET_KEY: a copy of the database alone cannot try the million codes.
    return salted_hmac(
        "accounts.phone.code", f"{user.pk}:{phone}:{code}", algorithm="sha256"
    ).hexdigest()
