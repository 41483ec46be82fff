from __future__ import annotations

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps
from django.db.models.signals import post_migrate


class BackofficeConfig(AppConfig):
    name = "backoffice"
    verbose_name = "Back-office"

    def ready(self) -> None:
        from allauth.mfa.signals import authenticator_added

        from backoffice import checks  # noqa: F401 (checks registers itself)
        from backoffice.roles import roles_sync
        from backoffice.staff_2fa import enrolment_counts_as_second_factor

        # After every migrate (and test-database flush) the groups match backoffice.roles.
        post_migrate.connect(roles_sync, sender=self, dispatch_uid="backoffice_roles_sync")
        authenticator_added.connect(
            enrolment_counts_as_second_factor, dispatch_uid="backoffice_staff_2fa_enrolment"
        )


class SmartFlowAdminConfig(admin_apps.AdminConfig):
    """Django's admin with SmartFlow's site (the at-a-glance panel on the index).

    Named in INSTALLED_APPS in place of "django.contrib.admin".
    """

    # Not the config of the "backoffice" entry in INSTALLED_APPS.
    default = False
    default_site = "backoffice.site.SmartFlowAdminSite"
