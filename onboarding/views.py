"""Twilio's webhooks: message status callbacks and inbound messages (opt-out/opt-in).

Both verify X-Twilio-Signature against the public URL (SITE_URL + path), which is what
Twilio signed even when a proxy in front rewrites the host or scheme.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from twilio.request_validator import RequestValidator

from accounts.models import User
from onboarding.models import OnboardingMessage
from onboarding.outbox import message_status_advance
from onboarding.sms import OPT_IN_WORDS, OPT_OUT_WORDS

logger = logging.getLogger(__name__)

Status = OnboardingMessage.Status

# Twilio MessageStatus -> ours; the in-between ones (queued, sending...) change nothing.
_TWILIO_STATUS: dict[str, str] = {
    "sent": Status.SENT,
    "delivered": Status.DELIVERED,
    "read": Status.DELIVERED,
    "undelivered": Status.UNDELIVERED,
    "failed": Status.FAILED,
    "canceled": Status.FAILED,
}

_EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def _twilio_verified(request: HttpRequest) -> None:
    """Raise PermissionDenied (403) unless Twilio signed this request."""
    signature = request.headers.get("X-Twilio-Signature", "")
    url = f"{settings.SITE_URL}{request.get_full_path()}"
    token = settings.TWILIO_AUTH_TOKEN
    if not (token and signature and RequestValidator(token).validate(url, request.POST, signature)):
        logger.warning("Twilio webhook %s: missing or bad signature", request.path)
        raise PermissionDenied("Bad Twilio signature.")


@csrf_exempt
@require_POST
def twilio_status(request: HttpRequest) -> HttpResponse:
    _twilio_verified(request)
    status = _TWILIO_STATUS.get(request.POST.get("MessageStatus", ""))
    if status is not None:
        code = request.POST.get("ErrorCode", "")
        message_status_advance(
            channel=OnboardingMessage.Channel.SMS,
            provider_message_id=request.POST.get("MessageSid", ""),
            status=status,
            error=f"Twilio error {code}" if code else "",
        )
    return HttpResponse(status=204)


@csrf_exempt
@require_POST
def twilio_inbound(request: HttpRequest) -> HttpResponse:
    _twilio_verified(request)
    # Twilio's Advanced Opt-Out names the keyword's kind; otherwise read the first word.
    kind = request.POST.get("OptOutType", "").upper()
    words = request.POST.get("Body", "").strip().upper().split()
    word = words[0] if words else ""
    opt_in = None
    if kind == "STOP" or word in OPT_OUT_WORDS:
        opt_in = False
    elif kind == "START" or word in OPT_IN_WORDS:
        opt_in = True
    if opt_in is not None:
        changed = User.objects.filter(phone=request.POST.get("From", "")).update(sms_opt_in=opt_in)
        logger.info("Twilio inbound %s: SMS opt-in=%s for %s user(s)", word, opt_in, changed)
    # Twilio itself answers STOP/START; an empty response adds nothing.
    return HttpResponse(_EMPTY_TWIML, content_type="text/xml")
