""" "Delete my account": erase one customer's personal data, at Stripe and here (UK GDPR
article 17), keeping only what the law requires, without the person's details.

In order, each step safe to repeat:

1. At Stripe, for each of the user's Stripe customers: cancel every subscription that
   has not ended, at once and with no new charge, then delete the customer (Stripe keeps
   a deleted customer's invoices and payments). If Stripe does not answer, stop there:
   nothing of ours is erased, the Erasure row says what was done and asking again
   resumes (a cancelled subscription stays cancelled: it is what was asked).
2. Here, in one transaction: record the plan's end in the ledger, delete what is not
   kept, redact what is kept, anonymise the user row (kept, so the ledger's and the
   payments' links to it hold), end the sessions.
3. Later, twice (privacy.tasks): redact the webhook events Stripe delivers after the
   deletion (its `customer.deleted` carries the old details; it retries for 3 days).

docs/personal-data.md says what is kept and why.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from django.apps import apps
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.contrib.sessions.models import Session
from django.db import models, transaction
from django.utils import timezone
from djstripe.models import Customer, Subscription
from djstripe.settings import djstripe_settings

from accounts.models import ERASED_EMAIL_DOMAIN, User
from billing import stripe_api
from billing.entitlements import plan_refresh
from billing.models import PlanChange, PlanOverride
from privacy.models import Erasure
from privacy.redaction import (
    customer_models,
    everywhere_scrub,
    not_ours,
    rows_scrub,
    stripe_rows_redact,
)
from privacy.tasks import erasure_webhooks_sweep

logger = logging.getLogger(__name__)

# Rows that point at the user and are kept, with personal details removed: the plan
# ledger and the payment records (HMRC: 6 years), the Stripe customer row that links
# the payments, the admin's history of staff actions, and this erasure's own record.
# Every other row that points at the user (messages, previews of a next charge, and
# whatever an app adds later, e.g. allauth's email addresses) is deleted.
KEPT_MODELS = frozenset(
    {
        "billing.PlanChange",
        "billing.PlanOverride",
        "billing.OneOffPurchase",
        "billing.CheckoutOpened",
        "djstripe.Customer",
        "admin.LogEntry",
        "privacy.Erasure",
    }
)
# After the deletion at Stripe, when its late webhooks are redacted (privacy.tasks).
SWEEP_AFTER = (timedelta(hours=1), timedelta(days=4))


class ErasureIncomplete(Exception):
    """Stripe did not answer: nothing of ours was erased (see the Erasure row)."""

    def __init__(self, erasure: Erasure, error: Exception) -> None:
        super().__init__(str(error))
        self.erasure = erasure


def erased_email(user: User) -> str:
    return f"erased-{user.pk}@{ERASED_EMAIL_DOMAIN}"


def account_erase(*, user: User, actor: User | None = None) -> Erasure:
    """Erase `user`'s personal data; `actor` is the member of staff who runs it (None:
    the customer asked). Returns the Erasure row; raises ErasureIncomplete when Stripe
    did not answer. Safe to run again: a finished erasure is returned as it is, an
    unfinished one resumes."""
    erasure, _ = Erasure.objects.get_or_create(
        user=user, defaults={"user_number": user.pk, "requested_by": actor}
    )
    if erasure.state == Erasure.State.DONE:
        return erasure
    customer_ids = sorted(
        set(erasure.stripe_customer_ids)
        | set(Customer.objects.filter(subscriber=user).values_list("id", flat=True))
        | ({user.stripe_customer_id} if user.stripe_customer_id else set())
    )
    erasure.stripe_customer_ids = customer_ids
    erasure.attempts += 1
    try:
        _stripe_erase(erasure, customer_ids)
    except stripe_api.StripeError as exc:
        logger.warning("Erasure of user %s stopped: Stripe: %s", user.pk, exc)
        erasure.state = Erasure.State.STRIPE_FAILED
        erasure.last_error = f"Stripe: {exc}"[:1000]
        erasure.save()
        raise ErasureIncomplete(erasure, exc) from exc
    with transaction.atomic():
        _local_erase(erasure, user=user, actor=actor, customer_ids=customer_ids)
        erasure.state = Erasure.State.DONE
        erasure.finished_at = timezone.now()
        erasure.last_error = ""
        erasure.save()
        transaction.on_commit(lambda: _sweeps_enqueue(erasure.pk))
    logger.info("Erased user %s (Stripe customers %s)", user.pk, customer_ids or "none")
    return erasure


def _sweeps_enqueue(erasure_id: int) -> None:
    for delay in SWEEP_AFTER:
        erasure_webhooks_sweep.using(run_after=timezone.now() + delay).enqueue(erasure_id)


def _step(erasure: Erasure, text: str) -> None:
    erasure.steps = [*erasure.steps, f"{timezone.now():%Y-%m-%d %H:%M:%S} {text}"]
    erasure.save(update_fields=["steps"])


def _stripe_erase(erasure: Erasure, customer_ids: list[str]) -> None:
    for customer_id in customer_ids:
        for sub in stripe_api.customer_subscriptions_cancel_now(customer_id):
            # Synced now, so that the ledger records the plan's end in step 2.
            Subscription.sync_from_stripe_data(sub, api_key=djstripe_settings.STRIPE_SECRET_KEY)
            _step(erasure, f"Stripe: cancelled subscription {sub['id']} at once, no charge")
        deleted = stripe_api.customer_delete(customer_id)
        _step(
            erasure,
            f"Stripe: deleted customer {customer_id}"
            if deleted
            else f"Stripe: customer {customer_id} was deleted already",
        )


def _local_erase(
    erasure: Erasure, *, user: User, actor: User | None, customer_ids: list[str]
) -> None:
    who = "by staff" if actor else "at the customer's request"
    plan_refresh(
        user=user,
        source=PlanChange.Source.SUBSCRIPTION,
        actor=actor,
        reason=f"Account erased {who}",
        notify=False,
    )
    identifiers = _identifiers(user, customer_ids)
    searchable = [i for i in (user.email, str(user.phone) if user.phone else "") if i]
    deleted = _owned_rows_delete(user)
    _step(erasure, f"Deleted {deleted}" if deleted else "Nothing to delete")
    sessions = _sessions_delete(user)
    attempts = _login_records_delete(user)
    _user_anonymise(user)
    _step(
        erasure,
        f"Anonymised the user row as {user.email}; ended {sessions} sessions; "
        f"deleted {attempts} login records",
    )
    redacted = stripe_rows_redact(customer_ids, identifiers, searchable)
    for model in (PlanChange, PlanOverride):
        redacted += rows_scrub(model.objects.filter(user=user), identifiers)
    redacted += _admin_history_redact(user, identifiers)
    redacted += everywhere_scrub(searchable, identifiers)
    _step(erasure, f"Redacted personal details in {redacted} kept rows")


def _identifiers(user: User, customer_ids: list[str]) -> list[str]:
    """What identifies the person in our rows: email, phone, and the names and
    addresses' first lines Stripe holds for them (read before anything is redacted)."""
    found = {user.email, str(user.phone) if user.phone else ""}
    for data in Customer.objects.filter(id__in=customer_ids).values_list("stripe_data", flat=True):
        found |= {data.get("email") or "", data.get("name") or "", data.get("phone") or ""}
        for place in (data.get("address"), (data.get("shipping") or {}).get("address")):
            found.add((place or {}).get("line1") or "")
    for model in customer_models():
        for data in model._default_manager.filter(customer__id__in=customer_ids).values_list(
            "stripe_data", flat=True
        ):
            found |= set(_names_in(data))
    # Too short to be told apart from other words: a one-letter "name" would redact
    # every row that contains that letter.
    return sorted(i for i in found if len(i) >= 3)


