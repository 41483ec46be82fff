"""What each plan costs: the synced Prices that sell it, for the pricing and landing pages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from django.conf import settings
from djstripe.models import Price

from billing.offers import Kind, Offer, Refusal
from billing.plans import (
    FEATURES,
    PLAN_INFO,
    RECURRING,
    Interval,
    Plan,
    lookup_key,
    price_plan,
)


def price_table() -> dict[tuple[str, str], Price]:
    """The synced Prices that sell each plan, by (plan, interval), in one query."""
    keys = [lookup_key(p, i) for p in Plan.values for i in Interval.values]
    configured = list(settings.STRIPE_PRICE_IDS.values())
    table: dict[tuple[str, str], Price] = {}
    for price in Price.objects.filter(active=True, lookup_key__in=keys) | Price.objects.filter(
        id__in=configured
    ):
        sold = price_plan(price_id=price.id, lookup_key=price.lookup_key)
        if sold and (sold not in table or price.id in configured):
            table[sold] = price
    return table


def vat_words(*, tax_behavior: str | None) -> str:
    """What a price says about VAT while Stripe Tax is on (BILLING_AUTOMATIC_TAX): "+ VAT"
    for a price before tax, "incl. VAT" for one that includes it; "" with tax off.

    The Price's own `tax_behavior` decides (Stripe's, fixed once used); a Price that
    leaves it unspecified follows BILLING_TAX_BEHAVIOR. The one home of this wording:
    every page that shows a price uses it (the `vat_words` template tag)."""
    if not settings.BILLING_AUTOMATIC_TAX:
        return ""
    if tax_behavior not in ("exclusive", "inclusive"):
        tax_behavior = settings.BILLING_TAX_BEHAVIOR
    return "incl. VAT" if tax_behavior == "inclusive" else "+ VAT"


def total_vat_words(*, tax: int) -> str:
    """What an amount Stripe charges (an invoice or its preview, the tax already in it)
    says about VAT while Stripe Tax is on: "incl. {tax} VAT", `{tax}` standing for the
    formatted `tax`; "" with tax off or no VAT charged (a customer outside the UK)."""
    return "incl. {tax} VAT" if settings.BILLING_AUTOMATIC_TAX and tax > 0 else ""


def annual_saving(prices: dict[tuple[str, str], Price], plan: str) -> int | None:
    """What a year at the annual price saves against twelve monthly payments, in minor
    units (FlowKit: 12 × £49.00 − £490.00 = £98.00), from the synced Prices; None when
    either is missing, in another currency, or the year saves nothing."""
    monthly, annual = prices.get((plan, Interval.MONTHLY)), prices.get((plan, Interval.ANNUAL))
    if monthly is None or annual is None or monthly.currency != annual.currency:
        return None
    if monthly.unit_amount is None or annual.unit_amount is None:
        return None
    saving = 12 * monthly.unit_amount - annual.unit_amount
    return saving if saving > 0 else None


def months_free(prices: dict[tuple[str, str], Price], plan: str) -> int | None:
    """How many monthly payments a year saves (FlowKit: £98.00 is two of £49.00), from the
    synced Prices; None unless the saving is a whole number of months."""
    saving = annual_saving(prices, plan)
    monthly = prices.get((plan, Interval.MONTHLY))
    if saving is None or monthly is None or not monthly.unit_amount:
        return None
    months, rest = divmod(saving, monthly.unit_amount)
    return months if months and not rest else None


@dataclass(frozen=True)
class PriceOption:
    """One way to pay for a plan, as the pricing page shows it beside the others."""

    interval: Interval
    price: Price | None
    offer: Offer | None
    # Why a signed-in customer cannot buy it, in their words (billing.offers.choices_for).
    refusal: Refusal | None
    # The choice's name: "Monthly", "Yearly", "Pay once".
    label: str
    # What the amount buys, after it: "per month", "per year", "once".
    per: str
    # What the choice means, in a few words.
    meaning: str
    # Free days a subscription bought here starts with (billing.offers.trial_days): the
    # page then says "14 days free, then £49.00/month" and "£0.00 due today".
    trial_days: int = 0


def _meaning(interval: Interval, *, free_months: int | None) -> str:
    if interval == Interval.MONTHLY:
        return "Billed every month. Cancel at any time."
    if interval == Interval.ANNUAL:
        if free_months:
            return f"{free_months} month{'s' if free_months != 1 else ''} free. Renews yearly."
        return "Billed once a year. Renews yearly."
    return "Yours for good: nothing renews."


def _trial_days(choice: Offer | Refusal | None, interval: Interval, days: int) -> int:
    """The trial a purchase here would start with: a new subscription only (a Checkout,
    not a switch of the one the customer has), or any subscription for a visitor."""
    if interval not in RECURRING or not days:
        return 0
    if choice is None or (isinstance(choice, Offer) and choice.kind == Kind.CHECKOUT):
        return days
    return 0


_T = TypeVar("_T")


def _of_type(choice: object, kind: type[_T]) -> _T | None:
    return choice if isinstance(choice, kind) else None


_LABEL = {Interval.MONTHLY: "Monthly", Interval.ANNUAL: "Yearly", Interval.ONEOFF: "Pay once"}
_PER = {Interval.MONTHLY: "per month", Interval.ANNUAL: "per year", Interval.ONEOFF: "once"}


def plan_rows(
    choices: dict[tuple[str, str], Offer | Refusal] | None = None,
    *,
    trial_days: int = 0,
) -> list[dict[str, Any]]:
    """One row per plan, lowest first: its info, its three ways to pay side by side
    (monthly, yearly, once: PriceOption, with the synced Price or None and the Offer or
    None), what a year saves against twelve months, and the features it is the first plan
    to include. A free plan has no prices (Starter is not sold, even where a Stripe
    account still has Prices for it). `choices` (billing.offers.choices_for) are what a
    signed-in user may buy, or why not."""
    prices = price_table()
    choices = choices or {}
    return [
        {
            "info": info,
            "prices": [
                PriceOption(
                    interval=i,
                    price=prices.get((plan, i)),
                    offer=_of_type(choices.get((plan, i.value)), Offer),
                    refusal=_of_type(choices.get((plan, i.value)), Refusal),
                    label=_LABEL[i],
                    per=_PER[i],
                    meaning=_meaning(i, free_months=months_free(prices, plan)),
                    trial_days=_trial_days(choices.get((plan, i.value)), i, trial_days),
                )
                for i in (Interval.MONTHLY, Interval.ANNUAL, Interval.ONEOFF)
                if info.sold
            ],
            "annual_saving": annual_saving(prices, plan) if info.sold else None,
            "features": [f for f, lowest in FEATURES.items() if lowest == plan],
        }
        for plan, info in PLAN_INFO.items()
    ]
