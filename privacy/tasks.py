"""Background work of privacy (django-tasks, run by `manage.py worker`)."""

from __future__ import annotations

from django_tasks import task

from privacy.models import Erasure
from privacy.redaction import stripe_rows_redact


@task()
def erasure_webhooks_sweep(erasure_id: int) -> int:
    """Redact what arrived about an erased account's Stripe customers after the
    erasure: events and webhook bodies (Stripe sends `customer.deleted` with the old
    details, and retries a delivery for up to 3 days), and invoices synced again from
    Stripe, which keeps the customer's details on them. Enqueued twice by
    privacy.erasure.account_erase. Safe to run any number of times: a redacted row is
    redacted again to itself. Returns the number of rows redacted."""
    erasure = Erasure.objects.filter(pk=erasure_id, state=Erasure.State.DONE).first()
    if erasure is None or not erasure.stripe_customer_ids:
        return 0
    return stripe_rows_redact(list(erasure.stripe_customer_ids), [], [])
