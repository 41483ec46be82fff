"""Drive the offline Stripe sandbox: renewals, failures, refunds, the clock, deliveries."""

from __future__ import annotations

import json
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from devtools.stripe_sandbox import actions, collection, disputes, objects, store
from devtools.stripe_sandbox.delivery import deliver_pending
from devtools.stripe_sandbox.store import StripeError


class Command(BaseCommand):
    help = (
        "Drive the offline Stripe sandbox (STRIPE_SANDBOX on). Subcommands: "
        "renew --email E (the renewal is paid), fail --email E (the renewal payment fails: "
        "past_due), refund --email E (refund the latest charge), delete --email E (cancel "
        "the subscription now), advance --days N / --hours N (move the sandbox clock; what "
        "falls due happens at its own time: renewals, retries of failed invoices and the "
        "end of dunning, period-end cancellations, expiry of incomplete subscriptions), "
        "pay-invoice --email E (pay the customer's open invoice with their card), load FILE "
        "(store Stripe objects from JSON: a list or a list envelope), deliver (send pending "
        "webhook deliveries now), dispute --email E [--close won|lost] (open a dispute on "
        "the latest charge, or close it), coupon --code CODE (--percent-off N | --amount-off "
        "PENCE) [--duration once|forever|repeating --months N] (a coupon and its promotion "
        "code, to type on the Checkout page). Events are delivered by the task worker (manage.py "
        "worker) unless you run `deliver`."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        for name, text in (
            ("renew", "Renew the customer's subscription now; the payment succeeds."),
            ("fail", "Renew the customer's subscription now; the payment fails (past_due)."),
            ("refund", "Refund the customer's latest charge in full."),
            ("delete", "Cancel the customer's subscription now."),
        ):
            cmd = sub.add_parser(name, help=text)
            cmd.add_argument("--email", required=True, help="The Stripe customer's email.")
        advance = sub.add_parser("advance", help="Move the sandbox clock on by N days/hours.")
        advance.add_argument("--days", type=int, default=0)
        advance.add_argument("--hours", type=int, default=0)
        pay = sub.add_parser(
            "pay-invoice", help="Pay the customer's open invoice with their default card."
        )
        pay.add_argument("--email", required=True, help="The Stripe customer's email.")
        load = sub.add_parser("load", help="Store Stripe objects from a JSON file.")
        load.add_argument("file", type=Path)
        sub.add_parser("deliver", help="Attempt every pending webhook delivery now.")
        dispute = sub.add_parser(
            "dispute",
            help="Open a dispute on the customer's latest charge, or with --close decide it.",
        )
        dispute.add_argument("--email", required=True, help="The Stripe customer's email.")
        dispute.add_argument(
            "--close", choices=["won", "lost"], help="Close the open dispute: won or lost."
        )

        coupon = sub.add_parser(
            "coupon", help="Create a coupon and the promotion code that redeems it."
        )
        coupon.add_argument("--code", required=True, help="What the customer types.")
        amount = coupon.add_mutually_exclusive_group(required=True)
        amount.add_argument("--percent-off", type=float, help="Percent off (0-100].")
        amount.add_argument(
            "--amount-off", type=int, help="Amount off in minor units (pence), BILLING_CURRENCY."
        )
        coupon.add_argument("--duration", choices=["once", "repeating", "forever"], default="once")
        coupon.add_argument("--months", type=int, help="With --duration repeating: months.")
        coupon.add_argument("--max-redemptions", type=int, help="How many times it can be used.")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.STRIPE_SANDBOX:
            raise CommandError("The Stripe sandbox is off (STRIPE_SANDBOX): nothing to drive.")
        action = options["action"]
        try:
            summary = getattr(self, f"_{action.replace('-', '_')}")(**options)
        except StripeError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(summary)

    def _subscription(self, email: str) -> dict[str, Any]:
        customer = actions.customer_by_email(email)
        return actions.subscription_latest(customer["id"])

    def _renew(self, *, email: str, **_: Any) -> str:
        sub = actions.subscription_renew(self._subscription(email)["id"], fail=False)
        if sub["status"] == "canceled":
            return f"{sub['id']} of {email} was set to cancel at period end: it has ended."
        return f"Renewed {sub['id']} for {email}: paid, status {sub['status']}, {self._until(sub)}."

    def _fail(self, *, email: str, **_: Any) -> str:
        sub = actions.subscription_renew(self._subscription(email)["id"], fail=True)
        if sub["status"] == "canceled":
            return f"{sub['id']} of {email} was set to cancel at period end: it has ended."
        return (
            f"Renewal of {sub['id']} for {email} failed: "
            f"status {sub['status']}, {self._until(sub)}."
        )

    def _refund(self, *, email: str, **_: Any) -> str:
        customer = actions.customer_by_email(email)
        charges = [
            c
            for c in store.all_of("charge")
            if c["customer"] == customer["id"] and c["status"] == "succeeded"
        ]
        if not charges:
            raise CommandError(f"{email} has no successful charge to refund.")
        charge = charges[0]
        if charge["refunded"]:
            return f"Charge {charge['id']} of {email} is refunded already: nothing to do."
        refund = actions.refund_create(charge_id=charge["id"])
        amount = objects.format_amount(refund["amount"], refund["currency"])
        return f"Refunded {amount} of charge {charge['id']} ({email}): {refund['id']}."

    def _delete(self, *, email: str, **_: Any) -> str:
        customer = actions.customer_by_email(email)
        try:
            sub = actions.subscription_latest(customer["id"])
        except StripeError:
            return f"{email} has no live subscription: nothing to cancel."
        actions.subscription_cancel(sub["id"])
        return f"Canceled {sub['id']} of {email}."

    def _advance(self, *, days: int, hours: int, **_: Any) -> str:
        if days < 0 or hours < 0 or days + hours == 0:
            raise CommandError("Give --days N and/or --hours N (at least one, none negative).")
        report = actions.clock_advance(days=days, hours=hours)
        moment = store.ts_datetime(store.now())
        moved = " and ".join(
            text for n, text in ((days, f"{days} day(s)"), (hours, f"{hours} hour(s)")) if n
        )
        return (
            f"Sandbox clock moved {moved} to {moment:%Y-%m-%d %H:%M} UTC: "
            f"{report.renewed} renewed, {report.failed} failed, {report.canceled} ended, "
            f"{report.retried} retried ({report.recovered} recovered), "
            f"{report.expired} expired, {report.settled} bank debit(s) settled, "
            f"{report.retries} webhook {'retry' if report.retries == 1 else 'retries'} due."
        )

    def _pay_invoice(self, *, email: str, **_: Any) -> str:
        customer = actions.customer_by_email(email)
        try:
            invoice = collection.invoice_open_of(customer["id"])
        except StripeError:
            return f"{email} has no open invoice: nothing to pay."
        amount = objects.format_amount(invoice["amount_remaining"], invoice["currency"])
        # The customer's saved card, off-session: 3184 still asks for 3-D Secure.
        outcome = collection.invoice_pay(invoice["id"], on_session=False)
        if outcome == collection.PAID:
            return f"Paid invoice {invoice['id']} of {email}: {amount}."
        if outcome == collection.ACTION_REQUIRED:
            return (
                f"Invoice {invoice['id']} of {email} ({amount}) needs 3-D Secure: "
                f"the customer approves it at {invoice['hosted_invoice_url']}"
            )
        return f"Payment of invoice {invoice['id']} of {email} ({amount}) was declined."

    def _load(self, *, file: Path, **_: Any) -> str:
        try:
            loaded = json.loads(file.read_text())
        except (OSError, ValueError) as exc:
            raise CommandError(f"Cannot read {file}: {exc}") from exc
        items = loaded.get("data") if isinstance(loaded, dict) else loaded
        if not isinstance(items, list) or not all(
            isinstance(o, dict) and o.get("id") and o.get("object") for o in items
        ):
            raise CommandError("Expected a list of Stripe objects (each with id and object).")
        with transaction.atomic():
            for obj in items:
                store.save(obj)
        return f"Loaded {len(items)} object(s) from {file}."

    def _deliver(self, **_: Any) -> str:
        report = deliver_pending()
        return f"Delivered {report.succeeded} event(s); {report.failed} attempt(s) failed."

    def _dispute(self, *, email: str, close: str | None = None, **_: Any) -> str:
        customer = actions.customer_by_email(email)
        charges = [
            c
            for c in store.all_of("charge")
            if c["customer"] == customer["id"] and c["status"] == "succeeded"
        ]
        if not charges:
            raise CommandError(f"{email} has no successful charge to dispute.")
        charge = charges[0]
        if close is None:
            dispute, new = disputes.dispute_open(charge["id"])
            amount = objects.format_amount(dispute["amount"], dispute["currency"])
            if not new:
                return f"Charge {charge['id']} of {email} is disputed already: {dispute['id']}."
            return (
                f"Opened dispute {dispute['id']} ({amount}, {dispute['reason']}) on charge "
                f"{charge['id']} of {email}: needs_response."
            )
        found = [d for c in charges for d in disputes.disputes_of(c["id"])]
        if not found:
            raise CommandError(f"{email} has no dispute to close.")
        open_ = [d for d in found if d["status"] in disputes.OPEN]
        dispute, changed = disputes.dispute_close((open_ or found)[0]["id"], outcome=close)
        if not changed:
            return f"Dispute {dispute['id']} of {email} is {dispute['status']} already."
        return f"Closed dispute {dispute['id']} on charge {dispute['charge']} of {email}: {close}."

    def _coupon(
        self,
        *,
        code: str,
        percent_off: float | None,
        amount_off: int | None,
        duration: str,
        months: int | None,
        max_redemptions: int | None,
        **_: Any,
    ) -> str:
        from devtools.stripe_sandbox import discounts
        from devtools.stripe_sandbox.api import coupons

        if (duration == "repeating") != (months is not None):
            raise CommandError("--months N goes with --duration repeating (and only with it).")
        if existing := discounts.promotion_code_find(code, active_only=True):
            return f"Promotion code {existing['code']} exists already: {existing['id']}."
        params: dict[str, Any] = {"duration": duration}
        if percent_off is not None:
            params["percent_off"] = str(percent_off)
        else:
            params.update(amount_off=str(amount_off), currency=settings.BILLING_CURRENCY)
        if months is not None:
            params["duration_in_months"] = str(months)
        with transaction.atomic():
            coupon = coupons.coupon_create(params)
            promo_params: dict[str, Any] = {
                "code": code,
                "promotion": {"type": "coupon", "coupon": coupon["id"]},
            }
            if max_redemptions:
                promo_params["max_redemptions"] = str(max_redemptions)
            promo = coupons.promotion_code_create(promo_params)
        return (
            f"Created coupon {coupon['id']} ({discounts.coupon_describe(coupon)}) and "
            f"promotion code {promo['code']} ({promo['id']})."
        )

    @staticmethod
    def _until(sub: dict[str, Any]) -> str:
        end = max(i["current_period_end"] for i in sub["items"]["data"])
        return f"period ends {store.ts_datetime(end):%Y-%m-%d}"
