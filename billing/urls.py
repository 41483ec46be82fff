from __future__ import annotations

from django.urls import path

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

# The webhook endpoint at dj-stripe's URL and name (/stripe/webhook/<uuid>/, named
# djstripe:djstripe_webhook_by_uuid, which dj-stripe's models and the sandbox reverse),
# served by our acknowledging view instead of dj-stripe's processing one (see
# billing/webhook_queue.py); mounted by smartflow/urls.py under dj-stripe's namespace.
djstripe_urlpatterns = [
    path("webhook/<uuid:uuid>/", views.stripe_webhook, name="djstripe_webhook_by_uuid"),
]
