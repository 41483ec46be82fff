from __future__ import annotations

from django.urls import path
from django.views.generic import RedirectView

from accounts import views

app_name = "accounts"

# Sign-up, login, logout, password reset and change, email confirmation and change are
# django-allauth's, at the same paths (/signup/, /login/, ...; smartflow/urls.py).
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("profile/", views.profile, name="profile"),
    path("profile/phone/code/", views.phone_code_send, name="phone_code_send"),
    path("profile/phone/confirm/", views.phone_code_confirm, name="phone_code_confirm"),
    # Reset links sent before allauth served resets: ask for a new link (the old
    # tokens were Django's and allauth's differ). Where "sent" was, allauth says "done".
    path(
        "password/reset/<uidb64>/<token>/",
        RedirectView.as_view(pattern_name="account_reset_password"),
    ),
]
