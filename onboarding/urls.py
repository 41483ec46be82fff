from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps

from anymail import urls as anymail_urls
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, HttpResponseNotFound
from django.urls import URLPattern, include, path

from onboarding import views

app_name = "onboarding"

logger = logging.getLogger(__name__)


def _secret_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    # Without ANYMAIL_WEBHOOK_SECRET anymail accepts any POST (with only a warning);
    # refuse instead, so a forged event can never mark a message bounced.
    @wraps(view)
    def guarded(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if not settings.ANYMAIL.get("WEBHOOK_SECRET"):
            logger.warning("anymail webhook %s refused: ANYMAIL_WEBHOOK_SECRET unset", request.path)
            return HttpResponseForbidden("Webhook secret not configured.")
        try:
            return view(request, *args, **kwargs)
        except ImproperlyConfigured as exc:
            # Every ESP's webhook is mounted, and many need settings of their own (a
            # signing key, boto3) before they can check a request; an ESP this site is
            # not set up for answers 404 rather than 500 to whoever posts to it.
            logger.error("anymail webhook %s refused: %s", request.path, exc)
            return HttpResponseNotFound("This email provider is not set up here.")

    return guarded


# anymail's tracking (and inbound) webhooks, one per ESP: /onboarding/anymail/<esp>/tracking/
_anymail_patterns = [
    URLPattern(p.pattern, _secret_required(p.callback), p.default_args, p.name)
    for p in anymail_urls.urlpatterns
]

urlpatterns = [
    path("anymail/", include((_anymail_patterns, "anymail"))),
    path("twilio/status/", views.twilio_status, name="twilio_status"),
    path("twilio/inbound/", views.twilio_inbound, name="twilio_inbound"),
]
