from __future__ import annotations

import json
import logging
from typing import Any
from uuid import UUID

from django.conf import settings
from django.contrib.auth.decorators import login_not_required, login_required
from django.db import transaction
from django.db.models import F
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseForbidden,
    JsonResponse,
)
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST, require_safe
from djstripe.enums import WebhookEndpointStatus
from djstripe.models import WebhookEndpoint

from accounts.http import AuthenticatedHttpRequest
from billing.alerts import alert_record
from billing.checkout import (
    checkout_fulfil,
    checkout_session_create,
    portal_session_create,
    quote_read,
    quote_sign,
    session_for_user,
    subscription_switch,
    switch_pending,
    switch_preview,
)
from billing.decorators import email_verified_required, plan_required
from billing.history import billing_history
from billing.models import BillingAlert
from billing.offers import Kind, NotAnUpgrade, offer_check
from billing.outlook import Outlook, outlook_for
from billing.period_end import (
    ChangeRefused,
    cancellation_set,
    downgrade_cancel,
    downgrade_check,
    downgrade_choices,
    downgrade_schedule,
)
from billing.plans import (
    FEATURE_LABELS,
    FEATURES,
    PLAN_INFO,
    RECURRING,
    Interval,
    Plan,
    plan_allows,
    recurring_interval,
)
from billing.portal import PortalNotConfigured
from billing.ratelimit import billing_rate_limited
from billing.standing import trial_for
from billing.stripe_api import PriceMissing, StripeError, live_subscription, price_find
from billing.subscriptions import subscription_sells
from billing.webhook_queue import acknowledge, endpoint_load, signature_valid

logger = logging.getLogger(__name__)


def _problem(request: HttpRequest, message: str, status: int) -> HttpResponse:
    return render(request, "billing/problem.html", {"message": message}, status=status)


def _stripe_failed(request: HttpRequest, exc: Exception) -> HttpResponse:
    logger.exception(
        "Stripe call failed for user %s", getattr(request.user, "pk", None), exc_info=exc
    )
    return _problem(
        request,
        "We could not reach our payment provider. Nothing was charged; "
        "please try again in a minute.",
        502,
    )


@require_safe
def pricing(request: HttpRequest) -> HttpResponse:
    # The plan cards come from the `plan_cards` tag (billing/pricing.py), which the
    # landing page shares: monthly, yearly and once side by side, no JavaScript needed.
    return render(request, "billing/pricing.html")


def _choice(request: HttpRequest) -> tuple[str, str] | None:
    plan, interval = request.POST.get("plan", ""), request.POST.get("interval", "")
    return (plan, interval) if plan in Plan.values and interval in Interval.values else None


@login_required
@email_verified_required
@require_POST
@billing_rate_limited(POST="checkout")
def checkout(request: AuthenticatedHttpRequest) -> HttpResponse:
    choice = _choice(request)
    if choice is None:
        return _problem(request, "Choose one of our plans, monthly, annual or one-off.", 400)
    if not settings.BILLING_ENABLED:
        return _problem(request, "Payments are not set up on this site yet.", 503)
    plan, interval = choice
    try:
        offer = offer_check(user=request.user, plan=plan, interval=interval)
    except NotAnUpgrade as exc:
        return _problem(request, str(exc), 409)
    if offer.kind == Kind.SWITCH:  # never a second subscription
        extra = "" if interval == Interval.MONTHLY else f"&interval={interval}"
        return redirect(f"{reverse('billing:switch')}?plan={plan}{extra}")
    try:
        session = checkout_session_create(user=request.user, plan=plan, interval=interval)
    except NotAnUpgrade as exc:  # decided again under the lock, with sessions paid meanwhile
        return _problem(request, str(exc), 409)
    except PriceMissing:
        logger.error("No Stripe price for %s %s: run manage.py stripe_catalog", plan, interval)
        return _problem(request, "That plan cannot be bought right now. Please try later.", 503)
    except StripeError as exc:
        return _stripe_failed(request, exc)
    if session.url is None:  # Stripe gives a hosted Session (the only kind made) a URL
        return _problem(request, "Checkout could not be opened. Please try again.", 502)
    return _see_other(session.url)


