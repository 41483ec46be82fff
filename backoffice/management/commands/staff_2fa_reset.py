from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from accounts.models import User, normalize_email
from backoffice.staff_2fa import staff_2fa_reset


class Command(BaseCommand):
    help = (
        "Reset one staff member's two-factor login, for a lost device: removes their "
        "authenticator app and recovery codes, so that their next sign-in (by password) "
        "goes straight to setting up a new app. Safe to run twice. See docs/staff-2fa.md."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("email", help="The staff member's email address.")

    def handle(self, *args: Any, email: str, **options: Any) -> None:
        user = User.objects.filter(email=normalize_email(email)).first()
        if user is None:
            raise CommandError(f"No account has the email address {email!r}.")
        removed = staff_2fa_reset(user=user)
        if removed:
            self.stdout.write(
                f"Two-factor login reset for {user.email}: {removed} authenticator(s) removed; "
                "they set up a new app at their next sign-in."
            )
        else:
            self.stdout.write(f"{user.email} has no two-factor authenticator: nothing to do.")
