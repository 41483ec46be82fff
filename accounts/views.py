from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.forms import PhoneCodeForm, ProfileForm
from accounts.http import AuthenticatedHttpRequest
from accounts.models import User
from accounts.phone import (
    PhoneCodeRefused,
    phone_code_state,
    phone_confirm,
    phone_confirmation_start,
    sms_available,
)
from billing.plans import FEATURE_LABELS, FEATURES, PLAN_INFO


def dashboard(request: HttpRequest) -> HttpResponse:
    """`/`: a visitor gets the landing page, a signed-in customer their dashboard."""
    if not request.user.is_authenticated:
        return render(request, "accounts/landing.html")
    features = [
        {
            "name": name,
            "label": FEATURE_LABELS[name],
            "required": required,
            "allowed": request.user.has_feature(name),
        }
        for name, required in FEATURES.items()
    ]
    context = {"plan_info": PLAN_INFO[request.user.plan], "features": features}
    return render(request, "accounts/dashboard.html", context)


@login_required
def profile(request: AuthenticatedHttpRequest) -> HttpResponse:
    # Read before the form: an invalid POST leaves its values on request.user.
    phone = _phone_context(request.user)
    form = ProfileForm(request.POST or None, instance=request.user)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        messages.success(request, "Your profile has been saved.")
        if user.phone_awaits_confirmation and not phone_code_state(user).sent:
            phone_code_send_told(request, user)
        return redirect("accounts:profile")
    return render(request, "accounts/profile.html", {"form": form, **phone})


@login_required
@require_POST
def phone_code_send(request: AuthenticatedHttpRequest) -> HttpResponse:
    """`/profile/phone/code/`: text a new code to the number on the account."""
    phone_code_send_told(request, request.user)
    return redirect("accounts:profile")


@login_required
@require_POST
def phone_code_confirm(request: AuthenticatedHttpRequest) -> HttpResponse:
    """`/profile/phone/confirm/`: the code we texted, which confirms the number."""
    code_form = PhoneCodeForm(request.POST)
    if code_form.is_valid():
        try:
            phone_confirm(user=request.user, code=code_form.cleaned_data["code"])
        except PhoneCodeRefused as refused:
            code_form.add_error("code", refused.message)
        else:
            messages.success(request, "Thank you: your mobile number is confirmed.")
            return redirect("accounts:profile")
    context = {"form": ProfileForm(instance=request.user), **_phone_context(request.user)}
    context["code_form"] = code_form
    return render(request, "accounts/profile.html", context, status=400)


def phone_code_send_told(request: HttpRequest, user: User) -> None:
    """Ask for a code for `user`'s number and tell the customer what happened."""
    try:
        phone_confirmation_start(user=user)
    except PhoneCodeRefused as refused:
        messages.warning(request, refused.message)
    else:
        messages.info(
            request,
            f"We are texting a code to {user.phone}. Enter it on your profile, under "
            "“Confirm your number”, to start getting SMS.",
        )


def _phone_context(user: User) -> dict[str, Any]:
    return {
        "sms_available": sms_available(),
        "phone_awaits_confirmation": user.phone_awaits_confirmation,
        "phone_code": phone_code_state(user),
        "code_form": PhoneCodeForm(),
    }
