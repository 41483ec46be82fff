from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse

from accounts.http import AuthenticatedHttpRequest, is_authenticated
from billing.plans import FEATURE_LABELS, FEATURES, PLAN_INFO, Plan


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _wants_html(request: HttpRequest) -> bool:
    # A browser asks for text/html; API clients (application/json, or no Accept at all)
    # keep the JSON answer they always had.
    return "text/html" in request.headers.get("Accept", "") and not _wants_json(request)


def payment_required_response(request: AuthenticatedHttpRequest, feature: str) -> HttpResponse:
    """402: a short page for a person (the feature, the plan that has it, where to
    upgrade), the JSON body for programs."""
    if _wants_html(request):
        required = FEATURES[feature]
        context = {
            "feature_label": FEATURE_LABELS.get(feature, feature),
            "required_plan": Plan(required).label,
            "required_info": PLAN_INFO.get(required),
            "current_plan": Plan(request.user.plan).label,
        }
        return render(request, "billing/payment_required.html", context, status=402)
    return JsonResponse(
        {
            "error": "payment_required",
            "feature": feature,
            "plan": request.user.plan,
            "required_plan": FEATURES[feature],
            "upgrade_url": reverse("billing:pricing"),
        },
        status=402,
    )


def plan_required(
    feature: str,
) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Let the view run only for users whose plan has `feature`: anonymous users log in
    (or get 401 when they asked for JSON), the rest get 402 with where to upgrade."""
    if feature not in FEATURES:
        raise ValueError(f"Unknown feature {feature!r}; add it to billing.plans.FEATURES.")

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not is_authenticated(request):
                if _wants_json(request):
                    return JsonResponse({"error": "authentication_required"}, status=401)
                return redirect_to_login(request.get_full_path())
            if not request.user.has_feature(feature):
                return payment_required_response(request, feature)
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def email_verified_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Let a payment view run only for a confirmed address (User.email_verified): Stripe's
    receipts, the plan and account recovery all go to it. Others get 403 with a page
    saying so and a button that sends the confirmation email again. Put it under
    @login_required."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if is_authenticated(request) and not request.user.email_verified:
            if _wants_json(request):
                return JsonResponse({"error": "email_unverified"}, status=403)
            return render(request, "billing/email_unverified.html", status=403)
        return view(request, *args, **kwargs)

    return wrapped
