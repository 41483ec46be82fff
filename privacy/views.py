from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.http import AuthenticatedHttpRequest
from privacy.erasure import ErasureIncomplete, account_erase
from privacy.export import personal_data_export
from privacy.forms import AccountDeleteForm


@login_required
@require_POST
def data_download(request: AuthenticatedHttpRequest) -> HttpResponse:
    """ "Download my data": the JSON file of privacy.export (POST: it is not a page to
    prefetch or leave in a history)."""
    data = personal_data_export(user=request.user)
    response = HttpResponse(
        json.dumps(data, indent=2, cls=DjangoJSONEncoder, ensure_ascii=False),
        content_type="application/json; charset=utf-8",
    )
    stamp = timezone.now().strftime("%Y%m%d")
    response["Content-Disposition"] = f'attachment; filename="smartflow-my-data-{stamp}.json"'
    response["Cache-Control"] = "no-store"
    return response


@login_required
def account_delete(request: AuthenticatedHttpRequest) -> HttpResponse:
    """ "Delete my account": confirmed with the password, then privacy.erasure."""
    form = AccountDeleteForm(request.POST or None, user=request.user)
    # A staff account is erased by a superuser in the admin (the page says so).
    if request.method == "POST" and not request.user.is_staff and form.is_valid():
        try:
            account_erase(user=request.user)
        except ErasureIncomplete as exc:
            return render(
                request,
                "privacy/account_delete.html",
                {"form": form, "incomplete": exc.erasure},
                status=503,
            )
        logout(request)
        messages.success(request, "Your account and your personal data have been deleted.")
        return redirect("accounts:dashboard")
    return render(request, "privacy/account_delete.html", {"form": form})
