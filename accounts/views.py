from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme

from accounts.forms import ProfileForm, SignupForm
from billing.plans import FEATURE_LABELS, FEATURES, PLAN_INFO


def _safe_next(request: HttpRequest) -> str | None:
    target = request.POST.get("next") or request.GET.get("next")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return None


def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("accounts:dashboard")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid() and (user := form.account_create()):
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, "Welcome to SmartFlow! Your account is ready.")
        return redirect(_safe_next(request) or "accounts:dashboard")
    return render(request, "accounts/signup.html", {"form": form, "next": _safe_next(request)})


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
def profile(request: HttpRequest) -> HttpResponse:
    form = ProfileForm(request.POST or None, instance=request.user)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Your profile has been saved.")
        return redirect("accounts:profile")
    return render(request, "accounts/profile.html", {"form": form})