@login_required
@email_verified_required
@require_http_methods(["GET", "HEAD", "POST"])
@billing_rate_limited(POST="checkout", GET="preview")
def switch(request: AuthenticatedHttpRequest) -> HttpResponse:
    if not settings.BILLING_ENABLED:  # a subscription synced before billing was turned off
        return _problem(request, "Payments are not set up on this site yet.", 503)
    plan = request.POST.get("plan") or request.GET.get("plan", "")
    interval = request.POST.get("interval") or request.GET.get("interval") or Interval.MONTHLY
    subscription = live_subscription(request.user)
    sold = subscription_sells(subscription) if subscription else None
    # A subscription selling no plan we know has no item a switch could replace.
    if plan not in Plan.values or interval not in RECURRING or subscription is None or sold is None:
        return _problem(request, "There is no subscription to change to that plan.", 400)
    try:
        offer_check(user=request.user, plan=plan, interval=interval)
    except NotAnUpgrade as exc:
        return _problem(request, str(exc), 409)
    if request.method == "POST":
        return _switch_confirmed(request, subscription, plan, interval)
    try:
        quote = switch_preview(subscription=subscription, plan=plan, interval=interval)
    except (StripeError, PriceMissing) as exc:
        return _stripe_failed(request, exc)
    context = {
        "current": PLAN_INFO[sold.plan],
        "current_interval": recurring_interval(sold.item.get("price") or {}),
        "target": PLAN_INFO[plan],
        "interval": interval,
        "quote": quote,
        "quote_token": quote_sign(
            subscription_id=subscription["id"],
            plan=plan,
            interval=interval,
            proration_date=quote.proration_date,
        ),
    }
    return render(request, "billing/switch.html", context)


def _switch_confirmed(
    request: AuthenticatedHttpRequest, subscription: dict[str, Any], plan: str, interval: str
) -> HttpResponse:
    when = quote_read(
        request.POST.get("quote", ""),
        subscription_id=subscription["id"],
        plan=plan,
        interval=interval,
    )
    if when is None:
        return _problem(
            request,
            "The amount we showed you is no longer valid. Nothing was charged: open the "
            "upgrade again to see today's amount.",
            400,
        )
    try:
        result = subscription_switch(
            user=request.user,
            subscription=subscription,
            plan=plan,
            interval=interval,
            proration_date=when,
        )
    except (StripeError, PriceMissing) as exc:
        return _stripe_failed(request, exc)
    if result.pending:
        return redirect("billing:switch_pending")
    return redirect("accounts:dashboard")


@login_required
@require_safe
@billing_rate_limited(GET="preview")
def switch_waiting(request: AuthenticatedHttpRequest) -> HttpResponse:
    """An upgrade that waits for its payment: what happened and what to do."""
    if not settings.BILLING_ENABLED:
        return _problem(request, "Payments are not set up on this site yet.", 503)
    subscription = live_subscription(request.user)
    try:
        pending = subscription and switch_pending(subscription_id=subscription["id"])
    except StripeError as exc:
        return _stripe_failed(request, exc)
    if not pending:  # paid (the plan went up) or lapsed: the dashboard says which plan
        return redirect("accounts:dashboard")
    context = {
        "pending": pending,
        "current": PLAN_INFO.get(request.user.plan),
        "target": PLAN_INFO.get(pending.plan or ""),
    }
    return render(request, "billing/switch_pending.html", context)


@login_required
@require_safe
@billing_rate_limited(GET="preview")
def success(request: AuthenticatedHttpRequest) -> HttpResponse:
    # Checked before any Stripe call: with billing off there is no key, and stripe-python
    # would still go out to api.stripe.com (and retry) before failing.
    if not settings.BILLING_ENABLED:
        return _problem(request, "Payments are not set up on this site yet.", 503)
    session_id = request.GET.get("session_id", "")
    try:
        session = session_for_user(session_id=session_id, user=request.user) if session_id else None
    except StripeError as exc:
        return _stripe_failed(request, exc)
    if session is None:
        return _problem(request, "We could not find that payment.", 404)
    checkout_fulfil(session=session, user=request.user)
    request.user.refresh_from_db(fields=["plan"])
    paid_plan = (session.get("metadata") or {}).get("plan")
    live = paid_plan in Plan.values and request.user.plan == paid_plan
    return render(
        request,
        "billing/success.html",
        {
            "live": live,
            # A delayed payment method (bank debit): complete but unpaid for days, so no
            # refreshing; the plan goes live on checkout.session.async_payment_succeeded.
            "processing": not live
            and session.get("status") == "complete"
            and session.get("payment_status") == "unpaid",
            "plan_info": PLAN_INFO.get(paid_plan or ""),
            "session": session,
            # A trial's session charges nothing ("no_payment_required"): say so, not that
            # a promotion code covered it.
            "trial": trial_for(request.user),
        },
    )


