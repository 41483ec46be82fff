"""Builders of Stripe-shaped objects, following Stripe's reference fixtures for the
pinned API version (periods on subscription items, invoice.parent, price.lookup_key)."""

from __future__ import annotations

import secrets
from decimal import Decimal
from typing import Any

from django.conf import settings

from devtools.stripe_sandbox import store
from devtools.stripe_sandbox.store import Obj

ACCOUNT_ID = "acct_1SandboxSmartFlw"
EMPTY_ADDRESS = {
    "city": None,
    "country": None,
    "line1": None,
    "line2": None,
    "postal_code": None,
    "state": None,
}

# The sandbox's test cards (what Stripe's test mode documents for the same numbers).
CARD_OK = "4242424242424242"
CARD_DECLINED = "4000000000000002"
CARD_RENEWAL_FAILS = "4000000000000341"
# 3-D Secure: authentication on every payment, or only when the card is set up.
CARD_3DS_ALWAYS = "4000002760003184"
CARD_3DS_ONCE = "4000002500003155"
CARDS = {CARD_OK, CARD_DECLINED, CARD_RENEWAL_FAILS, CARD_3DS_ALWAYS, CARD_3DS_ONCE}
# What each does, in the words the checkout page, the README and `make run` use.
CARD_NOTES = (
    (CARD_OK, "pays"),
    (CARD_DECLINED, "is declined"),
    (CARD_RENEWAL_FAILS, "pays now, fails at renewal and on every later charge"),
    (CARD_3DS_ALWAYS, "3-D Secure on every payment"),
    (CARD_3DS_ONCE, "3-D Secure once, then renewals pay"),
)
# Stripe's test PaymentMethod ids (`default_payment_method=pm_card_visa`...) and their cards.
TEST_PAYMENT_METHODS = {
    "pm_card_visa": CARD_OK,
    "pm_card_chargeDeclined": CARD_DECLINED,
    "pm_card_chargeCustomerFail": CARD_RENEWAL_FAILS,
    "pm_card_authenticationRequired": CARD_3DS_ALWAYS,
    "pm_card_authenticationRequiredOnSetup": CARD_3DS_ONCE,
}


def card_display(number: str) -> str:
    """4242424242424242 -> "4242 4242 4242 4242"."""
    return " ".join(number[i : i + 4] for i in range(0, len(number), 4))


def metadata_merge(old: dict[str, str] | None, new: Any) -> dict[str, str]:
    """Stripe's rules: keys are merged, an empty value unsets a key, "" unsets them all."""
    if new == "":
        return {}
    merged = dict(old or {})
    for key, value in (new or {}).items():
        if value in ("", None):
            merged.pop(key, None)
        else:
            merged[str(key)] = str(value)
    return merged


def account() -> Obj:
    return {
        "id": ACCOUNT_ID,
        "object": "account",
        "business_profile": {
            "mcc": None,
            "name": "SmartFlow (sandbox)",
            "product_description": None,
            "support_address": EMPTY_ADDRESS,
            "support_email": None,
            "support_phone": None,
            "support_url": None,
            "url": settings.SITE_URL,
        },
        "business_type": "company",
        "capabilities": {"card_payments": "active", "transfers": "active"},
        "charges_enabled": True,
        "controller": {"type": "account"},
        "country": "GB",
        "created": 1700000000,
        "default_currency": settings.BILLING_CURRENCY,
        "details_submitted": True,
        "email": settings.DEFAULT_FROM_EMAIL,
        "external_accounts": store.list_envelope(
            [], f"/v1/accounts/{ACCOUNT_ID}/external_accounts"
        ),
        "future_requirements": _no_requirements(),
        "metadata": {},
        "payouts_enabled": True,
        "requirements": _no_requirements(),
        "settings": {
            "branding": {
                "icon": None,
                "logo": None,
                "primary_color": None,
                "secondary_color": None,
            },
            "card_payments": {
                "decline_on": {"avs_failure": False, "cvc_failure": False},
                "statement_descriptor_prefix": None,
                "statement_descriptor_prefix_kana": None,
                "statement_descriptor_prefix_kanji": None,
            },
            "dashboard": {"display_name": "SmartFlow (sandbox)", "timezone": "Etc/UTC"},
            "payments": {"statement_descriptor": "SMARTFLOW"},
        },
        "tos_acceptance": {"date": None, "ip": None, "user_agent": None},
        "type": "standard",
    }


