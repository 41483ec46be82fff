"""/bench/... : mounted by smartflow/urls.py only when settings.BENCH_VIEWS is on."""

from __future__ import annotations

from django.urls import path

from devtools.bench import views

urlpatterns = [
    path(
        "webhook/<uuid:endpoint_uuid>/",
        views.webhook_signature_only,
        name="bench_webhook_signature_only",
    ),
    path("constant/", views.constant_json, name="bench_constant_json"),
    path("admin/", views.bare_admin_site.urls),
]
