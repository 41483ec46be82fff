"""The back-office's own error page: a 403 under the admin looks like the admin."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.views import defaults


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler403 (smartflow/urls.py): under the admin, the admin's header, breadcrumbs
    and a way back; elsewhere Django's own page."""
    if not request.path.startswith(f"/{settings.ADMIN_URL}/"):
        return defaults.permission_denied(request, exception or PermissionDenied())
    user = getattr(request, "user", None)
    if user is None or not user.is_active or not user.is_staff:
        return defaults.permission_denied(request, exception or PermissionDenied())
    reason = str(exception or "") or "Your role does not allow this page or action."
    context = {**admin.site.each_context(request), "title": "Not allowed", "reason": reason}
    return TemplateResponse(request, "admin/403.html", context, status=403).render()