def _no_requirements() -> Obj:
    return {
        "alternatives": [],
        "current_deadline": None,
        "currently_due": [],
        "disabled_reason": None,
        "errors": [],
        "eventually_due": [],
        "past_due": [],
        "pending_verification": [],
    }


def customer(params: Obj) -> Obj:
    return {
        "id": store.new_id("cus"),
        "object": "customer",
        "address": params.get("address") or None,
        "balance": 0,
        "created": store.now(),
        "currency": None,
        "default_source": None,
        "delinquent": False,
        "description": params.get("description") or None,
        "discount": None,
        "email": params.get("email") or None,
        "invoice_prefix": secrets.token_hex(4).upper(),
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": metadata_merge({}, params.get("metadata")),
        "name": params.get("name") or None,
        "next_invoice_sequence": 1,
        "phone": params.get("phone") or None,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        # Every sandbox customer is on the sandbox's one clock (collection.TEST_CLOCK_ID).
        "test_clock": "clock_sandbox",
    }


def product(params: Obj) -> Obj:
    ts = store.now()
    return {
        "id": params.get("id") or store.new_id("prod"),
        "object": "product",
        "active": params.get("active", "true") != "false",
        "created": ts,
        "default_price": None,
        "description": params.get("description") or None,
        "images": list(params.get("images") or []),
        "livemode": False,
        "marketing_features": [],
        "metadata": metadata_merge({}, params.get("metadata")),
        "name": params["name"],
        "package_dimensions": None,
        "shippable": None,
        "statement_descriptor": None,
        "tax_code": None,
        "type": "service",
        "unit_label": None,
        "updated": ts,
        "url": None,
    }


def price(params: Obj, *, unit_amount: int, product_id: str) -> Obj:
    recurring = params.get("recurring") or None
    if recurring:
        recurring = {
            "interval": recurring["interval"],
            "interval_count": int(recurring.get("interval_count") or 1),
            "meter": None,
            "trial_period_days": None,
            "usage_type": "licensed",
        }
    return {
        "id": store.new_id("price"),
        "object": "price",
        "active": params.get("active", "true") != "false",
        "billing_scheme": "per_unit",
        "created": store.now(),
        "currency": params["currency"].lower(),
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": params.get("lookup_key") or None,
        "metadata": metadata_merge({}, params.get("metadata")),
        "nickname": params.get("nickname") or None,
        "product": product_id,
        "recurring": recurring,
        "tax_behavior": params.get("tax_behavior") or "unspecified",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "recurring" if recurring else "one_time",
        "unit_amount": unit_amount,
        "unit_amount_decimal": str(unit_amount),
    }


def plan_of(price_obj: Obj) -> Obj:
    """The legacy `plan` Stripe still puts on subscription items, made from the price."""
    recurring = price_obj.get("recurring") or {}
    return {
        "id": price_obj["id"],
        "object": "plan",
        "active": price_obj["active"],
        "amount": price_obj["unit_amount"],
        "amount_decimal": price_obj["unit_amount_decimal"],
        "billing_scheme": "per_unit",
        "created": price_obj["created"],
        "currency": price_obj["currency"],
        "interval": recurring.get("interval"),
        "interval_count": recurring.get("interval_count", 1),
        "livemode": False,
        "metadata": price_obj["metadata"],
        "meter": None,
        "nickname": price_obj["nickname"],
        "product": price_obj["product"],
        "tiers_mode": None,
        "transform_usage": None,
        "trial_period_days": None,
        "usage_type": "licensed",
    }


def subscription_item(*, price_obj: Obj, subscription_id: str, quantity: int, start: int) -> Obj:
    recurring = price_obj["recurring"]
    return {
        "id": store.new_id("si"),
        "object": "subscription_item",
        "billing_thresholds": None,
        "created": store.now(),
        "current_period_end": store.month_add(
            start, recurring["interval"], recurring["interval_count"]
        ),
        "current_period_start": start,
        "discounts": [],
        "metadata": {},
        "plan": plan_of(price_obj),
        "price": price_obj,
        "quantity": quantity,
        "subscription": subscription_id,
        "tax_rates": [],
    }


