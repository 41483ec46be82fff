from __future__ import annotations

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from djstripe.models import APIKey, Customer, WebhookEndpoint

from billing.models import PlanChange, PlanOverride
from billing.overrides import override_grant
from tests.billing import stripe_fakes as sf

pytestmark = pytest.mark.django_db

LIST = "/admin/accounts/user/"


def _action(client, action: str, *users):
    return client.post(
        LIST, {"action": action, ACTION_CHECKBOX_NAME: [str(u.pk) for u in users], "index": "0"}
    )


def _actions(client) -> set[str]:
    response = client.get(LIST)
    assert response.status_code == 200
    form = response.context["action_form"]
    return {value for value, _label in form.fields["action"].choices} if form else set()


def test_groups_hold_the_documented_abilities(support_user, billing_admin):
    assert support_user.has_perm("accounts.view_user")
    assert support_user.has_perm("billing.grant_override")
    assert support_user.has_perm("billing.revoke_override")
    assert support_user.has_perm("accounts.resend_onboarding")
    assert not support_user.has_perm("accounts.resync_billing")
    assert not support_user.has_perm("accounts.change_user")
    assert billing_admin.has_perm("accounts.resync_billing")
    assert billing_admin.has_perm("djstripe.view_customer")
    assert not billing_admin.has_perm("djstripe.change_customer")
    assert not billing_admin.has_perm("djstripe.view_apikey")


def test_support_cannot_resync_even_by_forging_the_action(
    client, support_user, customer, fake_stripe, payer
):
    Customer.sync_from_stripe_data(payer)
    fake_stripe.calls.clear()
    client.force_login(support_user)

    assert "resync_from_stripe" not in _actions(client)
    assert "export_csv" not in _actions(client)
    forged = _action(client, "resync_from_stripe", customer)
    exported = _action(client, "export_csv", customer)

    # Refused: the page comes back with no action run, no Stripe call, no file.
    assert fake_stripe.calls == []
    assert not PlanChange.objects.exists()
    assert forged.status_code in (200, 302)
    assert not exported["Content-Type"].startswith("text/csv")


def test_support_can_grant_and_revoke_a_comp(client, support_user, customer):
    client.force_login(support_user)
    page = client.get(f"/admin/accounts/user/{customer.pk}/change/")
    assert page.status_code == 200

    client.post(
        f"/admin/accounts/user/{customer.pk}/override/grant/",
        {"plan": "flowkit", "reason": "Support goodwill", "days": "7"},
    )
    override = PlanOverride.objects.get()
    client.post(f"/admin/accounts/user/{customer.pk}/override/{override.pk}/revoke/")

    assert list(PlanChange.objects.values_list("new_plan", "actor")) == [
        ("starter", support_user.pk),
        ("flowkit", support_user.pk),
    ]


def _grant_page(user) -> str:
    return f"/admin/accounts/user/{user.pk}/override/grant/"


def _grant_post(client, user):
    return client.post(_grant_page(user), {"plan": "launchpack", "reason": "Why not", "days": ""})


def test_support_cannot_comp_their_own_account(client, support_user):
    client.force_login(support_user)

    change_page = client.get(f"/admin/accounts/user/{support_user.pk}/change/")
    form = client.get(_grant_page(support_user))
    grant = _grant_post(client, support_user)

    assert _grant_page(support_user) not in change_page.content.decode()
    assert (form.status_code, grant.status_code) == (403, 403)
    support_user.refresh_from_db()
    assert support_user.plan == "starter"
    assert not PlanOverride.objects.exists()
    assert not PlanChange.objects.exists()


def test_staff_cannot_comp_or_uncomp_a_colleague(client, support_user, billing_admin, staff_user):
    comp = override_grant(
        user=billing_admin, plan="flowkit", reason="Trial", expires_at=None, notify=False,
        actor=staff_user,
    )  # fmt: skip
    client.force_login(support_user)

    grant = _grant_post(client, billing_admin)
    revoke = client.post(f"/admin/accounts/user/{billing_admin.pk}/override/{comp.pk}/revoke/")

    assert (grant.status_code, revoke.status_code) == (403, 403)
    comp.refresh_from_db()
    assert comp.revoked_at is None
    assert PlanOverride.objects.count() == 1
    billing_admin.refresh_from_db()
    assert billing_admin.plan == "flowkit"


