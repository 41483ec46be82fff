"""Content-Security-Policy: every page sends one that allows no inline script or style,
and no page we serve (ours, the admin's, dj-stripe's admin pages) needs any."""

from __future__ import annotations

import re

import pytest
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from djstripe.models import Customer

from billing.models import PlanOverride
from billing.overrides import override_grant

pytestmark = pytest.mark.django_db

# What a policy without 'unsafe-inline' blocks in a page.
INLINE = re.compile(
    r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>"
    r"|<style[\s>]"
    r"|\sstyle=[\"']"
    r"|\son[a-z]+=[\"']"
    r"|href=[\"']\s*javascript:",
    re.IGNORECASE,
)


def _policy(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {
        name: values
        for name, *values in (part.split() for part in header.split(";") if part.strip())
    }


def _inline(response) -> list[str]:
    return INLINE.findall(response.content.decode())


@pytest.mark.parametrize("path", ["/", "/login/", "/signup/", "/pricing/", "/admin/login/"])
def test_every_page_sends_a_policy_without_inline_code(client, path):
    response = client.get(path)

    policy = _policy(response)
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert "https://checkout.stripe.com" in policy["form-action"]


def test_customer_pages_need_no_inline_code(client, customer):
    anonymous = ["/login/", "/signup/", "/pricing/", "/password/reset/", "/password/reset/done/"]
    offenders = {p: _inline(r) for p in anonymous if _inline(r := client.get(p))}
    client.force_login(customer)
    signed_in = ["/", "/profile/", "/password/change/", "/email/", "/pricing/"]
    offenders |= {p: _inline(r) for p in signed_in if _inline(r := client.get(p))}

    assert offenders == {}


def test_admin_pages_need_no_inline_code(client, staff_user, customer, fake_stripe, payer):
    local = Customer.sync_from_stripe_data(payer)
    override = override_grant(
        user=customer, plan="flowkit", reason="Beta", expires_at=None, notify=False,
        actor=staff_user,
    )  # fmt: skip
    client.force_login(staff_user)
    paths = ["/admin/", "/admin/password_change/"]
    for model in admin.site._registry:
        base = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        paths += [base, f"{base}add/"]
    user = f"/admin/accounts/user/{customer.pk}/"
    paths += [
        f"{user}change/",
        f"{user}password/",
        f"{user}override/grant/",
        f"{user}override/{override.pk}/revoke/",
        f"/admin/billing/planoverride/{PlanOverride.objects.get().pk}/change/",
    ]

    pages = {path: client.get(path) for path in paths}
    # dj-stripe's confirmation page for its admin actions.
    pages["djstripe resync"] = client.post(
        "/admin/djstripe/customer/",
        {"action": "_resync_instances", ACTION_CHECKBOX_NAME: [local.djstripe_id], "index": "0"},
    )

    shown = {p: r for p, r in pages.items() if r.status_code == 200}
    assert len(shown) > 40
    assert "form_custom_action" in pages["djstripe resync"].content.decode()
    assert {p: _inline(r) for p, r in shown.items() if _inline(r)} == {}