def subscription(*, customer_id: str, currency: str, metadata: dict[str, str], card: str) -> Obj:
    ts = store.now()
    sub_id = store.new_id("sub")
    return {
        "id": sub_id,
        "object": "subscription",
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": ts,
        "billing_cycle_anchor_config": None,
        "billing_mode": {"type": "flexible", "flexible": {"proration_discounts": "included"}},
        "billing_schedules": [],
        "billing_thresholds": None,
        "cancel_at": None,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        "collection_method": "charge_automatically",
        "created": ts,
        "currency": currency,
        "customer": customer_id,
        "customer_account": None,
        "days_until_due": None,
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "ended_at": None,
        "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
        "items": store.list_envelope([], f"/v1/subscription_items?subscription={sub_id}"),
        "latest_invoice": None,
        "livemode": False,
        "managed_payments": None,
        "metadata": metadata,
        "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None,
        "pause_collection": None,
        "payment_settings": {
            "payment_method_options": None,
            "payment_method_types": None,
            "save_default_payment_method": "off",
        },
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "schedule": None,
        "start_date": ts,
        "status": "active",
        "test_clock": None,
        "transfer_data": None,
        "trial_end": None,
        "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
        "trial_start": None,
        "_card": card,
    }


def invoice_line(
    *,
    invoice_id: str,
    price_obj: Obj,
    quantity: int,
    amount: int,
    period: tuple[int, int],
    subscription_id: str | None,
    subscription_item_id: str | None,
    description: str,
    proration: bool = False,
) -> Obj:
    parent: Obj
    if subscription_id:
        parent = {
            "type": "subscription_item_details",
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": None,
                "proration": proration,
                "proration_details": {"credited_items": None},
                "subscription": subscription_id,
                "subscription_item": subscription_item_id,
            },
        }
    else:
        parent = {"type": "invoice_item_details", "invoice_item_details": None}
    return {
        "id": store.new_id("il"),
        "object": "line_item",
        "amount": amount,
        "currency": price_obj["currency"],
        "description": description,
        "discount_amounts": [],
        "discountable": True,
        "discounts": [],
        "invoice": invoice_id,
        "livemode": False,
        "metadata": {},
        "parent": parent,
        "period": {"start": period[0], "end": period[1]},
        "pretax_credit_amounts": [],
        "pricing": {
            "type": "price_details",
            "price_details": {"price": price_obj["id"], "product": price_obj["product"]},
            "unit_amount_decimal": price_obj["unit_amount_decimal"],
        },
        "quantity": quantity,
        "quantity_decimal": str(quantity),
        "subscription": subscription_id,
        "subtotal": amount,
        "taxes": [],
    }


def invoice_item(
    *,
    customer_id: str,
    price_obj: Obj,
    quantity: int,
    amount: int,
    period: tuple[int, int],
    subscription_id: str,
    subscription_item_id: str,
    description: str,
) -> Obj:
    """A pending proration invoice item (`invoice: null` until an invoice bills it)."""
    return {
        "id": store.new_id("ii"),
        "object": "invoiceitem",
        "amount": amount,
        "currency": price_obj["currency"],
        "customer": customer_id,
        "customer_account": None,
        "date": store.now(),
        "description": description,
        # Stripe: "Always false for prorations".
        "discountable": False,
        "discounts": [],
        "invoice": None,
        "livemode": False,
        "metadata": {},
        "net_amount": amount,
        "parent": {
            "type": "subscription_details",
            "subscription_details": {
                "subscription": subscription_id,
                "subscription_item": subscription_item_id,
            },
        },
        "period": {"start": period[0], "end": period[1]},
        "pricing": {
            "type": "price_details",
            "price_details": {"price": price_obj["id"], "product": price_obj["product"]},
            "unit_amount_decimal": format(Decimal(amount) / Decimal(quantity or 1), "f"),
        },
        "proration": True,
        "proration_details": {"credited_items": None, "discount_amounts": []},
        "quantity": quantity,
        "quantity_decimal": str(quantity),
        "tax_rates": [],
        "test_clock": None,
    }


