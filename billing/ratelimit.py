"""How often a customer may ask for something that calls Stripe (BILLING_RATE_LIMITS).

Counted with django-allauth's rate limiter, the one that limits logins and signups (a
history of timestamps per key in Django's cache), and checked before the view does
anything: a refused request has called Stripe for nothing and changed nothing. Limits
"per user" count the signed-in account, "per ip" the client's address as the login
limits see it (accounts.ratelimit.client_ip, behind AXES_IPWARE_PROXY_COUNT proxies).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

# allauth.core.ratelimit.consume reads allauth's own ACCOUNT_RATE_LIMITS; the function
# under it takes a config of our own (allauth is pinned exactly: requirements.txt).
from allauth.core.internal.ratelimit import consume, parse_rates
from allauth.core.ratelimit import respond_429
from django.conf import settings
from django.http import HttpRequest, HttpResponse

from accounts.ratelimit import client_ip

logger = logging.getLogger(__name__)

View = Callable[..., HttpResponse]


def billing_rate_allowed(request: HttpRequest, *, action: str) -> bool:
    """Count one `action` (a key of BILLING_RATE_LIMITS) for the request's user and
    address; False, counting nothing, when any of its rates is used up."""
    rates = parse_rates(settings.BILLING_RATE_LIMITS.get(action))
    user_rates = ",".join(f"{r.amount}/{r.duration}s/user" for r in rates if r.per == "user")
    # allauth would find the address through its adapter; ours is the one axes counts.
    ip_rates = ",".join(f"{r.amount}/{r.duration}s/key" for r in rates if r.per == "ip")
    counted: list[Any] = []  # allauth's RateLimitUsage
    for config, key in ((user_rates, None), (ip_rates, f"ip:{client_ip(request)}")):
        usage = consume(
            request,
            app="billing",
            action=action,
            config={action: config},
            key=key,
            limit_get=True,
        )
        if usage is None:
            for earlier in counted:  # all or nothing
                earlier.rollback()
            logger.warning(
                "Billing %s refused for user %s from %s: rate limit reached",
                action,
                request.user.pk,
                client_ip(request),
            )
            return False
        counted.append(usage)
    return True


def billing_rate_limited(**actions: str) -> Callable[[View], View]:
    """Answer 429 (templates/429.html) instead of running the view once the user or
    their address has used up the action named for the request's method:
    `@billing_rate_limited(POST="checkout", GET="preview")`. Other methods are free."""

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            method = "GET" if request.method == "HEAD" else request.method
            action = actions.get(method or "")
            if action and not billing_rate_allowed(request, action=action):
                refused: HttpResponse = respond_429(request)
                return refused
            return view(request, *args, **kwargs)

        return wrapped

    return decorator
