from __future__ import annotations

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class BackofficeConfig(AppConfig):
    name = "backoffice"
    verbose_name = "Back-office"


class SmartFlowAdminConfig(admin_apps.AdminConfig):
    """Django's admin with SmartFlow's site (the at-a-glance panel on the index).

    Named in INSTALLED_APPS in place of "django.contrib.admin".
    """

    # Not the config of the "backoffice" entry in INSTALLED_APPS.
    default = False
    default_site = "backoffice.site.SmartFlowAdminSite"