def invoice(
    *,
    customer_obj: Obj,
    currency: str,
    subscription_obj: Obj | None,
    billing_reason: str,
    period: tuple[int, int],
) -> Obj:
    ts = store.now()
    invoice_id = store.new_id("in")
    sequence = customer_obj.get("next_invoice_sequence") or 1
    customer_obj["next_invoice_sequence"] = sequence + 1
    parent = None
    if subscription_obj:
        parent = {
            "type": "subscription_details",
            "quote_details": None,
            "subscription_details": {
                "metadata": subscription_obj.get("metadata") or {},
                "subscription": subscription_obj["id"],
            },
        }
    return {
        "id": invoice_id,
        "object": "invoice",
        "account_country": "GB",
        "account_name": "SmartFlow (sandbox)",
        "account_tax_ids": None,
        "amount_due": 0,
        "amount_overpaid": 0,
        "amount_paid": 0,
        "amount_remaining": 0,
        "amount_shipping": 0,
        "application": None,
        "attempt_count": 0,
        "attempted": False,
        "auto_advance": False,
        "automatic_tax": {
            "disabled_reason": None,
            "enabled": False,
            "liability": None,
            "provider": None,
            "status": None,
        },
        "automatically_finalizes_at": None,
        "billing_reason": billing_reason,
        "collection_method": "charge_automatically",
        "created": ts,
        "currency": currency,
        "custom_fields": None,
        "customer": customer_obj["id"],
        "customer_account": None,
        "customer_address": None,
        "customer_email": customer_obj.get("email"),
        "customer_name": customer_obj.get("name"),
        "customer_phone": None,
        "customer_shipping": None,
        "customer_tax_exempt": "none",
        "customer_tax_ids": [],
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "due_date": None,
        "effective_at": None,
        "ending_balance": None,
        "footer": None,
        "from_invoice": None,
        "hosted_invoice_url": None,
        "invoice_pdf": None,
        "issuer": {"type": "self"},
        "last_finalization_error": None,
        "latest_revision": None,
        "lines": store.list_envelope([], f"/v1/invoices/{invoice_id}/lines"),
        "livemode": False,
        "metadata": {},
        "next_payment_attempt": None,
        "number": f"{customer_obj.get('invoice_prefix') or 'SANDBOX'}-{sequence:04d}",
        "on_behalf_of": None,
        "parent": parent,
        "payment_settings": {
            "default_mandate": None,
            "payment_method_options": None,
            "payment_method_types": None,
        },
        "period_end": period[1],
        "period_start": period[0],
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "receipt_number": None,
        "rendering": None,
        "shipping_cost": None,
        "shipping_details": None,
        "starting_balance": 0,
        "statement_descriptor": None,
        "status": "draft",
        "status_transitions": {
            "finalized_at": None,
            "marked_uncollectible_at": None,
            "paid_at": None,
            "voided_at": None,
        },
        "subtotal": 0,
        "subtotal_excluding_tax": 0,
        "test_clock": None,
        "total": 0,
        "total_discount_amounts": [],
        "total_excluding_tax": 0,
        "total_pretax_credit_amounts": [],
        "total_taxes": [],
        "webhooks_delivered_at": ts,
    }


def payment_intent(
    *,
    amount: int,
    currency: str,
    customer_id: str | None,
    metadata: dict[str, str],
    description: str,
) -> Obj:
    pi_id = store.new_id("pi")
    return {
        "id": pi_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": 0,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": None,
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": "automatic",
        "client_secret": f"{pi_id}_secret_{secrets.token_urlsafe(18)}",
        "confirmation_method": "automatic",
        "created": store.now(),
        "currency": currency,
        "customer": customer_id,
        "customer_account": None,
        "description": description,
        "excluded_payment_method_types": None,
        "last_payment_error": None,
        "latest_charge": None,
        "livemode": False,
        "managed_payments": None,
        "metadata": metadata,
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": None,
        "payment_method_configuration_details": None,
        "payment_method_options": {},
        "payment_method_types": ["card"],
        "processing": None,
        "receipt_email": None,
        "review": None,
        "setup_future_usage": None,
        "shipping": None,
        "source": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "requires_payment_method",
        "transfer_data": None,
        "transfer_group": None,
    }


