"""What the customer is told about money is what Stripe charges (issue 27, "Proof"): a
property-based, stateful test that drives one customer through the offline Stripe sandbox,
its webhooks delivered as Stripe delivers them (late, shuffled, some twice: the
`stripe` mode with a drawn seed) and the worker's due tasks run, and checks after every
step that the account standing agrees with what the sandbox charged.

Actions drawn (rules of `StandingMachine`; each example first draws VAT on or off and a
14-day trial on or off, and the delivery seed):
- subscribe monthly or annual to FlowKit or LaunchPack at Checkout, with each test card
  (4242 pays; 0341 pays now and declines every later payment; 3184 asks for 3-D Secure on
  every payment, approved at Checkout; 3155 asks once, at set-up), with or without a
  20 %-off-once promotion code (and with the GB billing address when VAT is on);
- a one-off purchase by card; a Bacs debit (monthly or one-off; the account that is
  paid 3 days later, or the one that fails), with VAT off only (the sandbox hides Bacs
  when tax is on);
- upgrade (a higher plan, or monthly to annual) through the app's confirm page;
  downgrade at the period end; cancel at the period end; resume;
- update the card in the Billing Portal (to 4242, 0341 or 3184);
- pay the open invoice the billing page links to, on the sandbox's invoice page
  (approving 3-D Secure when asked);
- advance the sandbox clock (1, 3, 8 or 31 days);
- staff comp a plan for some days (the comp expires on the clock, as the sandbox's
  `advance` passes its end), and revoke it;
- staff refund the latest charge; a dispute opened on it (and lost).

Invariants, checked after every step (each a function below, named for what it checks):
- `no_money_taken_untold_or_for_nothing`: every charge the sandbox took since the last
  step has an amount the customer was shown (Checkout's total, the upgrade quote, the
  next charge, the invoice page, a message), and buys something: the customer holds a
  paid plan afterwards, or the charge is refunded.
- `next_charge_is_what_stripe_charges`: the next charge the standing keeps (NextCharge,
  billing/standing.py) is shown on the billing page; when the clock passes its date the
  sandbox invoiced that subscription that amount on that date.
- `nothing_unheld_is_shown_as_owned`: every paid plan above the customer's access is
  either offered or refused with a reason (billing/offers.py `choices_for`), and no such
  refusal says the customer has it; a plan only comped until a date is not refused as
  held (defect 6); a plan whose Bacs debit is processing is not offered again (defect 7).
- `plan_is_the_decision_on_stripes_state`: the plan on the user is `plan_decide` on the
  synced Stripe state at Stripe's clock (billing/entitlements.py).
- `one_message_per_transition`: a step sends at most one message per transition (a
  customer's own action: at most one in all), none contradicting another (payment failed
  and please confirm for the same attempt; the plan ended beside a payment message), with
  amounts equal to the invoice's.

A failing example prints its steps (the machine's rules with their arguments) and the
delivery seed (`note`); Hypothesis prints how to reproduce it (the bounded run is
derandomized: it fails the same way every time; the long run prints a
`@reproduce_failure` blob, and `--hypothesis-seed=N` replays a whole run). Runs only on PostgreSQL
(the app's row locks and JSON queries are production's there); on SQLite it is skipped.

`test_the_sequences_that_broke_the_standing` replays, on every run, the shortest
sequences found that broke the standing on main (SEQUENCES): a bounded random run seldom
reaches the dunning end or a comp.

Bounded in `make test` (the default profile: a few examples of a few steps); at length:

    HYPOTHESIS_PROFILE=long DATABASE_URL=postgres://... .venv/bin/pytest \
        tests/billing/test_standing_properties.py

KNOWN_OPEN names the ways an invariant still breaks on main (the first argument of each
`_fail`), with the issue-27 defects that fix them: each is still checked, but a break is
only noted in the example's output while listed; the merger empties it as the fixes land.
STANDING_STRICT=1 fails on every break now, listed or not.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.test import Client, override_settings
from django.utils import timezone
from django_tasks_db.models import DBTaskResult
from hypothesis import HealthCheck, settings
from hypothesis import note as hypothesis_note
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from accounts.models import User
from billing.entitlements import facts_load, plan_decide
from billing.models import NextCharge, PlanOverride
from billing.money import money
from billing.offers import Refusal, choices_for, holdings_of
from billing.overrides import override_grant, override_revoke
from billing.plans import PLAN_INFO, Plan, plan_rank
from devtools.stripe_sandbox import store
from devtools.stripe_sandbox.delivery import deliver_pending
from onboarding.models import OnboardingMessage
from tests.helpers import PASSWORD
from tests.sandbox_app import app_transport

# Slow (seconds a step): `make test` runs it, `make test-fast` leaves it out.
pytestmark = [pytest.mark.django_db, pytest.mark.slow]

# Invariant name -> the issue-27 defects that make it fail on main today. Checked, but a
# failure is only noted while listed here; empty it as the fixes land.
# How long Stripe leaves a renewal invoice as a draft before it charges it.
DRAFT_HOUR = 3600

KNOWN_OPEN: dict[str, tuple[int, ...]] = {}
STRICT = bool(os.environ.get("STANDING_STRICT"))

PROFILES: dict[str, dict[str, Any]] = {
    # `make test`: bounded (a slow shared machine runs it twice, SQLite and PostgreSQL).
    "default": {"max_examples": 4, "stateful_step_count": 6, "derandomize": True},
    # The documented long run: many more, longer and random sequences (a quarter of an
    # hour on two cores); a failure prints the @reproduce_failure blob that replays it.
    "long": {
        "max_examples": 100,
        "stateful_step_count": 20,
        "derandomize": False,
        "print_blob": True,
    },
}
PROFILE = PROFILES[os.environ.get("HYPOTHESIS_PROFILE", "default")]

CARDS = {
    "4242": "4242 4242 4242 4242",
    "0341": "4000 0000 0000 0341",
    "3184": "4000 0027 6000 3184",
    "3155": "4000 0025 0000 3155",
}
PAID_PLANS = [Plan.FLOWKIT, Plan.LAUNCHPACK]
CODE = "SPRING20"
# Words a refusal uses to say the customer has the plan.
OWNED_WORDS = re.compile(
    r"this is your plan|you own|you already have|includes everything|included", re.I
)
# Tasks the test runs as the worker would, when due: not the webhook processing (done by
# the transport) nor the sandbox's own deliveries (done by deliver_pending).
WORKER_TASKS = ("plan_grace_recheck", "overrides_sweep", "onboarding_message_send")


class InvariantBroken(AssertionError):
    pass


def note(text: str) -> None:
    """Hypothesis's `note` (printed with a failing example), or print outside a
    Hypothesis run (the replayed sequences below; pytest shows it with a failure)."""
    try:
        hypothesis_note(text)
    except InvalidArgument:
        print(text)


def _path(url: str) -> str:
    return url.removeprefix("http://testserver")


def _text(response: Any) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def _ts(moment: datetime) -> int:
    return int(moment.timestamp())


def _stripe_now() -> datetime:
    """Stripe's clock: the sandbox's (it only ever runs ahead of ours)."""
    return max(timezone.now(), datetime.fromtimestamp(store.now(), tz=UTC))


class StandingMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        self._settings: Any = None
        self.client = Client()
        self.user = User.objects.create_user("standing@example.com", PASSWORD)
        self.staff = User.objects.create_superuser("staff-standing@example.com", PASSWORD)
        self.client.force_login(self.user)
        self.tax = False
        self.step = "start"
        self.customer_action = False
        # Amounts the customer was shown (pages and messages), over the whole story.
        self.told: set[int] = set()
        self.charges_seen: set[str] = set()
        self.messages_seen: set[int] = set()
        # Bacs checkouts completed unpaid: (plan, session), while the debit is processing.
        self.bacs_pending: list[tuple[str, dict[str, Any]]] = []

    # --- set-up -----------------------------------------------------------------------

    @initialize(
        tax=st.booleans(),
        trial=st.booleans(),
        seed=st.integers(min_value=0, max_value=99_999),
        plan=st.sampled_from(PAID_PLANS),
        interval=st.sampled_from(["monthly", "annual"]),
        card=st.sampled_from(list(CARDS)),
        code=st.booleans(),
    )
    def setup(
        self, tax: bool, trial: bool, seed: int, plan: str, interval: str, card: str, code: bool
    ) -> None:
        """VAT, trial and the delivery seed for the whole example, then a first
        subscription (every example starts from a paying customer)."""
        note(
            f"delivery STRIPE_SANDBOX_SEED={seed}, VAT {'on' if tax else 'off'}, "
            f"trial {'14 days' if trial else 'off'}"
        )
        self.tax = tax
        self._settings = override_settings(
            STRIPE_SANDBOX_DELIVERY="stripe",
            STRIPE_SANDBOX_SEED=seed,
            BILLING_AUTOMATIC_TAX=tax,
            BILLING_TRIAL_DAYS=14 if trial else 0,
        )
        self._settings.enable()
        self.subscribe(plan, interval, card, code)

    def teardown(self) -> None:
        if self._settings is not None:
            self._settings.disable()
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)

    # --- plumbing ---------------------------------------------------------------------

    def _begin(self, step: str, *, customer: bool = True) -> None:
        self.step = step
        self.customer_action = customer
        self._before = {
            c.subscription_id: (c.amount_due, c.due_at)
            for c in NextCharge.objects.filter(user=self.user)
        }
        self.told.update(amount for amount, _ in self._before.values())

    def _settle(self) -> None:
        """Deliver every pending webhook (Stripe's order, with duplicates) and run the
        worker's due tasks, until nothing is left."""
        for _ in range(20):
            report = deliver_pending(transport=app_transport(self.client))
            assert report.failed == 0, f"{self.step}: a webhook delivery failed: {report}"
            if not self._run_due_tasks() and not report.succeeded:
                return

    def _run_due_tasks(self) -> int:
        ran = 0
        for row in DBTaskResult.objects.filter(
            status="READY", run_after__lte=timezone.now()
        ).order_by("enqueued_at"):
            if not row.task_path.endswith(WORKER_TASKS):
                continue
            task = row.task
            result = row.task_result
            value = task.call(*result.args, **result.kwargs)
            row.set_successful(value)
            ran += 1
        return ran

    def _customer_id(self) -> str | None:
        found = store.select("customer", lambda c: c.get("email") == self.user.email)
        return found[0]["id"] if found else None

    def _charged(self) -> bool:
        """Whether the customer has a successful charge not yet refunded or disputed."""
        cus = self._customer_id()
        return cus is not None and any(
            c.get("status") == "succeeded" and not c.get("refunded") and not c.get("disputed")
            for c in store.select("charge", lambda c: c.get("customer") == cus)
        )

    def _checkout(self, plan: str, interval: str) -> str | None:
        """The app's checkout for `plan` (`interval`): the sandbox Checkout's path, or
        None when the app refused or sent the customer to the upgrade instead."""
        started = self.client.post("/billing/checkout/", {"plan": plan, "interval": interval})
        if started.status_code not in (302, 303):
            note(f"  checkout {plan} {interval} refused: {started.status_code}")
            return None
        location = _path(started["Location"])
        if not location.startswith("/sandbox/checkout/"):
            note(f"  checkout {plan} {interval} -> {location}")
            return None
        return location

    def _pay_checkout(self, location: str, card: str, *, code: bool) -> None:
        form = {"card_number": CARDS[card], "promotion_code": CODE if code else ""}
        if self.tax:
            form["country"] = "GB"
        paid = self.client.post(location, form)
        if paid.status_code == 200 and "authenticat" in paid.content.decode().lower():
            paid = self.client.post(location, {**form, "authenticate": "approve"})
        session = store.get(location.rstrip("/").split("/")[-1], "checkout.session")
        if session.get("status") == "complete":
            self.told.add(int(session.get("amount_total") or 0))
        else:
            note(f"  checkout not completed ({paid.status_code})")

    # --- customer actions -------------------------------------------------------------

    @rule(
        plan=st.sampled_from(PAID_PLANS),
        interval=st.sampled_from(["monthly", "annual"]),
        card=st.sampled_from(list(CARDS)),
        code=st.booleans(),
    )
    def subscribe(self, plan: str, interval: str, card: str, code: bool) -> None:
        self._begin(f"subscribe {plan} {interval} card {card} code {code}")
        location = self._checkout(plan, interval)
        if location:
            self._pay_checkout(location, card, code=code)
        self._settle()

    @rule(plan=st.sampled_from(PAID_PLANS), card=st.sampled_from(["4242", "3184"]))
    def one_off(self, plan: str, card: str) -> None:
        self._begin(f"one-off {plan} card {card}")
        location = self._checkout(plan, "oneoff")
        if location:
            self._pay_checkout(location, card, code=False)
        self._settle()

    @rule(
        plan=st.sampled_from(PAID_PLANS),
        interval=st.sampled_from(["monthly", "oneoff"]),
        account=st.sampled_from(["00012345", "33333335"]),
    )
    def bacs(self, plan: str, interval: str, account: str) -> None:
        self._begin(f"Bacs {plan} {interval} account {account}")
        if self.tax:
            note("  Bacs is not offered while VAT is on")
            return
        location = self._checkout(plan, interval)
        if location:
            self.client.post(
                f"{location.rstrip('/')}/bank-debit/",
                {"sort_code": "10-88-00", "account_number": account},
            )
            session = store.get(location.rstrip("/").split("/")[-1], "checkout.session")
            self.told.add(int(session.get("amount_total") or 0))
            if session.get("status") == "complete":
                self.bacs_pending.append((plan, session))
        self._settle()

    @rule(plan=st.sampled_from(PAID_PLANS), interval=st.sampled_from(["monthly", "annual"]))
    def upgrade(self, plan: str, interval: str) -> None:
        self._begin(f"upgrade to {plan} {interval}")
        page = self.client.get("/billing/switch/", {"plan": plan, "interval": interval})
        if page.status_code != 200:
            note(f"  upgrade refused: {page.status_code}")
            return
        quote = page.context["quote"]
        self.told.add(quote.amount_due)
        self.client.post(
            "/billing/switch/",
            {"plan": plan, "interval": interval, "quote": page.context["quote_token"]},
        )
        self._settle()

    @rule(plan=st.sampled_from(PAID_PLANS), interval=st.sampled_from(["monthly", "annual"]))
    def downgrade(self, plan: str, interval: str) -> None:
        self._begin(f"downgrade to {plan} {interval}")
        done = self.client.post("/billing/downgrade/", {"plan": plan, "interval": interval})
        note(f"  -> {done.status_code}")
        self._settle()

    @rule()
    def cancel(self) -> None:
        self._begin("cancel at period end")
        note(f"  -> {self.client.post('/billing/cancel/').status_code}")
        self._settle()

    @rule()
    def resume(self) -> None:
        self._begin("resume")
        note(f"  -> {self.client.post('/billing/resume/').status_code}")
        self._settle()

    @rule(card=st.sampled_from(["4242", "0341", "3184"]))
    def card_update(self, card: str) -> None:
        self._begin(f"update card to {card}")
        portal = self.client.post("/billing/portal/")
        if portal.status_code not in (302, 303):
            note(f"  portal refused: {portal.status_code}")
            return
        self.client.post(
            _path(portal["Location"]), {"action": "update_card", "card_number": CARDS[card]}
        )
        self._settle()

    @rule()
    def pay_open_invoice(self) -> None:
        self._begin("pay the open invoice the billing page links to")
        found = re.search(
            r"/sandbox/invoice/(in_\w+)/", self.client.get("/billing/").content.decode()
        )
        if not found:
            note("  no invoice linked")
            return
        invoice = store.get(found.group(1), "invoice")
        self.told.add(int(invoice.get("amount_remaining") or invoice.get("amount_due") or 0))
        path = f"/sandbox/invoice/{invoice['id']}/"
        self.client.post(path, {"action": "pay"})
        if store.get(invoice["id"], "invoice").get("status") == "open":
            self.client.post(path, {"action": "authenticate_approve"})
        self._settle()

    # --- the clock and staff ----------------------------------------------------------

    @rule(days=st.sampled_from([1, 3, 8, 31]))
    def advance(self, days: int) -> None:
        self._begin(f"advance the clock {days} days", customer=False)
        call_command("stripe_sandbox", "advance", "--days", str(days), stdout=StringIO())
        self._comps_expire()
        self._settle()

    def _comps_expire(self) -> None:
        """Comps live on Stripe's clock here: one whose end the clock passed has ended,
        and the worker's sweep for it is due."""
        now = _stripe_now()
        ended = PlanOverride.objects.filter(
            user=self.user, revoked_at__isnull=True, expires_at__lte=now
        )
        if ended.update(expires_at=timezone.now() - timedelta(seconds=1)):
            DBTaskResult.objects.filter(
                status="READY", task_path__endswith="overrides_sweep"
            ).update(run_after=timezone.now())

    @rule(plan=st.sampled_from(PAID_PLANS), days=st.sampled_from([5, 20]))
    def comp(self, plan: str, days: int) -> None:
        self._begin(f"staff comp {plan} for {days} days", customer=False)
        override_grant(
            user=self.user,
            plan=plan,
            reason="property test",
            expires_at=_stripe_now() + timedelta(days=days),
            notify=True,
            actor=self.staff,
        )
        self._settle()

    @rule()
    def comp_revoke(self) -> None:
        self._begin("staff revoke the comp", customer=False)
        for override in PlanOverride.objects.filter(user=self.user, revoked_at__isnull=True):
            override_revoke(override=override, actor=self.staff)
        self._settle()

    @rule()
    def refund(self) -> None:
        self._begin("staff refund the latest charge", customer=False)
        if self._charged():
            call_command("stripe_sandbox", "refund", "--email", self.user.email, stdout=StringIO())
        self._settle()

    @rule(close=st.sampled_from(["", "lost"]))
    def dispute(self, close: str) -> None:
        self._begin(f"dispute the latest charge{' (lost)' if close else ''}", customer=False)
        if self._charged():
            call_command("stripe_sandbox", "dispute", "--email", self.user.email, stdout=StringIO())
            if close:
                call_command(
                    "stripe_sandbox",
                    "dispute",
                    "--email",
                    self.user.email,
                    "--close",
                    close,
                    stdout=StringIO(),
                )
        self._settle()

    # --- invariants -------------------------------------------------------------------

    @invariant()
    def standing_holds(self) -> None:
        if self.step == "start":
            return
        self.user.refresh_from_db()
        messages = list(
            OnboardingMessage.objects.filter(user=self.user).exclude(pk__in=self.messages_seen)
        )
        self.messages_seen.update(m.pk for m in messages)
        # What the outbox dropped at send time as no longer true was never sent.
        messages = [m for m in messages if m.status != OnboardingMessage.Status.SKIPPED]
        for m in messages:
            for key in ("amount_due", "amount"):
                if isinstance(m.context.get(key), int):
                    self.told.add(m.context[key])
        self.no_money_taken_untold_or_for_nothing()
        self.next_charge_is_what_stripe_charges()
        self.nothing_unheld_is_shown_as_owned()
        self.plan_is_the_decision_on_stripes_state()
        self.one_message_per_transition(messages)

    def _fail(self, key: str, what: str) -> None:
        """Break the invariant (`key` names how), unless KNOWN_OPEN lists `key`: then
        only note it, with the defects it waits for."""
        message = f"after '{self.step}': {key}: {what}"
        if key in KNOWN_OPEN and not STRICT:
            note(f"  KNOWN OPEN (issue 27, defects {KNOWN_OPEN[key]}): {message}")
            return
        raise InvariantBroken(message)

    def no_money_taken_untold_or_for_nothing(self) -> None:
        cus = self._customer_id()
        if cus is None:
            return
        new = [
            c
            for c in store.select("charge", lambda c: c.get("customer") == cus)
            if c.get("status") == "succeeded" and c["id"] not in self.charges_seen
        ]
        for charge in new:
            self.charges_seen.add(charge["id"])
            amount = int(charge["amount"])
            if amount not in self.told:
                self._fail(
                    "untold_charge",
                    f"charge {charge['id']} took {money(amount, charge['currency'])}, an "
                    f"amount the customer was never shown (shown: "
                    f"{sorted(self.told)})",
                )
            refunded = int(charge.get("amount_refunded") or 0) >= amount
            if not refunded and self.user.plan == Plan.STARTER:
                self._fail(
                    "charge_buys_nothing",
                    f"charge {charge['id']} took {money(amount, charge['currency'])} and "
                    "buys nothing: the customer is on Starter and it is not refunded",
                )

    def next_charge_is_what_stripe_charges(self) -> None:
        now = store.now()
        for sub_id, (amount, due_at) in self._before.items():
            # Stripe creates the renewal invoice at the due date as a draft and charges it
            # about an hour later (the sandbox likewise): judged once that hour is past.
            if _ts(due_at) + DRAFT_HOUR > now:
                continue
            renewals = [
                i
                for i in store.select("invoice")
                if ((i.get("parent") or {}).get("subscription_details") or {}).get("subscription")
                == sub_id
                and i.get("billing_reason") == "subscription_cycle"
                and i.get("status") != "draft"
                and abs(int(i["created"]) - _ts(due_at)) <= 2 * 86400
            ]
            if not renewals:
                sub = store.find(sub_id, "subscription") or {}
                if sub.get("status") in ("active", "trialing"):
                    self._fail(
                        "next_charge_never_invoiced",
                        f"the next charge shown, {amount} on {due_at:%Y-%m-%d}, was never "
                        f"invoiced though {sub_id} is {sub.get('status')}",
                    )
                continue
            invoice = min(renewals, key=lambda i: int(i["created"]))
            if int(invoice["amount_due"]) != amount:
                self._fail(
                    "next_charge_amount_differs",
                    f"the next charge shown was {amount} on {due_at:%Y-%m-%d}; the sandbox "
                    f"invoiced {invoice['amount_due']} ({invoice['id']})",
                )
        shown = NextCharge.objects.filter(user=self.user).first()
        sub = store.find(shown.subscription_id, "subscription") if shown else None
        if shown and sub and sub.get("status") == "active":
            page = _text(self.client.get("/billing/"))
            if money(shown.amount_due, shown.currency) not in page:
                self._fail(
                    "next_charge_not_on_page",
                    f"the billing page does not show the next charge "
                    f"{money(shown.amount_due, shown.currency)}",
                )

    def nothing_unheld_is_shown_as_owned(self) -> None:
        access = plan_rank(self.user.plan)
        for (plan, interval), choice in choices_for(self.user).items():
            if plan_rank(plan) <= access or not PLAN_INFO[plan].sold:
                continue
            if isinstance(choice, Refusal):
                if not choice.reason.strip():
                    self._fail(
                        "refusal_without_reason", f"{plan} {interval} is refused with no reason"
                    )
                if OWNED_WORDS.search(choice.reason):
                    self._fail(
                        "refused_plan_shown_as_held",
                        f"{plan} {interval} is shown as held ({choice.reason!r}) but the "
                        f"customer's access is {self.user.plan}",
                    )

        # A comp ends: what it gives is not the customer's to keep, so it may be bought.
        comped = PlanOverride.objects.filter(
            user=self.user, revoked_at__isnull=True, expires_at__gt=timezone.now()
        ).values_list("plan", flat=True)
        held = holdings_of(self.user)
        paid = max(
            (plan_rank(p) for p in (held.subscription_plan, held.oneoff_plan) if p), default=0
        )
        for (plan, interval), choice in choices_for(self.user).items():
            if (
                plan in comped
                and plan_rank(plan) > paid
                and isinstance(choice, Refusal)
                and OWNED_WORDS.search(choice.reason)
            ):
                self._fail(
                    "comped_plan_not_for_sale",
                    f"{plan} {interval} is comped until a date, not paid for, and refused "
                    f"as held: {choice.reason!r}",
                )

        for plan, session in self.bacs_pending:
            processing = [
                c
                for c in store.select("charge")
                if c.get("customer") == session.get("customer") and c.get("status") == "pending"
            ]
            if not processing:
                continue
            offered = [
                interval
                for (p, interval), choice in choices_for(self.user).items()
                if p == plan and not isinstance(choice, Refusal)
            ]
            if offered:
                self._fail(
                    "pending_payment_sold_again",
                    f"a Bacs debit for {plan} is processing, and {plan} is offered again "
                    f"({', '.join(offered)})",
                )

    def plan_is_the_decision_on_stripes_state(self) -> None:
        facts = facts_load([self.user.pk])[self.user.pk]
        decision = plan_decide(facts=facts, current=self.user.plan, now=_stripe_now())
        if decision.plan != self.user.plan:
            self._fail(
                "plan_not_the_decision",
                f"the user is on {self.user.plan}; Stripe's state at its clock gives "
                f"{decision.plan} ({decision.why})",
            )

    def one_message_per_transition(self, messages: list[OnboardingMessage]) -> None:
        emails = [m for m in messages if m.channel == OnboardingMessage.Channel.EMAIL]
        if not emails:
            return
        T = OnboardingMessage.Template
        names = [f"{m.template}({m.trigger})" for m in emails]
        if self.customer_action and len(emails) > 1:
            self._fail(
                "several_messages_for_one_action",
                f"one action sent {len(emails)} messages: {names}",
            )
        by_invoice: dict[str, set[str]] = {}
        for m in emails:
            invoice_id = m.context.get("invoice_id")
            if invoice_id:
                attempt = m.context.get("attempt_count")
                by_invoice.setdefault(f"{invoice_id}:{attempt}", set()).add(m.template)
                invoice = store.find(invoice_id, "invoice")
                told = m.context.get("amount_due")
                charged = (invoice or {}).get("amount_due"), (invoice or {}).get("amount_remaining")
                if invoice and isinstance(told, int) and told not in charged:
                    self._fail(
                        "message_amount_differs",
                        f"{m.template} says {told}; invoice {invoice_id} is "
                        f"{invoice.get('amount_due')}",
                    )
        for attempt, templates in by_invoice.items():
            if len(templates) > 1:
                self._fail(
                    "two_messages_for_one_attempt", f"attempt {attempt} sent {sorted(templates)}"
                )
        templates = {m.template for m in emails}
        payment = {T.PAYMENT_FAILED, T.PAYMENT_ACTION_REQUIRED}
        if T.PLAN_ENDED in templates:
            # A step can move the clock days at once: an attempt made inside the grace is
            # told when it happened, and "your plan has ended" follows at the grace end.
            # That is no contradiction as long as the payment message named the date the
            # features stop and promised no retry at or after it.
            for m in emails:
                if m.template not in payment:
                    continue
                ends = m.context.get("plan_ends_at")
                retry = m.context.get("next_payment_attempt")
                if not ends or (retry and int(retry) >= int(ends)):
                    self._fail(
                        "plan_ended_beside_payment_message",
                        f"'plan ended' sent beside a payment message that did not say when "
                        f"the plan ends, or promised a retry after it: {names}",
                    )
        if T.PLAN_ENDED in templates and T.WELCOME in templates:
            self._fail("plan_ended_beside_welcome", f"'plan ended' and a welcome together: {names}")


def _postgresql_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip(
            "PostgreSQL only: the standing's queries and row locks are production's there; "
            "run with DATABASE_URL=postgres://..."
        )


def _catalog() -> None:
    call_command("stripe_catalog", stdout=StringIO())
    call_command(
        "stripe_sandbox", "coupon", "--code", CODE, "--percent-off", "20", stdout=StringIO()
    )
    deliver_pending(transport=app_transport(Client()))


# The shortest sequences found that broke the standing on main (the first purchase, then
# the steps), replayed on every run: random examples seldom reach them in a bounded run.
# While KNOWN_OPEN lists a break, the replay only notes it.
FIRST = {"tax": False, "trial": False, "seed": 1212, "plan": "flowkit", "code": False}
SEQUENCES: dict[str, tuple[dict[str, Any], list[tuple[Any, ...]]]] = {
    # Defects 3, 21: "plan ended" beside the last "payment failed" (retry promised).
    "0341 renewal to the dunning end": (
        {"card": "0341", "interval": "monthly"},
        [("advance", 31), ("advance", 8)],
    ),
    # Defects 10, 19, 20: a 3-D Secure renewal never confirmed: the plan kept past the
    # grace end, "plan ended" beside "please confirm", then the customer pays the
    # invoice the billing page still links: £49 for nothing.
    "3184 renewal never confirmed, then paid": (
        {"card": "3184", "interval": "monthly"},
        [
            ("advance", 31),
            ("advance", 3),
            ("advance", 3),
            ("advance", 1),
            ("advance", 9),
            ("pay_open_invoice",),
        ],
    ),
    # Defects 9, 12: a one-off above the subscription: two messages for one purchase.
    "one-off beside a subscription": (
        {"card": "4242", "interval": "monthly"},
        [("one_off", "launchpack", "4242"), ("advance", 31)],
    ),
    # Defect 6: comped LaunchPack for 5 days, refused as "You already have LaunchPack".
    "comp of a higher plan": (
        {"card": "4242", "interval": "monthly"},
        [("comp", "launchpack", 5), ("upgrade", "launchpack", "monthly"), ("advance", 8)],
    ),
    # Defect 7: a Bacs debit processing, the same plan on sale again.
    "pending Bacs debit": (
        {"card": "4242", "interval": "monthly"},
        [("bacs", "launchpack", "oneoff", "00012345"), ("advance", 1), ("advance", 3)],
    ),
}


@pytest.mark.parametrize("name", list(SEQUENCES))
def test_the_sequences_that_broke_the_standing(name: str) -> None:
    _postgresql_only()
    first, steps = SEQUENCES[name]
    with override_settings(SITE_URL="http://testserver"):
        _catalog()
        machine = StandingMachine()
        try:
            machine.setup(**FIRST, **first)
            machine.standing_holds()
            for rule_name, *args in steps:
                getattr(machine, rule_name)(*args)
                machine.standing_holds()
        finally:
            machine.teardown()


def test_the_standing_tells_what_stripe_charges() -> None:
    _postgresql_only()
    # The catalogue and the promotion code once; each example rolls back to here.
    with override_settings(SITE_URL="http://testserver"):
        _catalog()
        _run(StandingMachine)


def _run(machine: type[StandingMachine]) -> None:
    run_state_machine_as_test(
        machine,
        settings=settings(
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            **PROFILE,
        ),
    )
