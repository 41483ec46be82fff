from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from djstripe.models import Customer

from accounts.models import User
from billing.models import PlanChange, PlanOverride

pytestmark = pytest.mark.django_db

LIST = "/admin/accounts/user/"


def test_the_list_shows_billing_status_and_a_stripe_dashboard_link(
    client, staff_user, customer, subscribe
):
    subscribe("flowkit", status="past_due")
    customer_id = Customer.objects.get(subscriber=customer).id
    client.force_login(staff_user)

    response = client.get(LIST)

    row = next(u for u in response.context["cl"].result_list if u.pk == customer.pk)
    assert row.billing_status == "past_due"
    body = response.content.decode()
    assert f'href="https://dashboard.stripe.com/test/customers/{customer_id}"' in body
    assert "past_due" in body


def test_filters_by_billing_status_and_searches_by_stripe_customer(
    client, staff_user, customer, outsider, subscribe
):
    subscribe("flowkit")
    customer_id = Customer.objects.get(subscriber=customer).id
    client.force_login(staff_user)

    active = client.get(LIST, {"billing_status": "active"}).context["cl"].result_list
    none = client.get(LIST, {"billing_status": "none"}).context["cl"].result_list
    found = client.get(LIST, {"q": customer_id}).context["cl"].result_list

    assert list(active) == [customer]
    assert customer not in none
    assert outsider in none
    assert list(found) == [customer]


def test_filters_by_sms_consent_and_staff(client, staff_user, customer, outsider):
    User.objects.filter(pk=customer.pk).update(sms_opt_in=True)
    client.force_login(staff_user)

    consenting = client.get(LIST, {"sms_opt_in__exact": "1"}).context["cl"].result_list
    staff = client.get(LIST, {"is_staff__exact": "1"}).context["cl"].result_list

    assert list(consenting) == [customer]
    assert list(staff) == [staff_user]


def _users(n: int) -> None:
    users = User.objects.bulk_create(
        User(email=f"user{i}@example.com", plan="flowkit" if i % 3 else "starter") for i in range(n)
    )
    PlanChange.objects.bulk_create(
        PlanChange(user=u, old_plan="starter", new_plan="flowkit", source="staff")
        for u in users[:5]
    )


def _list_queries(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(LIST, {"all": ""}).status_code == 200
    return len(queries)


def test_the_list_costs_the_same_queries_for_10_or_500_users(
    client, staff_user, customer, subscribe
):
    subscribe("flowkit")
    client.force_login(staff_user)
    _users(10)
    with_10 = _list_queries(client)

    User.objects.exclude(pk__in=[staff_user.pk, customer.pk]).delete()
    _users(500)
    with_500 = _list_queries(client)

    assert with_10 == with_500


def test_the_user_page_says_why_and_keeps_plan_read_only(client, staff_user, customer, subscribe):
    subscribe("flowkit")
    client.force_login(staff_user)
    url = f"/admin/accounts/user/{customer.pk}/change/"

    get = client.get(url)
    page = get.content.decode()
    # Whatever inlines the page has (other apps add theirs), post their empty forms.
    management = {
        f"{inline.formset.prefix}-{key}": "0"
        for inline in get.context["inline_admin_formsets"]
        for key in ("TOTAL_FORMS", "INITIAL_FORMS")
    }
    response = client.post(
        url, {"email": customer.email, "plan": "launchpack", "is_active": "on", **management}
    )

    assert "subscription sub_" in page
    assert "(active)" in page
    assert 'name="plan"' not in page
    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.plan == "flowkit"


def test_grant_form_needs_a_reason(client, staff_user, customer):
    client.force_login(staff_user)

    response = client.post(
        f"/admin/accounts/user/{customer.pk}/override/grant/",
        {"plan": "launchpack", "reason": " ", "days": "30"},
    )

    assert response.status_code == 200
    assert "Give a reason" in response.content.decode()
    assert not PlanOverride.objects.exists()


def test_revoke_from_the_user_page(client, staff_user, customer):
    client.force_login(staff_user)
    client.post(
        f"/admin/accounts/user/{customer.pk}/override/grant/",
        {"plan": "flowkit", "reason": "Apology for downtime"},
    )
    override = PlanOverride.objects.get()
    url = f"/admin/accounts/user/{customer.pk}/override/{override.pk}/revoke/"

    confirm = client.get(url)
    response = client.post(url)

    assert "Apology for downtime" in confirm.content.decode()
    assert response.status_code == 302
    customer.refresh_from_db()
    override.refresh_from_db()
    assert customer.plan == "starter"
    assert override.revoked_by == staff_user


def test_story_staff_comp_a_customer_launchpack_for_30_days(client, staff_user, customer):
    # The customer is on Starter: no AI concierge.
    client.force_login(customer)
    assert client.get("/feature/ai_concierge/").status_code == 402

    # Staff find them by email and see why they are on their plan.
    client.force_login(staff_user)
    found = client.get(LIST, {"q": "customer@example"}).context["cl"].result_list
    assert list(found) == [customer]
    page = client.get(f"/admin/accounts/user/{customer.pk}/change/").content.decode()
    assert "no active subscription, purchase or override" in page
    assert f"/admin/accounts/user/{customer.pk}/override/grant/" in page

    # They comp LaunchPack for 30 days, with a reason.
    form = client.get(f"/admin/accounts/user/{customer.pk}/override/grant/")
    assert form.status_code == 200
    response = client.post(
        f"/admin/accounts/user/{customer.pk}/override/grant/",
        {"plan": "launchpack", "reason": "Conference speaker", "days": "30", "notify": "on"},
    )
    assert response.status_code == 302

    # The customer's dashboard unlocks the AI concierge.
    client.force_login(customer)
    assert client.get("/feature/ai_concierge/").status_code == 200

    # And every step is in the history on the user page.
    client.force_login(staff_user)
    page = client.get(f"/admin/accounts/user/{customer.pk}/change/").content.decode()
    change = PlanChange.objects.get(user=customer)
    assert (change.new_plan, change.source, change.actor, change.reason) == (
        "launchpack",
        "staff",
        staff_user,
        "Conference speaker",
    )
    override = PlanOverride.objects.get(user=customer)
    assert 29 <= (override.expires_at - override.created_at).days <= 30
    assert "Conference speaker" in page
    assert "staff override until" in page


@pytest.mark.parametrize(
    "params",
    [{}, {"billing_status": "active"}, {"billing_status": "none"}, {"q": "cus_"}, {"o": "3"}],
)
def test_the_list_reads_only_the_user_table(client, staff_user, customer, subscribe, params):
    # Billing status, customer and last change are the user's own columns (plan_refresh
    # copies them): no subquery over dj-stripe or the plan history, no join for search.
    subscribe("flowkit")
    client.force_login(staff_user)

    with CaptureQueriesContext(connection) as queries:
        assert client.get(LIST, params).status_code == 200

    listing = [q["sql"] for q in queries if 'FROM "accounts_user"' in q["sql"]]
    assert listing
    for sql in listing:
        assert "djstripe" not in sql
        assert "billing_planchange" not in sql
        assert " JOIN " not in sql.split('FROM "accounts_user"', 1)[1].split(" WHERE ")[0]
