"""The product's own billing pages and webhooks, with the sandbox standing in for Stripe."""

from __future__ import annotations

import re
from io import StringIO

from django.core.management import call_command

from devtools.stripe_sandbox import actions
from devtools.stripe_sandbox.delivery import deliver_pending
from tests.sandbox_app import app_transport


def _path(url: str) -> str:
    return url.removeprefix("http://testserver")


def _deliver(client) -> None:
    assert deliver_pending(transport=app_transport(client)).failed == 0


def test_subscribing_and_cancelling_runs_offline_end_to_end(client, customer):
    call_command("stripe_catalog", stdout=StringIO())
    client.force_login(customer)

    checkout = client.post("/billing/checkout/", {"plan": "flowkit", "interval": "monthly"})
    paid = client.post(_path(checkout["Location"]), {"card_number": "4242 4242 4242 4242"})
    _deliver(client)
    success = client.get(_path(paid["Location"]))
    customer.refresh_from_db()
    subscribed_plan = customer.plan

    portal = client.post("/billing/portal/")
    page = client.get(_path(portal["Location"])).content.decode()
    sub_id = re.search(r'data-subscription="(sub_\w+)"', page).group(1)
    # The app's portal configuration cancels at the period end, never at once.
    refused = client.post(
        _path(portal["Location"]), {"action": "cancel_now", "subscription": sub_id}
    )
    client.post(
        _path(portal["Location"]), {"action": "cancel_at_period_end", "subscription": sub_id}
    )
    _deliver(client)
    customer.refresh_from_db()
    kept_plan = customer.plan
    actions.clock_advance(days=32)
    _deliver(client)
    customer.refresh_from_db()

    assert checkout["Location"].startswith("http://testserver/sandbox/checkout/cs_test_")
    assert success.status_code == 200
    assert subscribed_plan == "flowkit"
    assert refused.status_code == 403
    assert kept_plan == "flowkit"  # until the period end
    assert customer.plan == "starter"
