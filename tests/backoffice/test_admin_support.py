"""Staff see no button that answers 403, Support sees billing status, and a 403 under
the admin looks like the admin."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Permission

from accounts.models import User
from billing.overrides import override_grant

pytestmark = pytest.mark.django_db


def _links(html: str) -> list[str]:
    return re.findall(r'href="([^"]+)"', html)


def _change(user: User) -> str:
    return f"/admin/accounts/user/{user.pk}/change/"


def test_support_sees_the_billing_status_on_the_user_page(
    client, support_user, customer, subscribe
):
    subscribe("flowkit", status="past_due")
    client.force_login(support_user)

    page = client.get(_change(customer)).content.decode()

    assert "billing status" in page.lower()
    assert re.search(r"billing status:?</label>\s*<div class=\"readonly\">past_due<", page, re.I)


def test_every_link_on_the_user_page_opens_for_support(client, support_user, customer, staff_user):
    override_grant(
        user=customer,
        plan="flowkit",
        reason="goodwill",
        expires_at=None,
        notify=False,
        actor=staff_user,
    )
    client.force_login(support_user)

    page = client.get(_change(customer)).content.decode()

    assert "Reset password" not in page
    assert "Set password" not in page
    assert "Revoke…" in page  # Support may revoke a customer's comp
    base = f"/admin/accounts/user/{customer.pk}/"
    urls = {base + h[3:] if h.startswith("../") else h for h in _links(page)}
    urls = {u for u in urls if u.startswith(base)}
    assert {f"{base}history/", f"{base}override/grant/"} <= urls
    assert any(u.endswith("/revoke/") for u in urls)
    for url in urls:
        assert client.get(url).status_code == 200, url


def test_no_revoke_link_for_staff_who_may_not_revoke(client, roles, customer, staff_user):
    override_grant(
        user=customer,
        plan="flowkit",
        reason="goodwill",
        expires_at=None,
        notify=False,
        actor=staff_user,
    )
    viewer = User.objects.create_user("viewer@smartflowsystems.com", "x", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_user"))
    client.force_login(viewer)

    page = client.get(_change(customer)).content.decode()

    assert "goodwill" in page  # still told there is a comp
    assert "Revoke…" not in page
    assert "/revoke/" not in page


def test_no_revoke_link_on_a_colleagues_page(client, support_user, staff_user, billing_admin):
    override_grant(
        user=billing_admin,
        plan="flowkit",
        reason="test seat",
        expires_at=None,
        notify=False,
        actor=staff_user,
    )
    client.force_login(support_user)

    page = client.get(_change(billing_admin)).content.decode()

    assert "test seat" in page
    assert "/revoke/" not in page


def test_a_superuser_keeps_the_reset_password_button(client, staff_user, customer):
    client.force_login(staff_user)

    page = client.get(_change(customer)).content.decode()

    assert "Reset password" in page
    assert client.get(f"/admin/accounts/user/{customer.pk}/password/").status_code == 200


def test_a_403_under_the_admin_looks_like_the_admin(client, support_user, customer):
    client.force_login(support_user)

    response = client.get(f"/admin/accounts/user/{customer.pk}/password/")

    assert response.status_code == 403
    body = response.content.decode()
    assert "SmartFlow back-office" in body  # the admin's header
    assert 'class="breadcrumbs"' in body
    assert 'href="/admin/"' in body
    assert "Not allowed" in body


def test_a_403_carries_the_reason_it_was_refused(client, support_user, billing_admin):
    client.force_login(support_user)

    response = client.get(f"/admin/accounts/user/{billing_admin.pk}/override/grant/")

    assert response.status_code == 403
    assert "Only a superuser can comp a staff account or your own." in response.content.decode()


def test_a_403_outside_the_admin_is_not_an_admin_page(client, customer, rf):
    from django.core.exceptions import PermissionDenied

    from backoffice.views import permission_denied

    request = rf.get("/feature/ai_concierge/")
    request.user = customer
    response = permission_denied(request, PermissionDenied())

    assert response.status_code == 403
    assert "SmartFlow back-office" not in response.content.decode()
