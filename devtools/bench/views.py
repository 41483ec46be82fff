"""Ceiling views for `make bench`: the least a Django view on the same server can do for
each measured figure. Mounted at /bench/ only when settings.BENCH_VIEWS is on.
"""

from __future__ import annotations

import uuid

import stripe
from django.conf import settings
from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST, require_safe
from djstripe.models import WebhookEndpoint

from accounts.models import User


@csrf_exempt
@require_POST
def webhook_signature_only(request: HttpRequest, endpoint_uuid: uuid.UUID) -> HttpResponse:
    """Verify a Stripe-signed delivery with the real endpoint's secret, and nothing more.

    The secret is read the way dj-stripe reads it (the endpoint row, by uuid), so the
    only difference from dj-stripe's endpoint is everything that happens after checking.
    """
    endpoint = get_object_or_404(WebhookEndpoint, djstripe_uuid=endpoint_uuid)
    try:
        stripe.WebhookSignature.verify_header(
            request.body.decode("utf-8"),
            request.headers.get("Stripe-Signature", ""),
            endpoint.secret,
            tolerance=settings.DJSTRIPE_WEBHOOK_TOLERANCE,
        )
    except (stripe.SignatureVerificationError, UnicodeDecodeError):
        return HttpResponseBadRequest()
    return HttpResponse("ok")


@login_required
@require_safe
def constant_json(request: HttpRequest) -> JsonResponse:
    """What /feature/<name>/ costs without the plan check: a session, a user, JSON."""
    return JsonResponse({"feature": "constant", "allowed": True})


class BareUserAdmin(admin.ModelAdmin[User]):
    """The plainest change list of the same users: the columns, filters and search that
    need nothing beyond the user table (no billing status, customer or last change)."""

    list_display = ("email", "plan", "date_joined")
    list_filter = ("plan", "is_staff", "sms_opt_in")
    search_fields = ("email",)
    ordering = ("-date_joined",)


bare_admin_site = admin.AdminSite(name="bench_admin")
bare_admin_site.register(User, BareUserAdmin)