def charge(*, pi: Obj, card: str, succeeded: bool) -> Obj:
    ch_id = store.new_id("ch")
    return {
        "id": ch_id,
        "object": "charge",
        "amount": pi["amount"],
        "amount_captured": pi["amount"] if succeeded else 0,
        "amount_refunded": 0,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        "balance_transaction": None,
        "billing_details": {
            "address": EMPTY_ADDRESS,
            "email": None,
            "name": None,
            "phone": None,
            "tax_id": None,
        },
        "calculated_statement_descriptor": "SMARTFLOW",
        "captured": succeeded,
        "created": store.now(),
        "currency": pi["currency"],
        "customer": pi["customer"],
        "description": pi["description"],
        "disputed": False,
        "failure_balance_transaction": None,
        "failure_code": None if succeeded else "card_declined",
        "failure_message": None if succeeded else "Your card was declined.",
        "fraud_details": {},
        "livemode": False,
        "metadata": dict(pi["metadata"]),
        "on_behalf_of": None,
        "outcome": {
            "advice_code": None,
            "network_advice_code": None,
            "network_decline_code": None,
            "network_status": "approved_by_network" if succeeded else "declined_by_network",
            "reason": None if succeeded else "generic_decline",
            "risk_level": "normal",
            "seller_message": "Payment complete."
            if succeeded
            else "The bank did not return any further details with this decline.",
            "type": "authorized" if succeeded else "issuer_declined",
        },
        "paid": succeeded,
        "payment_intent": pi["id"],
        "payment_method": None,
        "payment_method_details": {
            "card": {
                "brand": "visa",
                "checks": {
                    "address_line1_check": None,
                    "address_postal_code_check": None,
                    "cvc_check": "pass",
                },
                "country": "US",
                "exp_month": 12,
                "exp_year": 2034,
                "fingerprint": "SandboxCard" + card[-4:],
                "funding": "credit",
                "last4": card[-4:],
                "network": "visa",
                "three_d_secure": None,
                "wallet": None,
            },
            "type": "card",
        },
        "receipt_email": None,
        "receipt_number": None,
        "receipt_url": None,
        "refunded": False,
        "refunds": store.list_envelope([], f"/v1/charges/{ch_id}/refunds"),
        "review": None,
        "shipping": None,
        "source": None,
        "source_transfer": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "succeeded" if succeeded else "failed",
        "transfer_data": None,
        "transfer_group": None,
    }


def refund(*, charge_obj: Obj, amount: int, reason: str | None, metadata: dict[str, str]) -> Obj:
    return {
        "id": store.new_id("re"),
        "object": "refund",
        "amount": amount,
        "balance_transaction": None,
        "charge": charge_obj["id"],
        "created": store.now(),
        "currency": charge_obj["currency"],
        "customer": charge_obj.get("customer"),
        "customer_account": None,
        "destination_details": {"card": {"type": "refund"}, "type": "card"},
        "metadata": metadata,
        "payment_intent": charge_obj.get("payment_intent"),
        "payment_method": charge_obj.get("payment_method"),
        "reason": reason,
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": "succeeded",
        "transfer_reversal": None,
    }


def event(
    *,
    type: str,
    obj: Obj,
    previous: Obj | None,
    request_id: str | None,
    idempotency_key: str | None,
) -> Obj:
    data: Obj = {"object": store.render(obj)}
    if previous is not None:
        data["previous_attributes"] = store.render(previous)
    return {
        "id": store.new_id("evt"),
        "object": "event",
        "api_version": settings.STRIPE_API_VERSION,
        "context": None,
        "created": store.now(),
        "data": data,
        "livemode": False,
        "pending_webhooks": 0,
        "request": {"id": request_id, "idempotency_key": idempotency_key},
        "type": type,
    }


def payment_method(*, card: str, customer_id: str | None) -> Obj:
    """A card PaymentMethod for one of the test cards, attached to `customer_id`."""
    return {
        "id": store.new_id("pm"),
        "object": "payment_method",
        "allow_redisplay": "unspecified",
        "billing_details": {
            "address": EMPTY_ADDRESS,
            "email": None,
            "name": None,
            "phone": None,
            "tax_id": None,
        },
        "card": {
            "brand": "visa",
            "checks": {
                "address_line1_check": None,
                "address_postal_code_check": None,
                "cvc_check": "pass",
            },
            "country": "US",
            "display_brand": "visa",
            "exp_month": 12,
            "exp_year": 2034,
            "fingerprint": "SandboxCard" + card[-4:],
            "funding": "credit",
            "generated_from": None,
            "last4": card[-4:],
            "networks": {"available": ["visa"], "preferred": None},
            "regulated_status": "unregulated",
            "three_d_secure_usage": {"supported": True},
            "wallet": None,
        },
        "created": store.now(),
        "customer": customer_id,
        "customer_account": None,
        "livemode": False,
        "metadata": {},
        "type": "card",
        "_card": card,
    }


# --- Display ----------------------------------------------------------------------------

_SYMBOLS = {"gbp": "£", "usd": "$", "eur": "€"}
_ZERO_DECIMAL = {"jpy", "krw", "vnd", "clp", "isk", "huf"}


def format_amount(amount: int, currency: str) -> str:
    """12.5 GBP in pence -> "£12.50", the way the checkout page shows it."""
    currency = (currency or "").lower()
    value = f"{amount:,}" if currency in _ZERO_DECIMAL else f"{amount / 100:,.2f}"
    sign, value = ("-", value[1:]) if value.startswith("-") else ("", value)
    if symbol := _SYMBOLS.get(currency):
        return f"{sign}{symbol}{value}"
    return f"{sign}{value} {currency.upper()}"
