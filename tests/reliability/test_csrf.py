"""Every URL refuses a POST without a CSRF token, except the signed webhooks.

The URLconf is enumerated (django.urls.get_resolver), so a URL added tomorrow is covered
the day it is added: it must refuse, or be listed below with what protects it instead.
Each URL is posted to by a signed-in customer (by staff for the admin), who has a CSRF
cookie but sends no token: what a forged cross-site form can do.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.conf import settings as django_settings
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.converters import IntConverter, PathConverter, StringConverter, UUIDConverter
from django.urls.resolvers import RegexPattern, RoutePattern
from hypothesis import find
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

pytestmark = pytest.mark.django_db

# Exempt from CSRF: webhooks whose callers cannot have a session, each refusing any
# request without its provider's own proof (tests/reliability/test_hostile_requests.py).
SIGNED_WEBHOOKS = {
    "djstripe:djstripe_webhook_by_uuid": "Stripe-Signature, an HMAC with the endpoint secret",
    "onboarding:twilio_status": "X-Twilio-Signature, an HMAC with TWILIO_AUTH_TOKEN",
    "onboarding:twilio_inbound": "X-Twilio-Signature, an HMAC with TWILIO_AUTH_TOKEN",
}
# anymail's tracking and inbound webhooks, one per ESP: basic auth with
# ANYMAIL_WEBHOOK_SECRET (refused when it is unset), plus the ESP's signature if any.
SIGNED_NAMESPACES = {"onboarding:anymail": "basic auth with ANYMAIL_WEBHOOK_SECRET"}

_SAMPLES = {IntConverter: "1", PathConverter: "1", StringConverter: "x"}
_UUID = "00000000-0000-4000-8000-000000000000"


def csrf_refused(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW for this test: a 403 that says it came from the CSRF check."""
    response = HttpResponseForbidden(reason)
    response["X-CSRF-Refused"] = reason or "yes"
    return response


@dataclass(frozen=True)
class Url:
    name: str  # "namespace:name", or the route when the pattern has no name
    route: str  # as ResolverMatch.route spells it
    pattern: URLPattern
    prefix: str  # the concrete path of the enclosing resolvers


def _walk(patterns: list, route: str = "", path: str = "/", namespace: str = "") -> Iterator[Url]:
    for pattern in patterns:
        joined = URLResolver._join_route(route, str(pattern.pattern))
        if isinstance(pattern, URLResolver):
            inner = ":".join(filter(None, [namespace, pattern.namespace]))
            yield from _walk(
                pattern.url_patterns, joined, path + _concrete(pattern.pattern, joined), inner
            )
        else:
            name = f"{namespace}:{pattern.name}" if namespace else (pattern.name or "")
            yield Url(name or joined, joined, pattern, path)


def _concrete(pattern: RoutePattern | RegexPattern, route: str) -> str:
    """A path that `pattern` matches, its parameters filled with sample values."""
    if isinstance(pattern, RoutePattern):

        def sample(match: re.Match[str]) -> str:
            converter = pattern.converters[match["name"]]
            if isinstance(converter, UUIDConverter):
                return _UUID
            return _SAMPLES[type(converter)]

        return re.sub(r"<(?:[^>:]+:)?(?P<name>[^>]+)>", sample, str(pattern))
    # A regex: the simplest string it matches (Hypothesis shrinks to it, deterministic).
    return find(
        st.from_regex(pattern.regex, fullmatch=True),
        lambda text: text != "",
        settings=hypothesis_settings(database=None, derandomize=True, max_examples=500),
    )


def _concrete_url(url: Url) -> str:
    return url.prefix + _concrete(url.pattern.pattern, url.route)


def _signed_webhook(url: Url) -> bool:
    return url.name in SIGNED_WEBHOOKS or any(
        url.name.startswith(f"{namespace}:") for namespace in SIGNED_NAMESPACES
    )


def test_every_url_refuses_a_post_without_a_csrf_token_but_the_signed_webhooks(
    settings, customer, staff_user
):
    settings.CSRF_FAILURE_VIEW = "tests.reliability.test_csrf.csrf_refused"
    clients = {}
    for who, user in (("customer", customer), ("staff", staff_user)):
        clients[who] = Client(enforce_csrf_checks=True)
        clients[who].force_login(user)
        clients[who].cookies[django_settings.CSRF_COOKIE_NAME] = "a" * 32
    admin_prefix = f"/{django_settings.ADMIN_URL}/"
    urls = list(_walk(get_resolver().url_patterns))
    unprotected, wrongly_exempt, seen_webhooks = [], [], set()

    for url in urls:
        path = _concrete_url(url)
        # The path must reach this very pattern, or the check below proves nothing.
        assert resolve(path).route == url.route, f"{path} does not resolve to {url.route}"
        client = clients["staff" if path.startswith(admin_prefix) else "customer"]
        response = client.post(path, {"plan": "launchpack", "interval": "monthly"})
        refused = response.status_code == 403 and "X-CSRF-Refused" in response
        if _signed_webhook(url):
            seen_webhooks.add(url.name)
            # Exempt indeed, and still refusing an unsigned request on its own terms.
            if refused or response.status_code < 400 or response.status_code >= 500:
                wrongly_exempt.append((url.name, path, response.status_code))
        elif not refused:
            unprotected.append((url.name, path, response.status_code))

    assert len(urls) > 100  # the admin's, dj-stripe's, anymail's and ours
    assert unprotected == [], "accept a POST without a CSRF token"
    assert wrongly_exempt == []
    # No stale exemptions: every one listed is a URL that exists.
    assert set(SIGNED_WEBHOOKS) <= seen_webhooks
    assert all(any(n.startswith(f"{ns}:") for n in seen_webhooks) for ns in SIGNED_NAMESPACES)
