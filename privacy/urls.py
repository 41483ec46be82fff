from __future__ import annotations

from django.urls import path

from privacy import views

app_name = "privacy"

urlpatterns = [
    path("profile/data/", views.data_download, name="data_download"),
    path("profile/delete/", views.account_delete, name="account_delete"),
]