def test_a_superuser_can_comp_staff_and_the_history_says_who(client, support_user, staff_user):
    client.force_login(staff_user)

    assert client.get(_grant_page(support_user)).status_code == 200
    assert _grant_post(client, support_user).status_code == 302

    support_user.refresh_from_db()
    assert support_user.plan == "launchpack"
    change = PlanChange.objects.get(user=support_user)
    assert (change.new_plan, change.actor, change.reason) == ("launchpack", staff_user, "Why not")


@pytest.mark.parametrize("model", ["apikey", "webhookendpoint"])
def test_only_superusers_see_stripe_secrets(client, support_user, billing_admin, staff_user, model):
    key = APIKey.objects.create(
        id="sk_test_123", secret="sk_test_" + "x" * 24, livemode=False, type="secret"
    )
    endpoint = WebhookEndpoint.objects.create(
        id="we_x", livemode=False, secret="whsec_top_secret", url="https://x.test/",
        enabled_events=["*"], status="enabled",
    )  # fmt: skip
    pk = key.pk if model == "apikey" else endpoint.pk
    for user in (support_user, billing_admin):
        client.force_login(user)
        assert client.get(f"/admin/djstripe/{model}/").status_code == 403
        assert client.get(f"/admin/djstripe/{model}/{pk}/change/").status_code in (302, 403)
        assert "whsec_top_secret" not in client.get("/admin/").content.decode()
    client.force_login(staff_user)
    assert client.get(f"/admin/djstripe/{model}/").status_code == 200


def test_billing_admin_sees_djstripe_read_only_and_cannot_sync_through_it(
    client, billing_admin, customer, fake_stripe, payer
):
    local = Customer.sync_from_stripe_data(payer)
    fake_stripe.calls.clear()
    client.force_login(billing_admin)

    listing = client.get("/admin/djstripe/customer/")
    sync = client.post(
        "/admin/djstripe/customer/action/_resync_instances/customer/",
        {ACTION_CHECKBOX_NAME: [str(local.djstripe_id)]},
    )

    assert listing.status_code == 200
    assert listing.context["action_form"] is None or not listing.context["cl"].actions
    assert sync.status_code == 403
    assert fake_stripe.calls == []


def test_billing_admin_resyncs_a_user_from_stripe(
    client, billing_admin, customer, fake_stripe, catalog, payer
):
    # Stripe knows of a subscription that no webhook brought in.
    Customer.sync_from_stripe_data(payer)
    fake_stripe.add(sf.subscription(cus=payer, prc=catalog["launchpack_monthly"]))
    client.force_login(billing_admin)

    response = _action(client, "resync_from_stripe", customer)

    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.plan == "launchpack"
    change = PlanChange.objects.get(user=customer)
    assert (change.source, change.actor) == ("reconcile", billing_admin)
    assert fake_stripe.calls_to("GET", "/v1/subscriptions")


def test_non_staff_get_nothing(client, outsider, customer, fake_stripe):
    client.force_login(outsider)

    responses = [
        client.get(f"/admin/accounts/user/{customer.pk}/override/grant/"),
        client.post(
            f"/admin/accounts/user/{customer.pk}/override/grant/",
            {"plan": "launchpack", "reason": "me"},
        ),
        _action(client, "resync_from_stripe", customer),
        _action(client, "export_csv", customer),
        client.get("/admin/"),
    ]

    assert all(r.status_code == 302 and "/admin/login/" in r["Location"] for r in responses)
    assert not PlanOverride.objects.exists()
    assert fake_stripe.calls == []


def test_staff_without_the_permission_cannot_grant(client, roles, customer):
    from accounts.models import User

    viewer = User.objects.create_user("viewer@smartflowsystems.com", "x", is_staff=True)
    client.force_login(viewer)

    response = client.post(
        f"/admin/accounts/user/{customer.pk}/override/grant/",
        {"plan": "launchpack", "reason": "me"},
    )

    assert response.status_code == 403
    assert not PlanOverride.objects.exists()


def test_support_sends_the_onboarding_again(client, support_user, customer):
    from onboarding.models import OnboardingMessage

    client.force_login(support_user)

    response = _action(client, "onboarding_resend", customer)

    assert response.status_code == 302
    sent = OnboardingMessage.objects.filter(user=customer)
    assert {(m.channel, m.status) for m in sent} == {("email", "queued"), ("sms", "skipped")}
    assert all(m.trigger.startswith("staff-resend:") for m in sent)
