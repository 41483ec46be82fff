from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from billing.urls import djstripe_urlpatterns
from smartflow.health import healthz, healthz_ready

# A 403 under the admin is an admin page (backoffice/views.py).
handler403 = "backoffice.views.permission_denied"

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("healthz/ready", healthz_ready, name="healthz_ready"),
    path(f"{settings.ADMIN_URL}/", admin.site.urls),
    # dj-stripe's webhook endpoint: /stripe/webhook/<uuid>/
    path("stripe/", include((djstripe_urlpatterns, "djstripe"), namespace="djstripe")),
    path("onboarding/", include("onboarding.urls")),
    # django-allauth's pages (email addresses, verification, two-factor login).
    path("account/", include("allauth.urls")),
    path("", include("privacy.urls")),
    # Its account pages at the paths customers know, too: /signup/, /login/, /logout/,
    # /password/reset/, /password/change/, /email/, /confirm-email/<key>/. After the line
    # above, so that links and redirects name these (Django reverses to the last match).
    path("", include("allauth.account.urls")),
    path("", include("billing.urls")),
    path("", include("accounts.urls")),
]

# The dev tools (devtools/README.md), each mounted only when its setting is on: with both
# off, as in production, nothing under devtools/ is imported.
if settings.STRIPE_SANDBOX:
    urlpatterns.insert(0, path("sandbox/", include("devtools.stripe_sandbox.urls")))

if settings.BENCH_VIEWS:
    # Ceiling views for `make bench` only (see devtools/bench/README.md).
    urlpatterns.insert(0, path("bench/", include("devtools.bench.urls")))
