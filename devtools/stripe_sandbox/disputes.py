"""Disputes (chargebacks) on the sandbox's charges, opened and closed from the command.

What Stripe sends: `charge.dispute.created` and `charge.dispute.funds_withdrawn` when the
cardholder's bank opens one (status `needs_response`); when evidence is submitted,
`charge.dispute.updated` (`under_review`); when the bank decides, `charge.dispute.closed`
(`won` or `lost`), and for a won dispute `charge.dispute.funds_reinstated`.
"""

from __future__ import annotations

import copy

from django.db import transaction

from devtools.stripe_sandbox import store
from devtools.stripe_sandbox.events import changes, event_emit
from devtools.stripe_sandbox.store import Obj, StripeError

EVIDENCE_DAYS = 7  # evidence is due a week after the dispute opens (sandbox choice)
OPEN = {"needs_response", "under_review", "warning_needs_response", "warning_under_review"}
EVIDENCE_FIELDS = (
    "access_activity_log",
    "billing_address",
    "cancellation_policy",
    "cancellation_policy_disclosure",
    "cancellation_rebuttal",
    "customer_communication",
    "customer_email_address",
    "customer_name",
    "customer_purchase_ip",
    "customer_signature",
    "duplicate_charge_documentation",
    "duplicate_charge_explanation",
    "duplicate_charge_id",
    "product_description",
    "receipt",
    "refund_policy",
    "refund_policy_disclosure",
    "refund_refusal_explanation",
    "service_date",
    "service_documentation",
    "shipping_address",
    "shipping_carrier",
    "shipping_date",
    "shipping_documentation",
    "shipping_tracking_number",
    "uncategorized_file",
    "uncategorized_text",
)
_NO_ENHANCED = {
    "mastercard_compliance": None,
    "visa_compelling_evidence_3": None,
    "visa_compliance": None,
}


def _dispute(charge: Obj, reason: str) -> Obj:
    ts = store.now()
    card = (charge.get("payment_method_details") or {}).get("card") or {}
    return {
        "id": store.new_id("du"),  # Stripe names disputes du_...
        "object": "dispute",
        "amount": charge["amount_captured"] - charge["amount_refunded"],
        "balance_transactions": [],  # the sandbox keeps no balance
        "charge": charge["id"],
        "created": ts,
        "currency": charge["currency"],
        "enhanced_eligibility_types": [],
        "evidence": {**dict.fromkeys(EVIDENCE_FIELDS), "enhanced_evidence": {}},
        "evidence_details": {
            "due_by": ts + EVIDENCE_DAYS * 86400,
            "enhanced_eligibility": dict(_NO_ENHANCED),
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
        },
        "is_charge_refundable": False,
        "livemode": False,
        "metadata": {},
        "network_reason_code": "10.4" if reason == "fraudulent" else None,
        "payment_intent": charge.get("payment_intent"),
        "payment_method_details": {
            "card": {
                "brand": card.get("brand") or "visa",
                "case_type": "chargeback",
                "network": card.get("network") or "visa",
                "network_reason_code": "10.4" if reason == "fraudulent" else None,
            },
            "type": "card",
        },
        "reason": reason,
        "status": "needs_response",
    }


def dispute_open(charge_id: str, *, reason: str = "fraudulent") -> tuple[Obj, bool]:
    """Open a dispute on `charge_id`; (the dispute, whether it is new). A charge with an
    open dispute keeps that one."""
    with transaction.atomic():
        charge = store.get(charge_id, "charge", lock=True)
        if charge["status"] != "succeeded":
            raise StripeError(f"The charge {charge_id} was not paid: nothing to dispute.")
        if current := disputes_of(charge_id, open_only=True):
            return current[0], False
        dispute = store.save(_dispute(charge, reason))
        charge["disputed"] = True
        store.save(charge)
        event_emit("charge.dispute.created", dispute)
        event_emit("charge.dispute.funds_withdrawn", dispute)
        return dispute, True


def dispute_close(dispute_id: str, *, outcome: str) -> tuple[Obj, bool]:
    """The bank decides `outcome` (won or lost); (the dispute, whether it changed). To win,
    evidence is submitted first (under_review). A closed dispute stays as it is."""
    if outcome not in {"won", "lost"}:
        raise StripeError(f"Invalid outcome: {outcome}", param="outcome")
    with transaction.atomic():
        dispute = store.get(dispute_id, "dispute", lock=True)
        if dispute["status"] not in OPEN:
            return dispute, False
        if outcome == "won" and dispute["status"] == "needs_response":
            before = copy.deepcopy(dispute)
            dispute["status"] = "under_review"
            dispute["evidence"]["uncategorized_text"] = "Sandbox evidence: the service was used."
            dispute["evidence_details"].update(has_evidence=True, submission_count=1)
            store.save(dispute)
            event_emit("charge.dispute.updated", dispute, previous=changes(before, dispute))
        before = copy.deepcopy(dispute)
        dispute["status"] = outcome
        store.save(dispute)
        event_emit("charge.dispute.closed", dispute, previous=changes(before, dispute))
        if outcome == "won":
            event_emit("charge.dispute.funds_reinstated", dispute)
        return dispute, True


def disputes_of(charge_id: str, *, open_only: bool = False) -> list[Obj]:
    """The charge's disputes, newest first."""
    return [
        d
        for d in store.all_of("dispute")
        if d["charge"] == charge_id and (not open_only or d["status"] in OPEN)
    ]
