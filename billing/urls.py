from __future__ import annotations

from django.urls import path

from billing import views

app_name = "billing"

urlpatterns = [
    path("pricing/", views.pricing, name="pricing"),
    path("billing/checkout/", views.checkout, name="checkout"),
    path("billing/switch/", views.switch, name="switch"),
    path("billing/success/", views.success, name="success"),
    path("billing/portal/", views.portal, name="portal"),
    path("feature/<str:name>/", views.feature, name="feature"),
]
