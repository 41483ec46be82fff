"""A billing alert raised: recorded once per kind and Stripe object (a BillingAlert row,
shown on the admin index), and announced once, when first recorded, to the people who
must act: logged at ERROR on `billing.alerts`, which LOGGING sends to ADMINS by email
(Django's mail_admins, through the configured email backend) and which Sentry records
when SENTRY_DSN is set. A repeat (a retried or redelivered event) only updates the row.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction

from billing.models import BillingAlert

logger = logging.getLogger(__name__)


def alert_record(
    *, kind: str, stripe_id: str, detail: str, stripe_event_id: str = ""
) -> tuple[BillingAlert, bool]:
    """The alert of `kind` for `stripe_id`, made if new (then announced once the
    transaction commits, so that a rolled-back attempt, retried, is announced once);
    whether it was made. The caller updates an existing one as its rule says."""
    alert, created = BillingAlert.objects.get_or_create(
        kind=kind,
        stripe_id=stripe_id,
        defaults={"detail": detail, "stripe_event_id": stripe_event_id},
    )
    if created:
        transaction.on_commit(lambda: _announce(alert))
    return alert, created


def _announce(alert: BillingAlert) -> None:
    # One line: it is also the email's subject.
    logger.error(
        "Billing alert: %s (%s): %s Admin: %s/%s/billing/billingalert/%s/change/",
        alert.get_kind_display(),
        alert.stripe_id,
        alert.detail,
        settings.SITE_URL,
        settings.ADMIN_URL,
        alert.pk,
    )
