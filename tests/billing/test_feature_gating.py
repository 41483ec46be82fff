from __future__ import annotations

import pytest
from django.db import connection
from django.template import Context, Template
from django.test import RequestFactory

from billing.decorators import plan_required

pytestmark = pytest.mark.django_db


def _on_plan(user, plan):
    user.plan = plan
    user.save()
    return user


def test_a_plan_with_the_feature_gets_200(client, customer, django_assert_num_queries):
    client.force_login(_on_plan(customer, "launchpack"))

    # Loading the session and the user; the decision itself reads no table.
    with django_assert_num_queries(2):
        response = client.get("/feature/ai_concierge/")

    assert response.status_code == 200
    assert response.json() == {"feature": "ai_concierge", "allowed": True, "plan": "launchpack"}


def test_a_plan_without_the_feature_gets_402(client, customer, django_assert_num_queries):
    client.force_login(_on_plan(customer, "flowkit"))

    with django_assert_num_queries(2):
        response = client.get("/feature/ai_concierge/")

    assert response.status_code == 402
    assert response.json() == {
        "error": "payment_required",
        "feature": "ai_concierge",
        "plan": "flowkit",
        "required_plan": "launchpack",
        "upgrade_url": "/pricing/",
    }


def test_an_unknown_feature_is_404(client, customer):
    client.force_login(customer)

    assert client.get("/feature/teleport/").status_code == 404


def test_anonymous_json_request_gets_401(client):
    response = client.get("/feature/ai_concierge/", HTTP_ACCEPT="application/json")

    assert response.status_code == 401
    assert response.json() == {"error": "authentication_required"}


def test_anonymous_browser_is_sent_to_login(client):
    response = client.get("/feature/ai_concierge/", HTTP_ACCEPT="text/html")

    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/feature/ai_concierge/"


def test_feature_urls_refuse_posts(client, customer):
    client.force_login(customer)

    assert client.post("/feature/calendar_sync/").status_code == 405


@pytest.mark.parametrize(
    ("plan", "feature", "allowed"),
    [
        ("starter", "calendar_sync", True),
        ("starter", "brand_kit", True),
        ("starter", "sms_reminders", False),
        ("flowkit", "client_import", True),
        ("flowkit", "ai_concierge", False),
        ("launchpack", "sms_reminders", True),
    ],
)
def test_has_feature_follows_the_matrix(customer, plan, feature, allowed):
    assert _on_plan(customer, plan).has_feature(feature) is allowed


def test_decorator_and_template_filter_read_the_same_matrix(customer, rf: RequestFactory):
    @plan_required("sms_reminders")
    def view(request):
        from django.http import HttpResponse

        return HttpResponse("ok")

    request = rf.get("/x")
    request.user = _on_plan(customer, "starter")
    template = Template(
        '{% load billing %}{% if user|has_feature:"sms_reminders" %}yes{% else %}no{% endif %}'
    )

    assert view(request).status_code == 402
    assert template.render(Context({"user": customer})) == "no"
    request.user = _on_plan(customer, "flowkit")
    assert view(request).status_code == 200
    assert template.render(Context({"user": customer})) == "yes"


def test_decorating_an_unknown_feature_fails_at_import():
    with pytest.raises(ValueError, match="Unknown feature"):
        plan_required("teleport")


def test_dashboard_shows_locked_features_with_an_upgrade_link(client, customer):
    client.force_login(_on_plan(customer, "flowkit"))

    body = client.get("/").content.decode()

    assert 'data-feature="ai_concierge" data-allowed="false"' in body
    assert 'data-feature="sms_reminders" data-allowed="true"' in body
    assert "Upgrade to LaunchPack" in body


def test_customers_original_acceptance(deliver, fake_stripe, catalog, payer, customer, client):
    """The brief's check: a FlowKit subscriber gets 402 on ai_concierge, a LaunchPack one
    200, and the plan is stored in the users table."""
    from tests.billing import stripe_fakes as sf

    sub = sf.subscription(cus=payer, prc=catalog["flowkit_monthly"])
    fake_stripe.add(sub)
    deliver(sf.event("customer.subscription.created", sub))
    client.force_login(customer)
    assert client.get("/feature/ai_concierge/").status_code == 402

    sub["items"]["data"][0]["price"] = catalog["launchpack_monthly"]
    deliver(sf.event("customer.subscription.updated", sub))
    assert client.get("/feature/ai_concierge/").status_code == 200

    with connection.cursor() as cursor:
        cursor.execute("SELECT plan FROM accounts_user WHERE id = %s", [customer.pk])
        assert cursor.fetchone() == ("launchpack",)


@pytest.mark.parametrize(("plan", "status"), [("launchpack", 200), ("starter", 402)])
def test_head_is_answered_like_get(client, customer, plan, status):
    client.force_login(_on_plan(customer, plan))

    assert client.head("/feature/ai_concierge/").status_code == status


BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def test_a_browser_gets_a_402_page_with_the_feature_the_plan_and_an_upgrade_button(
    client, customer
):
    client.force_login(_on_plan(customer, "flowkit"))

    response = client.get("/feature/ai_concierge/", HTTP_ACCEPT=BROWSER_ACCEPT)

    assert response.status_code == 402
    assert response["Content-Type"].startswith("text/html")
    body = response.content.decode()
    assert "<h1" in body
    assert "AI concierge is part of LaunchPack" in body
    assert "You are on FlowKit." in body
    assert '<a class="button" href="/pricing/">Upgrade to LaunchPack</a>' in body


def test_a_json_client_keeps_the_json_402_even_when_it_also_accepts_html(client, customer):
    client.force_login(_on_plan(customer, "starter"))

    response = client.get(
        "/feature/sms_reminders/", HTTP_ACCEPT="application/json, text/html;q=0.5"
    )

    assert response.status_code == 402
    assert response.json() == {
        "error": "payment_required",
        "feature": "sms_reminders",
        "plan": "starter",
        "required_plan": "flowkit",
        "upgrade_url": "/pricing/",
    }


def test_the_decorator_answers_browsers_with_the_page_too(customer, rf: RequestFactory):
    @plan_required("client_import")
    def view(request):
        from django.http import HttpResponse

        return HttpResponse("ok")

    request = rf.get("/x", HTTP_ACCEPT=BROWSER_ACCEPT)
    request.user = _on_plan(customer, "starter")

    response = view(request)

    assert response.status_code == 402
    assert "Client import is part of FlowKit" in response.content.decode()