def _names_in(data: Any) -> Iterable[str]:
    if isinstance(data, Mapping):
        for key in ("name", "customer_name", "email", "customer_email", "receipt_email"):
            if isinstance(data.get(key), str):
                yield data[key]
        for value in data.values():
            yield from _names_in(value)
    elif isinstance(data, list):
        for value in data:
            yield from _names_in(value)


def _owned_rows_delete(user: User) -> str:
    """Delete every row that points at the user, but for the kept models; say what."""
    counts = []
    for model in apps.get_models():
        if model._meta.label in KEPT_MODELS or not_ours(model):
            continue
        for field in model._meta.concrete_fields:
            if isinstance(field, models.ForeignKey) and field.related_model is User:
                count, _ = model._default_manager.filter(**{field.name: user}).delete()
                if count:
                    counts.append(f"{count} {model._meta.verbose_name_plural}")
    user.groups.clear()
    user.user_permissions.clear()
    return ", ".join(counts)


def _sessions_delete(user: User) -> int:
    # Sessions do not index their user: read each (an erasure is rare).
    ended = [
        s.pk
        for s in Session.objects.iterator()
        if str(s.get_decoded().get("_auth_user_id")) == str(user.pk)
    ]
    Session.objects.filter(pk__in=ended).delete()
    return len(ended)


def _login_records_delete(user: User) -> int:
    """django-axes' login records of the address (attempts, logins, failures)."""
    if not apps.is_installed("axes"):
        return 0
    total = 0
    for name in ("AccessAttempt", "AccessLog", "AccessFailureLog"):
        model = apps.get_model("axes", name)
        count, _ = model._default_manager.filter(username__iexact=user.email).delete()
        total += count
    return total


def _user_anonymise(user: User) -> None:
    user.email = erased_email(user)
    user.phone = ""
    user.sms_opt_in = False
    user.is_active = False
    user.is_staff = False
    user.is_superuser = False
    user.last_login = None
    user.set_unusable_password()
    user.save()


def _admin_history_redact(user: User, identifiers: list[str]) -> int:
    """The admin's history names a user by their address (`object_repr`)."""
    entries = LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(User), object_id=str(user.pk)
    )
    entries.update(object_repr=str(user))
    return rows_scrub(entries, identifiers)
