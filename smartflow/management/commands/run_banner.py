"""`manage.py run_banner --wait HOST:PORT`: once the server answers, say where to go.

`make run` starts it beside runserver, so that the last thing a newcomer sees, after the
migrations and the server's own start-up lines, is the URL and what to try there.
"""

from __future__ import annotations

import socket
import time
from datetime import timedelta
from typing import Any
from urllib.error import URLError
from urllib.request import urlopen

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

CONSOLE_EMAIL = "django.core.mail.backends.console.EmailBackend"


def banner_lines() -> list[str]:
    """The banner's text, from the settings in force (sandbox or not, console email or not)."""
    url = settings.SITE_URL + "/"
    lines = [f"SmartFlow is running: open {url}", ""]
    if settings.STRIPE_SANDBOX:
        from devtools.stripe_sandbox.objects import CARD_NOTES, card_display

        lines += [
            "Payments: the offline Stripe sandbox. Nothing leaves this machine and no real",
            "money moves. Test cards for its checkout page:",
            *(f"  {card_display(number):<21} {note}" for number, note in CARD_NOTES),
        ]
        from devtools.stripe_sandbox.bank_debits import ACCOUNT_NOTES

        lines += [
            "Bacs Direct Debit on the same page, sort code 10-88-00 (answered 3 days later",
            "on the sandbox clock: .venv/bin/python manage.py stripe_sandbox advance --days 3):",
            *(f"  {number:<21} {note.split(' 3 days')[0]}" for number, note in ACCOUNT_NOTES),
        ]
        if settings.STRIPE_SANDBOX_DELIVERY == "stripe":
            lines += [
                "Webhooks arrive as Stripe sends them: late, out of order, some twice",
                f"(seed {settings.STRIPE_SANDBOX_SEED}; STRIPE_SANDBOX_DELIVERY=ordered to debug).",
            ]
    elif settings.BILLING_ENABLED:
        mode = "LIVE" if settings.STRIPE_LIVE_MODE else "test mode"
        lines.append(f"Payments: real Stripe ({mode}), with the key from the environment.")
    else:
        lines.append("Payments: off (no Stripe key and the sandbox is off).")
    lines += [
        "",
        f"Staff login, then sign in at {settings.SITE_URL}/{settings.ADMIN_URL}/ :",
        "  .venv/bin/python manage.py createsuperuser",
        "or without questions:",
        "  DJANGO_SUPERUSER_EMAIL=you@example.com DJANGO_SUPERUSER_PASSWORD='pick-a-long-one' "
        ".venv/bin/python manage.py createsuperuser --noinput",
    ]
    if settings.EMAIL_BACKEND == CONSOLE_EMAIL:
        lines += ["", "Emails are printed in this terminal (console email backend)."]
    if settings.ENV_FILE.is_file():
        lines += [
            "",
            f"Settings: {settings.ENV_FILE}",
            "Every manage.py command in this folder reads it, so commands typed in another",
            "terminal see what this server sees. Delete it to start over (make run writes",
            "a new one).",
        ]
    lines += ["", "Ctrl-C stops the server and the worker."]
    return lines


def framed(lines: list[str]) -> str:
    # Rules above and below only, no side bars: the commands stay copy-pasteable.
    rule = "=" * 78
    return "\n".join([rule, *(f"  {line}" if line else "" for line in lines), rule])


class Command(BaseCommand):
    help = "Print where to go and what to try, once the web server answers."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--wait",
            metavar="HOST:PORT",
            help="wait until a web server answers here before printing",
        )
        parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["wait"]:
            self._wait(options["wait"], options["timeout"])
            self._quiet()
        self.stdout.write("\n" + framed(banner_lines()) + "\n")

    def _quiet(self, *, seconds: float = 60.0) -> None:
        # The catalogue make run syncs leaves a dozen sandbox webhooks for the worker,
        # whose log lines would bury the banner: print it once they are delivered.
        if not settings.STRIPE_SANDBOX:
            return
        from devtools.stripe_sandbox.models import Delivery

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            soon = timezone.now() + timedelta(seconds=10)
            if not Delivery.objects.filter(
                state=Delivery.State.PENDING, next_attempt_at__lte=soon
            ).exists():
                return
            time.sleep(0.5)

    def _wait(self, address: str, timeout: float) -> None:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise CommandError(f"--wait takes HOST:PORT, e.g. 127.0.0.1:8000 (got {address!r}).")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection((host, int(port)), timeout=1).close()
                # The port is open; one request proves Django answers (any status will do).
                urlopen(f"http://{address}/", timeout=10)
                return
            except URLError as exc:
                if getattr(exc, "code", None):
                    return  # an HTTP error status is an answer
            except OSError:
                pass
            time.sleep(0.5)
        raise CommandError(f"No web server answered on {address} within {timeout:.0f} s.")
