from __future__ import annotations

from django.urls import URLPattern, path
from djstripe import urls as djstripe_urls

from billing import views

app_name = "billing"

urlpatterns = [
    path("pricing/", views.pricing, name="pricing"),
    path("billing/checkout/", views.checkout, name="checkout"),
    path("billing/switch/", views.switch, name="switch"),
    path("billing/switch/pending/", views.switch_waiting, name="switch_pending"),
    path("billing/success/", views.success, name="success"),
    path("billing/portal/", views.portal, name="portal"),
    path("billing/", views.account, name="account"),
    path("billing/downgrade/", views.downgrade, name="downgrade"),
    path("billing/downgrade/cancel/", views.downgrade_undo, name="downgrade_cancel"),
    path("billing/cancel/", views.cancel, name="cancel"),
    path("billing/resume/", views.resume, name="resume"),
    path("feature/<str:name>/", views.feature, name="feature"),
]

# dj-stripe's webhook endpoint (/stripe/webhook/<uuid>/), behind a guard; mounted by
# smartflow/urls.py under dj-stripe's own namespace, so its URL names stay as they are.
djstripe_urlpatterns = [
    URLPattern(p.pattern, views.stripe_webhook_guard(p.callback), p.default_args, p.name)
    for p in djstripe_urls.urlpatterns
]
