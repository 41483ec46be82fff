from __future__ import annotations

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from allauth.account.signals import user_signed_up

        from accounts import receivers  # (also connects allauth's signals by decorator)

        user_signed_up.connect(
            receivers.user_signed_up_receive, dispatch_uid="accounts_phone_code_at_signup"
        )
