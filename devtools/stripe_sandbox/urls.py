from __future__ import annotations

from django.urls import path

from devtools.stripe_sandbox import views

app_name = "sandbox"

urlpatterns = [
    path("checkout/<str:session_id>/", views.checkout, name="checkout"),
    path(
        "checkout/<str:session_id>/bank-debit/",
        views.checkout_bank_debit,
        name="checkout_bank_debit",
    ),
    path("portal/<str:session_id>/", views.portal, name="portal"),
    path("invoice/<str:invoice_id>/", views.invoice, name="invoice"),
    path("invoice/<str:invoice_id>/pdf/", views.invoice_pdf, name="invoice_pdf"),
]