@login_required
@require_POST
@billing_rate_limited(POST="checkout")
def portal(request: AuthenticatedHttpRequest) -> HttpResponse:
    if not settings.BILLING_ENABLED:
        return _problem(request, "Payments are not set up on this site yet.", 503)
    try:
        session = portal_session_create(user=request.user)
    except PortalNotConfigured as exc:
        logger.error("Billing portal refused: %s", exc)
        return _problem(
            request,
            "Billing management is not available right now. Nothing was changed; "
            "please try again later or contact us.",
            503,
        )
    except StripeError as exc:
        return _stripe_failed(request, exc)
    return _see_other(session.url)


def _see_other(url: str) -> HttpResponse:
    response = redirect(url)
    response.status_code = 303
    return response


def _feature_allowed(request: AuthenticatedHttpRequest, name: str) -> JsonResponse:
    return JsonResponse({"feature": name, "allowed": True, "plan": request.user.plan})


@require_safe
def feature(request: HttpRequest, name: str) -> HttpResponse:
    if name not in FEATURES:
        return JsonResponse({"error": "unknown_feature", "feature": name}, status=404)
    return plan_required(name)(_feature_allowed)(request, name)


def _livemode_refused(
    request: HttpRequest, endpoint: WebhookEndpoint, event: dict[str, Any]
) -> bool:
    """Whether a correctly signed event is of the other mode than its endpoint (a live
    event replayed to a test endpoint, or the reverse): refused and shown to staff.
    Called only after the signature verified, so nobody who lacks the endpoint's secret
    can raise alerts."""
    if bool(event["livemode"]) == bool(endpoint.livemode):
        return False
    event_id = str(event.get("id") or "?")[:255]
    mode = "live" if event["livemode"] else "test"
    logger.warning(
        "Stripe webhook %s: %s event %s refused by the %s endpoint %s",
        request.path,
        mode,
        event_id,
        "live" if endpoint.livemode else "test",
        endpoint.id,
    )
    alert, created = alert_record(
        kind=BillingAlert.Kind.LIVEMODE_MISMATCH,
        stripe_id=event_id,
        detail=(
            f"A {mode}-mode event ({event.get('type', '?')}) was signed for the "
            f"{'live' if endpoint.livemode else 'test'} endpoint {endpoint.id}: refused "
            "(400). A replayed payload, or an endpoint registered in the wrong mode."
        ),
        stripe_event_id=event_id,
    )
    if not created:
        BillingAlert.objects.filter(pk=alert.pk).update(
            seen_count=F("seen_count") + 1, last_seen_at=timezone.now()
        )
    return True


