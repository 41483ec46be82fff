"""The dj-stripe admin lists whose own search named columns dj-stripe no longer has
(customer, account, promotion code, checkout session) search without error and find
by what staff type: an email, a code, a name."""

from __future__ import annotations

from typing import Any

import pytest
from djstripe.models import Account, Customer, PromotionCode, Session

pytestmark = pytest.mark.django_db


# What the list's columns read of a promotion code (dj-stripe's `code` property
# raises without it).
_PROMOTION_CODE = {"code": "", "active": True, "times_redeemed": 0, "max_redemptions": None}


def _row(model: type[Any], stripe_id: str, **stripe_data: Any) -> Any:
    fields = {"email": stripe_data.get("email", "")} if model is Customer else {}
    data = {**(_PROMOTION_CODE if model is PromotionCode else {}), **stripe_data}
    return model.objects.create(
        id=stripe_id, livemode=False, stripe_data={"id": stripe_id, **data}, **fields
    )


@pytest.mark.parametrize(
    ("model", "found", "other", "query"),
    [
        (
            Customer,
            {"email": "ann@example.com", "name": "Ann Lee"},
            {"email": "bob@example.com", "name": "Bob"},
            "ann@EXAMPLE",
        ),
        (Customer, {"description": "Northwind Ltd"}, {"description": "Acme"}, "northwind"),
        (
            Account,
            {"business_profile": {"name": "SmartFlow Systems"}},
            {"business_profile": {"name": "Other"}},
            "smartflow",
        ),
        (
            Account,
            {"settings": {"dashboard": {"display_name": "SF Billing"}}},
            {"settings": {"dashboard": {"display_name": "Elsewhere"}}},
            "sf billing",
        ),
        (PromotionCode, {"code": "SPRING25"}, {"code": "WINTER10"}, "spring"),
        (
            Session,
            {"customer_details": {"email": "ann@example.com"}},
            {"customer_details": {"email": "bob@example.com"}},
            "ann@",
        ),
        (Session, {"customer_email": "cat@example.com"}, {"customer_email": None}, "cat@"),
    ],
)
def test_the_list_searches_the_stripe_data_and_finds_the_row(
    client, staff_user, model, found, other, query
):
    prefix = {Customer: "cus", Account: "acct", PromotionCode: "promo", Session: "cs"}[model]
    _row(model, f"{prefix}_found", **found)
    _row(model, f"{prefix}_other", **other)
    client.force_login(staff_user)

    response = client.get(f"/admin/djstripe/{model._meta.model_name}/", {"q": query})

    assert response.status_code == 200
    assert [row.id for row in response.context["cl"].result_list] == [f"{prefix}_found"]


@pytest.mark.parametrize("model", [Customer, Account, PromotionCode, Session])
def test_a_search_by_stripe_id_finds_the_row(client, staff_user, model):
    _row(model, "xx_1234abcd")
    client.force_login(staff_user)

    response = client.get(f"/admin/djstripe/{model._meta.model_name}/", {"q": "xx_1234"})

    assert response.status_code == 200
    assert [row.id for row in response.context["cl"].result_list] == ["xx_1234abcd"]
