from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse
from djstripe.models import WebhookEndpoint

LOCAL_ENDPOINT_ID = "we_local_smartflow"


class Command(BaseCommand):
    help = (
        "Create or update the local dj-stripe WebhookEndpoint with a signing secret "
        "(from `stripe listen` or the Stripe dashboard) and print the URL Stripe must "
        "deliver to. Makes no Stripe call; safe to run twice."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--secret", required=True, help="The endpoint's whsec_... secret.")
        parser.add_argument("--url", default="", help="Public base URL (default: SITE_URL).")

    def handle(self, *args: Any, secret: str, url: str, **options: Any) -> None:
        if not secret.startswith("whsec_"):
            raise CommandError("The secret must start with whsec_ (Stripe's signing secret).")
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
