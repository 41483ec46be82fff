from __future__ import annotations

from typing import Any

import stripe
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from djstripe.models import Price

from billing.plans import PLAN_INFO, RECURRING, Interval, lookup_key
from billing.portal import configuration_sync
from billing.stripe_api import StripeError, api_kwargs


class Command(BaseCommand):
    help = (
        "Create any missing Stripe Products and Prices for the plans that are sold (lookup "
        "keys <plan>_monthly, <plan>_annual and <plan>_oneoff; Starter is free and gets none) "
        "in the configured Stripe account or the sandbox, "
        "and sync them into dj-stripe; then the Billing Portal configuration (as the "
        "billing_portal command). Safe to run twice. --check only reports differences."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--check", action="store_true", help="Report, change nothing.")
        parser.add_argument(
            "--sandbox-only",
            action="store_true",
            help="Do nothing unless the offline sandbox is on (used by `make run`).",
        )

    def handle(
        self, *args: Any, check: bool = False, sandbox_only: bool = False, **options: Any
    ) -> None:
        if sandbox_only and not settings.STRIPE_SANDBOX:
            self.stdout.write("Stripe sandbox is off: catalog left alone.")
            return
        if not settings.BILLING_ENABLED:
            raise CommandError(
                "Stripe is not configured: set STRIPE_TEST_SECRET_KEY or use the sandbox."
            )
        currency = settings.BILLING_CURRENCY
        wanted = {
            lookup_key(plan, interval): (plan, interval, _amount(plan, interval))
            for plan, info in PLAN_INFO.items()
            if info.sold
            for interval in Interval
        }
        try:
            existing = {
                p["lookup_key"]: p
                for p in stripe.Price.list(
                    lookup_keys=list(wanted),
                    active=True,
                    expand=["data.product"],
                    limit=100,
                    **api_kwargs(),
                ).auto_paging_iter()
            }
            products = self._products()
            created = differs = 0
            for key, (plan, interval, amount) in wanted.items():
                price = existing.get(key)
                if price is None:
                    if check:
                        self.stdout.write(f"missing  {key}")
                        differs += 1
                        continue
                    product = products.get(plan) or self._product_create(plan)
                    products[plan] = product
                    params: dict[str, Any] = {
                        "product": product["id"],
                        "unit_amount": amount,
                        "currency": currency,
                        "lookup_key": key,
                        # Whether the amount includes VAT; fixed once a price is used.
                        "tax_behavior": settings.BILLING_TAX_BEHAVIOR,
                        "metadata": {"plan": plan, "interval": interval},
                    }
                    if interval in RECURRING:
                        params["recurring"] = {"interval": RECURRING[interval]}
                    price = stripe.Price.create(**params, **api_kwargs())
                    created += 1
                    self.stdout.write(f"created  {key}  {price['id']}")
                elif _differs(price, amount, currency, interval):
                    differs += 1
                    self.stdout.write(
                        f"differs  {key}  {price['id']}: "
                        f"{price['unit_amount']} {price['currency']} "
                        f"(expected {amount} {currency}); change it in Stripe if intended"
                    )
                if not check:
                    Price.sync_from_stripe_data(price)
        except StripeError as exc:
            raise CommandError(f"Stripe refused: {exc}") from exc
        verb = "checked" if check else "synced"
        self.stdout.write(f"{len(wanted)} prices {verb}: {created} created, {differs} differ.")
        # The portal is part of what is sold: without the app's configuration no portal
        # session opens (billing/portal.py).
        try:
            self.stdout.write(configuration_sync(check=check).summary())
        except StripeError as exc:
            raise CommandError(f"Stripe refused the portal configuration: {exc}") from exc

    def _products(self) -> dict[str, stripe.Product]:
        found: dict[str, stripe.Product] = {}
        for product in stripe.Product.list(
            active=True, limit=100, **api_kwargs()
        ).auto_paging_iter():
            plan = (product.to_dict().get("metadata") or {}).get("plan")
            if plan in PLAN_INFO and plan not in found:
                found[plan] = product
        return found

    def _product_create(self, plan: str) -> stripe.Product:
        info = PLAN_INFO[plan]
        return stripe.Product.create(
            name=f"SmartFlow {info.plan.label}",
            description=info.description,
            metadata={"plan": plan},
            **api_kwargs(),
        )


def _amount(plan: str, interval: str) -> int:
    amount = PLAN_INFO[plan].amount(interval)
    assert amount is not None, f"{plan} is not sold"
    return amount


def _differs(price: stripe.Price, amount: int, currency: str, interval: str) -> bool:
    data = price.to_dict()
    recurring = (data.get("recurring") or {}).get("interval")
    return (
        data.get("unit_amount") != amount
        or data.get("currency") != currency
        or recurring != RECURRING.get(interval)
    )