def _webhook_body(request: HttpRequest) -> str | HttpResponse:
    """The webhook's body as text, or the answer that refuses it: 413 when it declares
    more than STRIPE_WEBHOOK_MAX_BYTES (nothing of it read: under WSGI the body is read
    only as far as Content-Length says, so the declared length bounds what is read),
    400 when it does not decode (Stripe's is UTF-8)."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    limit = settings.STRIPE_WEBHOOK_MAX_BYTES
    if declared > limit:
        logger.warning(
            "Stripe webhook %s: body of %s bytes is over STRIPE_WEBHOOK_MAX_BYTES (%s); refused",
            request.path,
            declared,
            limit,
        )
        return HttpResponse(
            f"The body is over {limit} bytes.", status=413, content_type="text/plain"
        )
    try:
        return request.body.decode(request.encoding or "utf-8")
    except UnicodeDecodeError:
        logger.warning("Stripe webhook %s: body does not decode; refused", request.path)
        return HttpResponseBadRequest("The body is not UTF-8 text.")


@csrf_exempt
@login_not_required
@transaction.non_atomic_requests
@require_POST
def stripe_webhook(request: HttpRequest, uuid: UUID) -> HttpResponse:
    """`/stripe/webhook/<uuid>/`, the URL dj-stripe gives its endpoints: verify, store,
    queue, answer 200 (billing/webhook_queue.py). No Stripe call and no business logic
    here, so Stripe's latency never sets our acknowledgement time.

    Replaces dj-stripe's view, which processes in the request. The body is read only
    up to STRIPE_WEBHOOK_MAX_BYTES (413 past it, from Content-Length, before reading),
    parsed only once the signature verified, and stored (dj-stripe's
    WebhookEventTrigger) only then, so unsigned requests cost nothing but the endpoint's
    lookup and one HMAC. Refused with 400: no or a bad signature, a body that is not
    UTF-8, not a JSON object or not an event, an event of the other mode than the
    endpoint. An unknown endpoint is a 404; a disabled one (its status) a 403.

    dj-stripe's view parsed the body catching only ValueError and compared signatures
    catching only SignatureVerificationError, so a deeply nested body (RecursionError), a
    JSON `null` or a non-ASCII signature became 500s; and on PostgreSQL a NUL byte failed
    the insert. Each is refused here before anything is stored."""
    if "X-Djstripe-Webhook-Secret" in request.headers and not (
        settings.STRIPE_WEBHOOK_DEBUG_HEADER
    ):
        # With DEBUG on, dj-stripe took the secret from this header instead of the
        # endpoint, so whoever sends it signs their own events; Stripe never sends it.
        logger.warning(
            "Stripe webhook %s: X-Djstripe-Webhook-Secret header refused "
            "(STRIPE_WEBHOOK_DEBUG_HEADER is off)",
            request.path,
        )
        return HttpResponseBadRequest("X-Djstripe-Webhook-Secret is not accepted.")
    signature = request.headers.get("Stripe-Signature", "")
    if not signature:
        logger.warning("Stripe webhook %s: no Stripe-Signature; refused", request.path)
        return HttpResponseBadRequest("No Stripe-Signature header.")
    if not signature.isascii():
        logger.warning("Stripe webhook %s: signature is not ASCII; refused", request.path)
        return HttpResponseBadRequest("Bad Stripe-Signature header.")
    endpoint = endpoint_load(uuid)
    if endpoint is None:
        raise Http404("No such webhook endpoint.")
    if endpoint.status != WebhookEndpointStatus.enabled:
        # Stripe retries a refused event for three days: enabling the endpoint again
        # within them loses nothing.
        logger.warning(
            "Stripe webhook %s: endpoint %s is %s; event refused",
            request.path,
            endpoint.id,
            endpoint.status or "without a status",
        )
        return HttpResponseForbidden("This webhook endpoint is disabled.")
    body = _webhook_body(request)
    if isinstance(body, HttpResponse):
        return body
    debug_secret = request.headers.get("X-Djstripe-Webhook-Secret", "")
    if debug_secret and settings.DEBUG:
        # Stripe CLI forwarding, as dj-stripe allows it: only with
        # STRIPE_WEBHOOK_DEBUG_HEADER on (refused above otherwise) and DEBUG.
        endpoint.secret = debug_secret
    if not signature_valid(endpoint, body, signature):
        logger.warning("Stripe webhook %s: signature does not verify; refused", request.path)
        return HttpResponseBadRequest("The signature does not verify.")
    try:
        event = json.loads(body)
    except (ValueError, RecursionError):
        event = None
    if not isinstance(event, dict) or "\x00" in body:
        logger.warning("Stripe webhook %s: body is not a JSON object; refused", request.path)
        return HttpResponseBadRequest("The body is not a JSON object.")
    if not isinstance(event.get("id"), str) or "livemode" not in event:
        logger.warning("Stripe webhook %s: signed body is not an event; refused", request.path)
        return HttpResponseBadRequest("The body is not a Stripe event.")
    if _livemode_refused(request, endpoint, event):
        return HttpResponseBadRequest("The event's livemode is not this endpoint's.")
    acknowledged = acknowledge(request, endpoint=endpoint, event=event)
    return HttpResponse(
        f"{'duplicate of ' if acknowledged.duplicate else ''}delivery {acknowledged.delivery_id}",
        content_type="text/plain",
    )


# --- The billing page and changes at the period end (billing/outlook.py, period_end.py) ---


@login_required
@require_safe
def account(request: AuthenticatedHttpRequest) -> HttpResponse:
    """`/billing/`: plan, what comes next, card, invoices, purchases and refunds, all
    from the synced rows: no Stripe call."""
    outlook = outlook_for(request.user)
    context = {
        "outlook": outlook,
        "history": billing_history(request.user),
        "downgrades": downgrade_choices(outlook),
        "plan_info": PLAN_INFO[request.user.plan],
    }
    return render(request, "billing/account.html", context)


def _period_end_guard(request: AuthenticatedHttpRequest) -> Outlook | HttpResponse:
    """The user's own live subscription's outlook, or the page that says why not."""
    if not settings.BILLING_ENABLED:
        return _problem(request, "Payments are not set up on this site yet.", 503)
    outlook = outlook_for(request.user)
    if outlook is None:
        return _problem(request, "You have no subscription to change.", 409)
    return outlook


def _lost_features(plan: str | None, target: str) -> list[str]:
    return [
        FEATURE_LABELS[name]
        for name in FEATURES
        if plan and plan_allows(plan, name) and not plan_allows(target, name)
    ]


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
@billing_rate_limited(POST="checkout", GET="preview")
def downgrade(request: AuthenticatedHttpRequest) -> HttpResponse:
    """`/billing/downgrade/?plan=flowkit`: confirm, then move to a lower paid plan at the
    end of the paid period (a Subscription Schedule)."""
    outlook = _period_end_guard(request)
    if isinstance(outlook, HttpResponse):
        return outlook
    plan = request.POST.get("plan") or request.GET.get("plan", "")
    interval = request.POST.get("interval") or request.GET.get("interval") or Interval.MONTHLY
    try:
        target, interval = downgrade_check(outlook=outlook, plan=plan, interval=interval)
        if request.method == "POST":
            downgrade_schedule(user=request.user, outlook=outlook, plan=target, interval=interval)
            return redirect("billing:account")
        price = price_find(target, interval).stripe_data
    except ChangeRefused as refused:
        return _problem(request, refused.message, refused.status)
    except (StripeError, PriceMissing) as exc:
        return _stripe_failed(request, exc)
    context = {
        "outlook": outlook,
        "target": target,
        "interval": interval,
        "price": price,
        "lost": _lost_features(outlook.plan, target),
    }
    return render(request, "billing/downgrade.html", context)


@login_required
@require_POST
@billing_rate_limited(POST="checkout")
def downgrade_undo(request: AuthenticatedHttpRequest) -> HttpResponse:
    """`/billing/downgrade/cancel/`: keep the current plan (the schedule is released)."""
    outlook = _period_end_guard(request)
    if isinstance(outlook, HttpResponse):
        return outlook
    try:
        downgrade_cancel(user=request.user, outlook=outlook)
    except ChangeRefused as refused:
        return _problem(request, refused.message, refused.status)
    except StripeError as exc:
        return _stripe_failed(request, exc)
    return redirect("billing:account")


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
@billing_rate_limited(POST="checkout")
def cancel(request: AuthenticatedHttpRequest) -> HttpResponse:
    """`/billing/cancel/`: confirm (the date, what is lost), then cancel at the period end."""
    outlook = _period_end_guard(request)
    if isinstance(outlook, HttpResponse):
        return outlook
    try:
        if outlook.kind == "cancels":
            raise ChangeRefused("Your subscription is already set to end at the period end.")
        if request.method == "POST":
            cancellation_set(user=request.user, outlook=outlook, cancel=True)
            return redirect("billing:account")
    except ChangeRefused as refused:
        return _problem(request, refused.message, refused.status)
    except StripeError as exc:
        return _stripe_failed(request, exc)
    context = {"outlook": outlook, "lost": _lost_features(outlook.plan, Plan.STARTER)}
    return render(request, "billing/cancel.html", context)


@login_required
@require_POST
@billing_rate_limited(POST="checkout")
def resume(request: AuthenticatedHttpRequest) -> HttpResponse:
    """`/billing/resume/`: undo a cancellation at the period end."""
    outlook = _period_end_guard(request)
    if isinstance(outlook, HttpResponse):
        return outlook
    try:
        cancellation_set(user=request.user, outlook=outlook, cancel=False)
    except ChangeRefused as refused:
        return _problem(request, refused.message, refused.status)
    except StripeError as exc:
        return _stripe_failed(request, exc)
    return redirect("billing:account")
