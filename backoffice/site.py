"""SmartFlow's admin site: Django's, plus an at-a-glance panel on the index page, and
change lists that survive filter values they cannot apply (`ChangeListFallback`, given
to every ModelAdmin registered on the site: ours, dj-stripe's and the other apps').

Each part of the panel is shown only to staff allowed to view what it summarises, and
costs one to three queries whatever the number of rows.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Mapping
from contextlib import nullcontext
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import (  # type: ignore[attr-defined]  # in Django 5.2, not in django-stubs 6.1.2
    IS_FACETS_VAR,
    IS_POPUP_VAR,
    ORDER_VAR,
    SEARCH_VAR,
    TO_FIELD_VAR,
    ChangeList,
)
from django.core.exceptions import ValidationError
from django.db import DataError, router, transaction
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils.http import urlencode

from backoffice.staff_2fa import missing_step, step_redirect
from billing.plans import Plan
from billing.subscriptions import DUNNING_STATUSES, LIVE_STATUSES
from onboarding.models import OnboardingMessage

RECENT = 10
STRIPE_DATA = "Stripe data"
# Months per billing interval, to bring every price to a monthly amount.
_PER_MONTH = {
    "day": Decimal(365) / 12,
    "week": Decimal(52) / 12,
    "month": Decimal(1),
    "year": Decimal(1) / 12,
}
_ZERO_DECIMAL = {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx",
                 "vnd", "vuv", "xaf", "xof", "xpf"}  # fmt: skip
_SYMBOLS = {"gbp": "£", "usd": "$", "eur": "€"}


# Query parameters that are not filters: kept when the filters are dropped.
_NOT_FILTERS = {SEARCH_VAR, ORDER_VAR, IS_POPUP_VAR, TO_FIELD_VAR, IS_FACETS_VAR}


if TYPE_CHECKING:
    # What the mixin is put in front of (AdminSite.register, below).
    _ModelAdmin = admin.ModelAdmin[Any]
else:
    _ModelAdmin = object


class ChangeListFallback(_ModelAdmin):
    """A change list whose filter values cannot be applied shows the list without its
    filters and a message saying so, never a 500.

    Django's date hierarchy builds its bounds in Python, so a year past 9999
    (`?created_at__year=999999999999`) raises OverflowError or ValueError outside its
    own error handling, and other malformed values (`?created_at__gte=soon`, a month
    13, a page that does not exist) are sent to `?e=1` without a word of why.
    """

    def get_changelist_instance(self, request: HttpRequest) -> ChangeList:
        using = router.db_for_read(self.model)
        # Inside a transaction, a savepoint keeps it usable after a value the database
        # refuses (DataError). Outside one, as requests run here, a refused query spoils
        # nothing, and on SQLite a BEGIN would take the write lock for a read.
        in_transaction = transaction.get_connection(using).in_atomic_block
        try:
            with transaction.atomic(using=using) if in_transaction else nullcontext():
                return super().get_changelist_instance(request)
        except (IncorrectLookupParameters, ValidationError, ValueError, OverflowError, DataError):
            dropped = sorted(k for k in request.GET if k not in _NOT_FILTERS)
            if not dropped:
                raise
        kept = request.GET.copy()
        for key in dropped:
            del kept[key]
        request.GET = kept  # type: ignore[assignment]  # a mutable copy, as Django's own ChangeList code assigns it
        messages.warning(
            request,
            f"These filters could not be applied (a value out of range or malformed), so "
            f"the list is shown without them: {', '.join(dropped)[:200]}.",
        )
        return super().get_changelist_instance(request)


def mrr_by_currency(
    subscriptions: list[dict[str, Any]],
    discounts: Mapping[str, dict[str, Any]] | None = None,
    *,
    now: int | None = None,
) -> dict[str, Decimal]:
    """Monthly recurring revenue of Stripe subscription objects, per currency, in major
    units, net of the discounts still in force (taxes ignored: VAT is not revenue).

    `discounts` maps a Discount id (what a subscription's `discounts` lists) to the
    Discount with its coupon (`source.coupon` as an object): a `forever` coupon, or a
    `repeating` one before its `end`, lowers what the subscription brings each month;
    a `once` coupon lowers only the first invoice, not the recurring revenue."""
    moment = now if now is not None else int(time.time())
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for sub in subscriptions:
        for item in (sub.get("items") or {}).get("data") or []:
            price = item.get("price")
            if not isinstance(price, dict) or not price.get("recurring"):
                continue
            recurring = price["recurring"]
            months = _PER_MONTH.get(recurring.get("interval"), Decimal(0)) / Decimal(
                recurring.get("interval_count") or 1
            )
            currency = (price.get("currency") or "").lower()
            minor = Decimal(price.get("unit_amount") or 0) * Decimal(item.get("quantity") or 1)
            minor -= _discount_off(sub, minor, currency, discounts or {}, moment)
            major = minor if currency in _ZERO_DECIMAL else minor / 100
            totals[currency] += major * months
    return dict(totals)


def subscription_ending(sub: dict[str, Any]) -> bool:
    """Set to cancel: at its period's end (`cancel_at_period_end`) or on a date
    (`cancel_at`); either way it does not renew."""
    return bool(sub.get("cancel_at_period_end") or sub.get("cancel_at"))


def _discount_off(
    sub: dict[str, Any],
    amount: Decimal,
    currency: str,
    discounts: Mapping[str, dict[str, Any]],
    moment: int,
) -> Decimal:
    """What the subscription's recurring discount takes off `amount` (per invoice)."""
    for entry in sub.get("discounts") or []:
        discount = entry if isinstance(entry, dict) else discounts.get(entry)
        coupon = ((discount or {}).get("source") or {}).get("coupon")
        if not isinstance(coupon, dict) or coupon.get("duration") == "once":
            continue
        if coupon.get("duration") == "repeating" and ((discount or {}).get("end") or 0) <= moment:
            continue
        if coupon.get("percent_off"):
            return amount * Decimal(str(coupon["percent_off"])) / 100
        if coupon.get("amount_off") and (coupon.get("currency") or "").lower() == currency:
            return min(amount, Decimal(coupon["amount_off"]))
    return Decimal(0)


def subscription_discounts(subscriptions: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The Discounts the subscriptions list, with their coupons, from synced rows only:
    dj-stripe keeps a subscription's `discounts` as ids, but expands them on invoices
    (each names its coupon by id), and keeps coupons from their webhooks."""
    from djstripe.models import Coupon, Invoice

    wanted = {d for s in subscriptions for d in s.get("discounts") or [] if isinstance(d, str)}
    if not wanted:
        return {}
    customers = {s.get("customer") for s in subscriptions if s.get("discounts")}
    found: dict[str, dict[str, Any]] = {}
    for data in Invoice.objects.filter(customer__id__in=customers).values_list(
        "stripe_data", flat=True
    ):
        for discount in data.get("discounts") or []:
            if isinstance(discount, dict) and discount.get("id") in wanted:
                found[discount["id"]] = dict(discount)
    coupon_ids = {
        (d.get("source") or {}).get("coupon")
        for d in found.values()
        if isinstance((d.get("source") or {}).get("coupon"), str)
    }
    coupons = dict(Coupon.objects.filter(id__in=coupon_ids).values_list("id", "stripe_data"))
    for discount in found.values():
        source = dict(discount.get("source") or {})
        if isinstance(source.get("coupon"), str) and source["coupon"] in coupons:
            source["coupon"] = coupons[source["coupon"]]
        discount["source"] = source
    return found


def money_format(amount: Decimal, currency: str) -> str:
    """An amount in major units in its currency: £49.00, 1,000 JPY (no hundredths)."""
    symbol = _SYMBOLS.get(currency)
    places = Decimal(1) if currency in _ZERO_DECIMAL else Decimal("0.01")
    value = f"{amount.quantize(places):,}"
    return f"{symbol}{value}" if symbol else f"{value} {currency.upper()}"


def _url(name: str, query: str = "") -> str | None:
    try:
        return reverse(name) + query
    except NoReverseMatch:
        return None


def _background_work() -> dict[str, Any]:
    """The task backlog, each running worker's heartbeat (smartflow/workers.py) and the
    last retention purge (smartflow/retention.py)."""
    from django.utils import timezone

    from smartflow.models import RetentionRun
    from smartflow.workers import STALE_SECONDS, queue_state

    state = queue_state()
    now = timezone.now()
    return {
        "retention": RetentionRun.objects.filter(finished_at__isnull=False)
        .order_by("-finished_at")
        .first(),
        "backlog": state.backlog,
        "running": state.running,
        "oldest_age": _age(state.oldest_age.total_seconds()) if state.oldest_age else None,
        "workers": [
            {
                "id": beat.worker_id,
                "where": f"{beat.hostname}:{beat.pid}",
                "age": _age((now - beat.last_seen_at).total_seconds()),
                "stale": (now - beat.last_seen_at).total_seconds() > STALE_SECONDS,
            }
            for beat in state.workers
        ],
    }


def _webhook_backlog() -> dict[str, Any]:
    """Stripe deliveries waiting for a worker, the oldest one's age, and those that
    failed or gave up (billing/webhook_queue.py): three queries."""
    from django.utils import timezone

    from billing.models import WebhookDelivery
    from billing.webhook_queue import backlog

    pending, oldest = backlog()
    stuck = WebhookDelivery.State.FAILED, WebhookDelivery.State.GAVE_UP
    failed = WebhookDelivery.objects.filter(state__in=stuck).count()
    changelist = "admin:billing_webhookdelivery_changelist"
    return {
        "pending": pending,
        "oldest_age": _age((timezone.now() - oldest).total_seconds()) if oldest else None,
        "pending_url": _url(changelist, "?state__exact=pending"),
        "failed": failed,
        "failed_url": _url(changelist, f"?state__in={','.join(stuck)}"),
    }


def _age(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


def panel_data(request: HttpRequest) -> dict[str, Any]:
    """What the index page shows at a glance, limited to what `request.user` may view."""
    from djstripe.models import Subscription

    from accounts.models import User
    from billing.models import BillingAlert, PlanChange, WebhookDelivery

    user = request.user
    panel: dict[str, Any] = {}
    if user.has_perm("accounts.view_user"):
        # Customers only: staff accounts are on Starter and would inflate it.
        customers = User.objects.filter(is_staff=False, is_superuser=False)
        counts = dict(customers.order_by().values_list("plan").annotate(n=Count("pk")))
        panel["plans"] = [
            {
                "label": label,
                "count": counts.get(value, 0),
                "url": _url(
                    "admin:accounts_user_changelist", f"?plan__exact={value}&is_staff__exact=0"
                ),
            }
            for value, label in Plan.choices
        ]
    if user.has_perm("djstripe.view_subscription"):
        data = Subscription.objects.filter(
            livemode=settings.STRIPE_LIVE_MODE, stripe_data__status__in=sorted(LIVE_STATUSES)
        ).values_list("stripe_data", flat=True)
        subscribed = list(data)
        discounts = subscription_discounts(subscribed)
        # A subscription set to cancel brings nothing after its period: it is not
        # recurring revenue, but staff see how much is going, as "ending".
        ending = [s for s in subscribed if subscription_ending(s)]
        staying = [s for s in subscribed if not subscription_ending(s)]
        mrr = mrr_by_currency(staying, discounts)
        panel["mrr"] = [money_format(v, c) for c, v in sorted(mrr.items())] or [
            money_format(Decimal(0), settings.BILLING_CURRENCY)
        ]
        panel["mrr_ending"] = [
            money_format(v, c) for c, v in sorted(mrr_by_currency(ending, discounts).items())
        ]
        panel["mrr_ending_count"] = len(ending)
    if user.has_perm("smartflow.view_workerheartbeat"):
        panel["work"] = _background_work()
    if user.has_perm("billing.view_webhookdelivery"):
        panel["webhooks"] = _webhook_backlog()
    if user.has_perm("billing.view_planchange"):
        panel["plan_changes"] = list(PlanChange.objects.select_related("user", "actor")[:RECENT])
    if user.has_perm("onboarding.view_onboardingmessage"):
        # Waiting for a retry: queued with a next attempt planned after a transient
        # failure (onboarding/outbox.py); many of them means a provider is struggling.
        retrying = Q(status=OnboardingMessage.Status.QUEUED, next_attempt_at__isnull=False)
        counts = OnboardingMessage.objects.aggregate(
            failed=Count("pk", filter=Q(status=OnboardingMessage.Status.FAILED)),
            retrying=Count("pk", filter=retrying),
        )
        panel["failed_messages"] = counts["failed"]
        panel["failed_messages_url"] = _url(
            "admin:onboarding_onboardingmessage_changelist", "?status__exact=failed"
        )
        panel["retrying_messages"] = counts["retrying"]
        panel["retrying_messages_url"] = _url(
            "admin:onboarding_onboardingmessage_changelist",
            "?status__exact=queued&next_attempt_at__isnull=False",
        )
    if user.has_perm("billing.view_webhookdelivery"):
        # Our deliveries that failed or gave up, not dj-stripe's unprocessed triggers:
        # every delivery waiting for a worker is an unprocessed trigger, and those are
        # the backlog under "Background work", not something to fix.
        stuck = WebhookDelivery.State.FAILED, WebhookDelivery.State.GAVE_UP
        failed = WebhookDelivery.objects.filter(state__in=stuck)
        panel["failed_webhooks"] = list(failed.order_by("-received_at", "-pk")[:RECENT])
        panel["failed_webhooks_count"] = failed.count()
        panel["failed_webhooks_url"] = _url(
            "admin:billing_webhookdelivery_changelist", f"?state__in={','.join(stuck)}"
        )
    if user.has_perm("djstripe.view_subscription") and user.has_perm("djstripe.view_invoice"):
        panel["dunning"], panel["dunning_count"] = dunning_rows()
    if user.has_perm("djstripe.view_dispute"):
        panel["disputes"], panel["disputes_count"] = open_disputes()
    if user.has_perm("billing.view_billingalert"):
        open_alerts = BillingAlert.objects.filter(resolved=False)
        panel["alerts"] = list(open_alerts[:RECENT])
        panel["alerts_count"] = open_alerts.count()
        panel["alerts_url"] = _url("admin:billing_billingalert_changelist", "?resolved__exact=0")
    return panel


def dunning_rows() -> tuple[list[dict[str, Any]], int]:
    """Customers whose renewal is failing or waiting for 3-D Secure (past_due with an open
    invoice), what they owe and when Stripe retries, most urgent first. Who is in dunning
    is billing.dunning's answer, the same one the customer's banner gives."""
    from djstripe.models import Subscription

    from accounts.models import User
    from billing.dunning import dunning_load
    from billing.money import money

    candidates = Subscription.objects.filter(
        livemode=settings.STRIPE_LIVE_MODE,
        stripe_data__status__in=sorted(DUNNING_STATUSES),
        customer__subscriber__isnull=False,
    ).values_list("customer__subscriber_id", flat=True)
    found = dunning_load(set(candidates))
    far = datetime.max.replace(tzinfo=UTC)
    ordered = sorted(found.values(), key=lambda d: d.next_attempt_at or far)
    emails = dict(
        User.objects.filter(pk__in=[d.user_id for d in ordered[:RECENT]]).values_list("pk", "email")
    )
    rows = [
        {
            "email": emails.get(d.user_id, "?"),
            "url": _url_args("admin:accounts_user_change", d.user_id),
            "amount": money(d.amount, d.currency),
            "what": "needs authentication" if d.needs_authentication else "payment failed",
            "attempts": d.attempt_count,
            "next_attempt_at": d.next_attempt_at,
            "grace_ends_at": d.grace_ends_at,
        }
        for d in ordered[:RECENT]
    ]
    return rows, len(found)


def open_disputes() -> tuple[list[dict[str, Any]], int]:
    """Disputes the bank has not decided yet, oldest evidence deadline first."""
    from djstripe.models import Dispute

    from billing.disputes import OPEN_STATUSES
    from billing.money import money

    disputes = Dispute.objects.filter(
        livemode=settings.STRIPE_LIVE_MODE, stripe_data__status__in=sorted(OPEN_STATUSES)
    )
    rows = []
    for dispute in disputes.select_related("charge__customer__subscriber").order_by(
        "stripe_data__evidence_details__due_by"
    )[:RECENT]:
        data = dispute.stripe_data
        subscriber = (
            dispute.charge.customer.subscriber
            if dispute.charge and dispute.charge.customer
            else None
        )
        due = (data.get("evidence_details") or {}).get("due_by")
        rows.append(
            {
                "id": data.get("id"),
                "email": getattr(subscriber, "email", "") or "unknown customer",
                "url": _url_args("admin:accounts_user_change", subscriber.pk)
                if subscriber
                else None,
                "amount": money(data.get("amount"), data.get("currency") or ""),
                "reason": str(data.get("reason") or "").replace("_", " "),
                "status": str(data.get("status") or "").replace("_", " "),
                "due_by": datetime.fromtimestamp(int(due), tz=UTC) if due else None,
            }
        )
    return rows, disputes.count()


def _url_args(name: str, *args: Any) -> str | None:
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return None


class SmartFlowAdminSite(admin.AdminSite):
    site_header = "SmartFlow back-office"
    site_title = "SmartFlow back-office"
    index_title = "At a glance"

    def register(
        self, model_or_iterable: Any, admin_class: type[Any] | None = None, **options: Any
    ) -> None:
        # Here rather than in each ModelAdmin, so that none is left out: third-party
        # ones have date hierarchies too (axes' attempt_time).
        admin_class = admin_class or admin.ModelAdmin
        if not issubclass(admin_class, ChangeListFallback):
            admin_class = type(admin_class.__name__, (ChangeListFallback, admin_class), {})
        super().register(model_or_iterable, admin_class, **options)

    def get_app_list(
        self, request: HttpRequest, app_label: str | None = None
    ) -> list[dict[str, Any]]:
        # dj-stripe's forty-odd model pages are reference data staff rarely open: one
        # "Stripe data" heading, below the back-office's own apps (index and sidebar).
        apps = super().get_app_list(request, app_label)
        for app in apps:
            if app["app_label"] == "djstripe":
                app["name"] = STRIPE_DATA
        return sorted(apps, key=lambda app: app["app_label"] == "djstripe")

    def has_permission(self, request: HttpRequest) -> bool:
        # Behind Staff2FAMiddleware already; here too so that no admin view (ours, or a
        # third party's wrapped in admin_view) can answer a session without its factor.
        return super().has_permission(request) and missing_step(request) is None

    def login(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # With 2FA required, staff sign in on allauth's login page, whose login stages
        # ask for the TOTP code (allauth's docs, "Admin": secure_admin_login, which goes
        # to LOGIN_URL, the customers' page, rather than to allauth's). Without it, the
        # admin's own form, as before.
        if not settings.STAFF_2FA_REQUIRED:
            return super().login(request, extra_context)
        if request.user.is_authenticated and (step := missing_step(request)):
            return step_redirect(request, step)
        if request.user.is_authenticated:
            return super().login(request, extra_context)
        back = request.GET.get("next") or reverse("admin:index")
        return HttpResponseRedirect(f"{reverse('account_login')}?{urlencode({'next': back})}")

    def index(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> TemplateResponse:
        extra_context = {**(extra_context or {}), "backoffice": panel_data(request)}
        return super().index(request, extra_context)
