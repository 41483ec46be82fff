"""dj-stripe's admins on this API version, opened on objects the sandbox made: ours
replace those that crash (its Invoice admin reads `paid`, gone since 2025-03-31)."""

from __future__ import annotations

from typing import Any

import pytest
import stripe
from djstripe.models import (
    Charge,
    Customer,
    Dispute,
    Invoice,
    PaymentIntent,
    Price,
    Product,
    Refund,
    Subscription,
)

from devtools.stripe_sandbox.disputes import dispute_open

pytestmark = pytest.mark.django_db


@pytest.fixture
def sandbox_made(client, fake_stripe, settings, customer) -> dict[str, Any]:
    """A FlowKit subscription paid through the sandbox's checkout page, a disputed
    charge, and what dj-stripe synced of them."""
    settings.SITE_URL = "http://testserver"
    key = {"api_key": settings.STRIPE_TEST_SECRET_KEY}
    product = stripe.Product.create(name="SmartFlow Flowkit", metadata={"plan": "flowkit"}, **key)
    price = stripe.Price.create(
        product=product.id,
        unit_amount=4900,
        currency="gbp",
        recurring={"interval": "month"},
        lookup_key="flowkit_monthly",
        **key,
    )
    cus = stripe.Customer.create(
        email=customer.email, metadata={"djstripe_subscriber": str(customer.pk)}, **key
    )
    session = stripe.checkout.Session.create(
        mode="subscription",
        customer=cus.id,
        line_items=[{"price": price.id, "quantity": 1}],
        success_url="http://testserver/billing/success/",
        cancel_url="http://testserver/pricing/",
        **key,
    )
    client.post(f"/sandbox/checkout/{session.id}/", {"card_number": "4242 4242 4242 4242"})
    sub = stripe.Subscription.retrieve(
        stripe.checkout.Session.retrieve(session.id, **key).subscription, **key
    )
    Customer.sync_from_stripe_data(cus, api_key=key["api_key"])
    Subscription.sync_from_stripe_data(sub, api_key=key["api_key"])
    invoice = stripe.Invoice.retrieve(sub.latest_invoice, **key)
    Invoice.sync_from_stripe_data(invoice, api_key=key["api_key"])
    charge = stripe.Charge.list(customer=cus.id, **key).data[0]
    Charge.sync_from_stripe_data(charge, api_key=key["api_key"])
    if charge.payment_intent:
        PaymentIntent.sync_from_stripe_data(
            stripe.PaymentIntent.retrieve(charge.payment_intent, **key), api_key=key["api_key"]
        )
    refund = stripe.Refund.create(
        charge=charge.id, amount=100, reason="requested_by_customer", **key
    )
    Refund.sync_from_stripe_data(refund, api_key=key["api_key"])
    dispute, _ = dispute_open(charge.id)  # on the £48.00 not refunded
    Dispute.sync_from_stripe_data(
        stripe.Dispute.retrieve(dispute["id"], **key), api_key=key["api_key"]
    )
    return {
        "invoice": invoice,
        "subscription": sub,
        "charge": charge,
        "payment_intent": {"id": charge.payment_intent},
        "dispute": dispute,
        "refund": refund,
        "customer": cus,
        "price": price,
        "product": product,
    }


@pytest.mark.parametrize(
    ("model", "key"),
    [
        (Invoice, "invoice"),
        (Subscription, "subscription"),
        (Charge, "charge"),
        (PaymentIntent, "payment_intent"),
        (Dispute, "dispute"),
        (Refund, "refund"),
        (Customer, "customer"),
        (Price, "price"),
        (Product, "product"),
    ],
)
def test_djstripe_admins_open_on_sandbox_objects(client, staff_user, sandbox_made, model, key):
    client.force_login(staff_user)
    name = model._meta.model_name
    assert client.get(f"/admin/djstripe/{name}/").status_code == 200
    pk = model.objects.get(id=sandbox_made[key]["id"]).pk  # dj-stripe's own key
    assert client.get(f"/admin/djstripe/{name}/{pk}/change/").status_code == 200


def test_the_invoice_list_shows_amounts_in_currency_and_searches_and_filters(
    client, staff_user, sandbox_made, customer
):
    client.force_login(staff_user)
    invoice = sandbox_made["invoice"]

    page = client.get("/admin/djstripe/invoice/").content.decode()
    assert invoice.number in page
    assert customer.email in page
    assert "£49.00 / £49.00" in page
    assert "4900" not in page
    assert "Paid" in page  # the status filter

    found = client.get("/admin/djstripe/invoice/", {"q": invoice.number}).content.decode()
    assert "1 invoice" in found
    paid = client.get("/admin/djstripe/invoice/", {"status": "paid"}).content.decode()
    assert invoice.number in paid
    void = client.get("/admin/djstripe/invoice/", {"status": "void"}).content.decode()
    assert invoice.number not in void


def test_the_invoice_page_is_read_only_with_stripe_links(client, staff_user, sandbox_made):
    client.force_login(staff_user)
    invoice = sandbox_made["invoice"]
    pk = Invoice.objects.get(id=invoice.id).pk
    url = f"/admin/djstripe/invoice/{pk}/change/"

    page = client.get(url).content.decode()
    assert invoice.hosted_invoice_url
    assert invoice.hosted_invoice_url in page
    assert invoice.invoice_pdf
    assert invoice.invoice_pdf in page
    assert f"Invoice {invoice.number} for £49.00 (paid)" in page
    assert "4,900" not in page  # dj-stripe's own title shows pence as pounds
    assert 'name="_save"' not in page
    assert client.post(url, {}).status_code == 403
    assert client.get("/admin/djstripe/invoice/add/").status_code == 403
    assert client.get(f"/admin/djstripe/invoice/{pk}/delete/").status_code == 403
    assert Invoice.objects.filter(pk=pk).exists()
