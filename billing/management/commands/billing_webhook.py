from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from djstripe.models import WebhookEndpoint

from billing.models import WebhookSecretPrevious

LOCAL_ENDPOINT_ID = "we_local_smartflow"


class Command(BaseCommand):
    help = (
        "--secret whsec_...: create or update the local dj-stripe WebhookEndpoint with a "
        "signing secret (from `stripe listen` or the Stripe dashboard) and print the URL "
        "Stripe must deliver to. --rotate-secret whsec_NEW [--keep-previous-hours 24]: "
        "after rolling the endpoint's secret in the Stripe dashboard, make the new one the "
        "endpoint's and keep accepting the old one for that many hours (Stripe signs with "
        "both meanwhile). Makes no Stripe call; safe to run twice."
    )

    def add_arguments(self, parser: Any) -> None:
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--secret", help="The endpoint's whsec_... secret.")
        which.add_argument(
            "--rotate-secret", metavar="WHSEC_NEW", help="The endpoint's new whsec_... secret."
        )
        parser.add_argument("--url", default="", help="Public base URL (default: SITE_URL).")
        parser.add_argument(
            "--keep-previous-hours",
            type=float,
            default=24,
            help="How long the previous secret still verifies after --rotate-secret "
            "(default 24, as long as Stripe keeps signing with it at most; 0: not at all).",
        )
        parser.add_argument(
            "--endpoint",
            default="",
            help="Which endpoint's secret to rotate (its we_... id); needed only when "
            "several are stored.",
        )

    def handle(
        self,
        *args: Any,
        secret: str | None,
        rotate_secret: str | None,
        url: str,
        keep_previous_hours: float,
        endpoint: str,
        **options: Any,
    ) -> None:
        new = secret or rotate_secret or ""
        if not new.startswith("whsec_"):
            raise CommandError("The secret must start with whsec_ (Stripe's signing secret).")
        if rotate_secret:
            self._rotate(rotate_secret, endpoint_id=endpoint, hours=keep_previous_hours)
        else:
            self._register(new, url=url)

    def _register(self, secret: str, *, url: str) -> None:
        base = (url or settings.SITE_URL).rstrip("/")
        endpoint, created = WebhookEndpoint.objects.get_or_create(
            id=LOCAL_ENDPOINT_ID,
            defaults={
                "livemode": settings.STRIPE_LIVE_MODE,
                "secret": secret,
                "url": base,
                "enabled_events": ["*"],
                "status": "enabled",
                "api_version": settings.STRIPE_API_VERSION,
            },
        )
        path = reverse("djstripe:djstripe_webhook_by_uuid", kwargs={"uuid": endpoint.djstripe_uuid})
        endpoint.secret = secret
        endpoint.url = base + path
        endpoint.status = "enabled"
        endpoint.save()
        self.stdout.write(f"{'Created' if created else 'Updated'} webhook endpoint: {endpoint.url}")

    def _rotate(self, secret: str, *, endpoint_id: str, hours: float) -> None:
        if hours < 0:
            raise CommandError("--keep-previous-hours cannot be negative.")
        now = timezone.now()
        with transaction.atomic():
            endpoint = _endpoint_for_update(endpoint_id)
            # Expired previous secrets verify nothing any more: drop them.
            WebhookSecretPrevious.objects.filter(endpoint=endpoint, expires_at__lte=now).delete()
            if endpoint.secret == secret:
                self.stdout.write(f"{endpoint.id}: already the current secret; nothing changed.")
                return
            # A secret that comes back (rotated away and back) is current, not previous.
            WebhookSecretPrevious.objects.filter(endpoint=endpoint, secret=secret).delete()
            until = now + timedelta(hours=hours)
            if endpoint.secret and hours:
                WebhookSecretPrevious.objects.create(
                    endpoint=endpoint, secret=endpoint.secret, expires_at=until
                )
            endpoint.secret = secret
            endpoint.save(update_fields=["secret"])
        kept = (
            f"the previous one verifies until {until:%Y-%m-%d %H:%M} UTC"
            if hours
            else ("the previous one no longer verifies")
        )
        self.stdout.write(f"{endpoint.id}: secret rotated; {kept}.")


def _endpoint_for_update(endpoint_id: str) -> WebhookEndpoint:
    endpoints = WebhookEndpoint.objects.select_for_update()
    if endpoint_id:
        found = endpoints.filter(id=endpoint_id).first()
        if found is None:
            raise CommandError(f"No webhook endpoint {endpoint_id}.")
        return found
    found_all = list(endpoints.order_by("id")[:2])
    if not found_all:
        raise CommandError("No webhook endpoint yet: run billing_webhook --secret whsec_... first.")
    if len(found_all) > 1:
        ids = ", ".join(WebhookEndpoint.objects.order_by("id").values_list("id", flat=True))
        raise CommandError(f"Several webhook endpoints ({ids}): pass --endpoint.")
    return found_all[0]
