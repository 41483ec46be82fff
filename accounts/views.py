from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from accounts.forms import ProfileForm
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
def profile(request: HttpRequest) -> HttpResponse:
    form = ProfileForm(request.POST or None, instance=request.user)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Your profile has been saved.")
        return redirect("accounts:profile")
    return render(request, "accounts/profile.html", {"form": form})
