"""The customer-messages outbox: queue each message with what caused it, send it later.

What is queued: the one message billing decided for a change of plan (plan_changed,
billing.messages: the welcome, an upgrade, a downgrade, a comp, "your plan has ended"),
and billing's notices (billing.signals.customer_notice: a failed or unauthenticated
payment, a recovery, a cancellation or its undoing, a refund).

Queueing writes an OnboardingMessage row and its django-tasks task in the caller's
transaction: if that rolls back, neither exists; once it commits, the worker
(`manage.py worker`) sends it even if the web process dies. No provider is ever
called here from a web request or inside someone else's transaction.

The retry rules, in one place (`_outcome_record`):
- success                      -> sent
- transient (ProviderError.retry) -> queued again after
                                  ONBOARDING_RETRY_SECONDS * 2**(attempts-1), until
                                  ONBOARDING_MAX_ATTEMPTS attempts, then failed
- permanent                    -> failed at once (21610 also clears sms_opt_in)
- outcome unknown              -> failed, never repeated: the provider may have the
                                  message; staff decide (admin "send again")
- an attempt that started but never recorded an outcome (the worker died mid-call)
  stays queued with its attempt counted and a last_error saying so, and is not
  repeated either: its task is stale by then (see onboarding_message_send); the sweep
  below marks it failed, outcome unknown, once no provider call can still be running.

Workers that die (`onboarding_outbox_sweep`, run by every `manage.py worker` at start and
every minute, see smartflow/workers.py; `manage.py onboarding_sweep` runs it by hand;
the worker also queues again any task a dead worker had claimed): django-tasks-db never runs a task
again once a worker has claimed it, so a worker killed after claiming a send but before
its attempt started would leave that message queued forever. The sweep enqueues such a
message's task again. That is always safe, even when the old task is alive after all: a
task sends only if it moves `attempts` from n-1 to n under the message's row lock, so of
two tasks for one attempt exactly one sends and the other finds itself stale. A message
whose attempt started but never recorded an outcome is never sent again (the provider
may have it); once the attempt is older than any provider call can take, the sweep marks
it failed with "the outcome is unknown", where staff see it and can send it again.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.messages import INFO, WARNING
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.html import linebreaks, urlize
from django_tasks import TaskResultStatus, task
from django_tasks_db.models import DBTaskResult

from accounts.models import PhoneCode, User
from accounts.phone import phone_code_issue, phone_codes_logged, sms_missing_settings
from billing.models import PlanChange
from billing.notices import notice_stale_reason, plan_end_details
from billing.plans import Plan
from onboarding import mail, sms
from onboarding.errors import ProviderError
from onboarding.models import OnboardingMessage
from onboarding.notices import (
    SMS_TEMPLATES,
    notice_email_render,
    notice_sms_render,
    phone_code_sms_render,
)
from onboarding.welcome import welcome_email_render, welcome_sms_render

logger = logging.getLogger(__name__)

OUTCOME_UNKNOWN = "outcome is unknown: not retried (check before sending again)"

Channel = OnboardingMessage.Channel
Status = OnboardingMessage.Status
Template = OnboardingMessage.Template

# Forward-only status order: an update never moves a message to a lower rank, so a
# late "sent" callback cannot overwrite "delivered". Final outcomes share the top rank.
_RANK: dict[str, int] = {
    Status.QUEUED: 0,
    Status.SENT: 1,
    Status.DELIVERED: 2,
    Status.UNDELIVERED: 3,
    Status.FAILED: 3,
    Status.BOUNCED: 3,
    Status.COMPLAINED: 3,
}


def sms_skip_reason(user: User, *, confirming: bool = False) -> str:
    """Why `user` gets no SMS, or "" when they can get one: a number, consent, and the
    number confirmed by code (accounts/phone.py), except for the code that `confirming` it."""
    if not user.phone:
        return "no mobile number on the account"
    if not user.sms_opt_in:
        return "the customer has not opted in to SMS (or opted out)"
    if confirming and user.phone_is_confirmed:
        return "the mobile number is already confirmed"
    if not confirming and not user.phone_is_confirmed:
        return "the mobile number is not confirmed yet (no code entered)"
    return ""


def onboarding_welcome_enqueue(
    *,
    user: User,
    plan_change: PlanChange | None = None,
    plan: str | None = None,
    trigger: str | None = None,
    channels: Iterable[str] = (Channel.EMAIL, Channel.SMS),
    context: dict[str, Any] | None = None,
) -> list[OnboardingMessage]:
    """Queue the welcome email and SMS for one activation; return the rows.

    Pass `plan_change` (the trigger defaults to it, the plan to its new plan) or `plan`
    and `trigger`. Writes rows and tasks only, in the caller's transaction. Safe to call
    twice: a message that exists for (user, channel, trigger) is returned, not queued
    again. An SMS the user cannot receive is recorded as skipped with the reason.
    """
    if plan_change is not None:
        plan = plan or plan_change.new_plan
        trigger = trigger or f"plan_change:{plan_change.pk}"
    if not plan or not trigger:
        raise ValueError("Pass plan_change, or plan and trigger.")
    return _enqueue(
        user=user,
        template=Template.WELCOME,
        plan=plan,
        trigger=trigger,
        channels=channels,
        plan_change=plan_change,
        context=context or {},
    )


def customer_notice_enqueue(
    *,
    user: User,
    kind: str,
    key: str,
    stripe_event_id: str = "",
    context: dict[str, Any],
) -> list[OnboardingMessage]:
    """Queue the email (and, for a payment to act on, the SMS) of one billing notice
    (billing.signals.customer_notice); return the rows. Once per (kind, key): a
    duplicate delivery of the event that caused it returns the rows already queued."""
    if kind not in Template.values or kind == Template.WELCOME:
        # A kind billing learnt before the outbox did: logged, never a failed webhook.
        logger.error("Customer notice %r for user %s has no message; not sent", kind, user.pk)
        return []
    template = Template(kind)
    channels = [Channel.EMAIL, Channel.SMS] if template in SMS_TEMPLATES else [Channel.EMAIL]
    return _enqueue(
        user=user,
        template=template,
        plan=user.plan,
        trigger=_trigger(f"{kind}:{key}"),
        channels=channels,
        context=context,
        stripe_event_id=stripe_event_id,
    )


def plan_message_enqueue(
    *, plan_change: PlanChange, kind: str, key: str, context: dict[str, Any]
) -> list[OnboardingMessage]:
    """Queue the one message billing decided for `plan_change`
    (billing.messages.plan_change_message); return the rows. Once per change: the
    welcome and "ended" keep their triggers, the others are "<kind>:plan_change:<pk>"."""
    if kind == Template.WELCOME:
        return onboarding_welcome_enqueue(
            user=plan_change.user, plan_change=plan_change, context=context
        )
    if kind == Template.PLAN_ENDED:
        return plan_ended_enqueue(plan_change=plan_change, reason=context.get("reason", ""))
    if kind not in Template.values:
        logger.error(
            "Plan message %r for user %s has no template; not sent", kind, plan_change.user_id
        )
        return []
    template = Template(kind)
    channels = [Channel.EMAIL, Channel.SMS] if template in SMS_TEMPLATES else [Channel.EMAIL]
    return _enqueue(
        user=plan_change.user,
        template=template,
        plan=plan_change.new_plan,
        trigger=_trigger(f"{kind}:{key}"),
        channels=channels,
        plan_change=plan_change,
        context=context,
        stripe_event_id=plan_change.stripe_event_id,
    )


def plan_ended_enqueue(*, plan_change: PlanChange, reason: str) -> list[OnboardingMessage]:
    """Queue "your plan has ended" for a change from a paid plan to Starter; `reason` is
    "payment_failed", "cancelled" or "" (billing.notices.plan_end_reason)."""
    return _enqueue(
        user=plan_change.user,
        template=Template.PLAN_ENDED,
        plan=plan_change.new_plan,
        trigger=f"plan_ended:plan_change:{plan_change.pk}",
        channels=[Channel.EMAIL],
        plan_change=plan_change,
        # The day it ended and what was left unpaid, when a failed payment ended it.
        context={
            "old_plan": plan_change.old_plan,
            "reason": reason,
            **plan_end_details(plan_change.user),
        },
        stripe_event_id=plan_change.stripe_event_id,
    )


def phone_code_enqueue(*, user: User, phone_code: PhoneCode) -> list[OnboardingMessage]:
    """Queue the SMS that carries a confirmation code (accounts.phone.phone_code_requested);
    the worker makes the code as it sends (phone_code_issue), so no row holds it."""
    return _enqueue(
        user=user,
        template=Template.PHONE_CODE,
        plan=user.plan,
        trigger=_trigger(f"phone_code:{phone_code.requested_at.isoformat()}"),
        channels=[Channel.SMS],
        context={"phone": str(phone_code.phone)},
    )


def account_email_enqueue(
    *, to: str, user: User | None, kind: str, subject: str, text: str
) -> OnboardingMessage:
    """Queue one of django-allauth's emails (accounts/adapter.py), rendered: a
    confirmation link, a password reset, "you already have an account", a notice of a
    change. `to` may differ from the user's address (a new address to confirm, the old
    one told of a change) and may have no account at all (`user` None: a reset asked for
    an unknown address). The text holds one-time links, so staff see only the subject
    (message_summary) and cannot send it again."""
    with transaction.atomic():
        message = OnboardingMessage.objects.create(
            user=user,
            channel=Channel.EMAIL,
            template=Template.ACCOUNT,
            plan=user.plan if user else Plan.STARTER,
            trigger=f"account:{kind}:{uuid.uuid4().hex}",
            context={"kind": kind, "subject": subject, "text": text},
            recipient=to,
        )
        onboarding_message_send.enqueue(message.pk, 1)
    return message


def _trigger(value: str) -> str:
    # Stripe ids are short, but the column is 100 characters: a longer key stays unique.
    if len(value) <= 100:
        return value
    return f"{value[:59]}#{hashlib.sha256(value.encode()).hexdigest()[:40]}"


def _enqueue(
    *,
    user: User,
    template: str,
    plan: str,
    trigger: str,
    channels: Iterable[str],
    context: dict[str, Any],
    plan_change: PlanChange | None = None,
    stripe_event_id: str = "",
) -> list[OnboardingMessage]:
    if user.is_erased:
        # Stripe's late events about an erased account (privacy.erasure) tell no one.
        return []
    messages = []
    with transaction.atomic():
        for channel in channels:
            skip = (
                sms_skip_reason(user, confirming=template == Template.PHONE_CODE)
                if channel == Channel.SMS
                else ""
            )
            message, created = OnboardingMessage.objects.get_or_create(
                user=user,
                channel=channel,
                trigger=trigger,
                defaults={
                    "template": template,
                    "plan": plan,
                    "plan_change": plan_change,
                    "context": context,
                    "stripe_event_id": stripe_event_id,
                    "status": Status.SKIPPED if skip else Status.QUEUED,
                    "last_error": skip,
                },
            )
            if created and not skip:
                onboarding_message_send.enqueue(message.pk, 1)
            messages.append(message)
    return messages


# Staff "send again", from the user list (the welcome of the current plan) and from the
# message list (that message's words once more): one path, so that both screens ask the
# same permission, name triggers alike, apply consent alike and say the same.
RESEND_PERMISSION = "accounts.resend_onboarding"


class ResendForbidden(PermissionError):
    """`actor` may not send messages again (see resend_allowed)."""


def resend_allowed(*, actor: User) -> bool:
    """Whether `actor` may send customers' messages again (Support and Billing admin)."""
    return actor.has_perm(RESEND_PERMISSION)


@dataclass
class ResendReport:
    """What one staff "send again" queued or skipped, and what the admin tells staff."""

    sent: list[OnboardingMessage] = field(default_factory=list)
    # Originals whose words retention removed: there is nothing left to send again.
    purged: list[OnboardingMessage] = field(default_factory=list)
    refused: list[OnboardingMessage] = field(default_factory=list)

    def notices(self) -> list[tuple[int, str]]:
        """(django.contrib.messages level, text) for the member of staff who clicked."""
        queued = sum(m.status == Status.QUEUED for m in self.sent)
        notices = [(INFO, f"{queued} message(s) queued to send again.")]
        notices += [
            (WARNING, f"Not sent to {m.user}: {m.last_error}.")
            for m in self.sent
            if m.status == Status.SKIPPED
        ]
        notices += [
            (
                WARNING,
                f"Not sent again to {m.user}: message #{m.pk}'s words were removed on "
                f"{m.body_purged_at:%Y-%m-%d} (retention).",
            )
            for m in self.purged
        ]
        if self.refused:
            notices.append(
                (
                    WARNING,
                    f"{len(self.refused)} account email(s) not sent again: their links are "
                    "one-time; the customer asks for a new one.",
                )
            )
        return notices


def onboarding_resend(
    *,
    actor: User,
    users: Iterable[User] = (),
    originals: Iterable[OnboardingMessage] = (),
) -> ResendReport:
    """Send again, as staff: each of `users` gets the welcome of their current plan (email
    and SMS), each of `originals` is queued once more as a new message (same template,
    words and channel). Consent is asked afresh, as for a first send: a customer who has
    opted out, or has no number, gets no SMS (the row says why). Each user's or original
    message's History (Django's LogEntry) records what was sent, by `actor`. Raises
    ResendForbidden when `resend_allowed` says no.
    """
    if not resend_allowed(actor=actor):
        raise ResendForbidden("Sending messages again needs the resend_onboarding permission.")
    # One trigger per click: a double-submitted form queues once, a later click again.
    click = f"staff-resend:{actor.pk}:{timezone.now():%Y%m%dT%H%M%S}"
    report = ResendReport()
    # The History written with the rows: a rolled-back resend claims nothing.
    with transaction.atomic():
        for user in users:
            sent = onboarding_welcome_enqueue(user=user, plan=user.plan, trigger=click)
            parts = ", ".join(f"{m.channel} {m.get_status_display().lower()}" for m in sent)
            _history_write(
                actor=actor,
                obj=user,
                text=f"Sent the onboarding (welcome) again: {parts or 'nothing to send'}",
            )
            report.sent += sent
        for original in originals:
            if original.body_purged_at is not None:
                report.purged.append(original)
                continue
            if original.template == Template.ACCOUNT:
                # One-time links, perhaps to an address that is no longer the account's:
                # the customer asks for a new one.
                report.refused.append(original)
                continue
            again = _message_again(original)
            _history_write(
                actor=actor,
                obj=original,
                text=f"Sent again as message #{again.pk} ({again.get_status_display().lower()})",
            )
            report.sent.append(again)
    return report


def _message_again(message: OnboardingMessage) -> OnboardingMessage:
    # "<trigger>#resend-<n>": the original's trigger stays readable, each resend is unique.
    base = message.trigger.split("#resend-")[0]
    user = message.user
    if user is None:  # only account emails have none, and they are never sent again
        raise ValueError(f"Message {message.pk} has no user to send it to again.")
    previous = OnboardingMessage.objects.filter(
        user=user, channel=message.channel, trigger__startswith=f"{base}#resend-"
    ).count()
    [again] = _enqueue(
        user=user,
        template=message.template,
        plan=message.plan,
        trigger=_trigger(f"{base}#resend-{previous + 1}"),
        channels=[message.channel],
        plan_change=message.plan_change,
        context=message.context,
        stripe_event_id=message.stripe_event_id,
    )
    return again


def _history_write(*, actor: User, obj: User | OnboardingMessage, text: str) -> None:
    # What the admin's ModelAdmin.log_change writes, so it shows on the object's History page.
    LogEntry.objects.log_actions(
        user_id=actor.pk,
        queryset=[obj],
        action_flag=CHANGE,
        change_message=text[:500],
        single_object=True,
    )


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=settings.ONBOARDING_RETRY_SECONDS * 2 ** (attempts - 1))


@task()
def onboarding_message_send(message_id: int, attempt: int) -> str:
    """Attempt number `attempt` of one message; "stale" if it is no longer that attempt's turn."""
    with transaction.atomic():
        message = (
            # Lock the message only: billing locks the user while it queues messages.
            OnboardingMessage.objects.select_for_update(of=("self",))
            .select_related("user")
            .filter(pk=message_id, status=Status.QUEUED, attempts=attempt - 1)
            .first()
        )
        if message is None:
            return "stale"
        skip = _skip_reason(message)
        if skip:
            _status_set(message, Status.SKIPPED, error=skip)
            logger.info("Onboarding message %s skipped: %s", message.pk, skip)
            return Status.SKIPPED
        # Counted before the provider call, so this task is stale if the worker dies
        # mid-call: a send whose outcome is unknown is never repeated blindly.
        message.attempts = attempt
        message.last_attempt_at = timezone.now()
        message.next_attempt_at = None
        message.last_error = f"Attempt {attempt} started; if this stays, its {OUTCOME_UNKNOWN}"
        message.save(update_fields=["attempts", "last_attempt_at", "next_attempt_at", "last_error"])
    try:
        provider_id = _deliver(message)
    except ProviderError as exc:
        return _outcome_record(message, error=exc)
    except Exception as exc:
        # A bug or an unreadable answer: the provider may have sent it all the same.
        logger.exception("Onboarding message %s: unexpected error while sending", message.pk)
        unknown = ProviderError(f"{type(exc).__name__}: {exc}", outcome_unknown=True)
        return _outcome_record(message, error=unknown)
    return _outcome_record(message, provider_id=provider_id)


# The messages of a change of plan: true while the plan is still the one they announce.
_PLAN_TEMPLATES = frozenset(
    {
        Template.WELCOME,
        Template.PLAN_ENDED,
        Template.PLAN_UPGRADED,
        Template.PLAN_DOWNGRADED,
        Template.COMP_GRANTED,
        Template.COMP_ENDED,
    }
)


def _skip_reason(message: OnboardingMessage) -> str:
    user = message.user
    if message.template == Template.ACCOUNT or user is None:
        # Asked for by the person a moment ago; always true.
        return ""
    # A refund or a further change before sending makes a welcome or "ended" wrong; the
    # newer change has its own message.
    if message.template in _PLAN_TEMPLATES and user.plan != message.plan:
        return f"the plan is now {user.get_plan_display()}, not {message.get_plan_display()}"
    # A payment failure paid meanwhile, a cancellation undone: no longer true.
    if stale := notice_stale_reason(kind=message.template, context=message.context or {}):
        return stale
    if message.channel == Channel.SMS:
        confirming = message.template == Template.PHONE_CODE
        if (missing := sms_missing_settings()) and not (confirming and phone_codes_logged()):
            return f"SMS is not configured (set {', '.join(missing)})"
        if confirming and str(user.phone) != (message.context or {}).get("phone"):
            return "the mobile number changed after the code was asked for"
        return sms_skip_reason(user, confirming=confirming)
    return ""


def _deliver(message: OnboardingMessage) -> str:
    user = message.user
    if message.template == Template.ACCOUNT or user is None:
        facts = message.context or {}
        text = str(facts.get("text", ""))
        return mail.email_send(
            to=message.recipient,
            subject=str(facts.get("subject", "")),
            text=text,
            html=linebreaks(urlize(text, autoescape=True), autoescape=False),
            reply_to=settings.SUPPORT_EMAIL,
            metadata={"onboarding_message": str(message.pk)},
            tags=[f"account-{facts.get('kind', 'email')}"],
        )
    welcome = message.template == Template.WELCOME
    if message.channel == Channel.EMAIL:
        email = (
            welcome_email_render(
                user=user, plan=message.plan, until=(message.context or {}).get("until")
            )
            if welcome
            else notice_email_render(message)
        )
        message.recipient = user.email
        return mail.email_send(
            to=user.email,
            subject=email.subject,
            text=email.text,
            html=email.html,
            reply_to=settings.SUPPORT_EMAIL,
            metadata={"onboarding_message": str(message.pk)},
            tags=[f"onboarding-{message.template}"],
        )
    message.recipient = str(user.phone)
    opt_out_notice = _first_sms_to(message)
    if message.template == Template.PHONE_CODE:
        code = phone_code_issue(user=user, phone=message.recipient)
        if code is None:
            raise ProviderError("the number no longer waits for a code; not sent")
        body = phone_code_sms_render(code=code, opt_out_notice=opt_out_notice)
        if phone_codes_logged():
            # DEBUG with Twilio not set up: the code goes to the log for `make run`.
            logger.warning(
                "SMS is not configured (DEBUG): the code for %s is %s", message.recipient, code
            )
            return ""
    elif welcome:
        body = welcome_sms_render(plan=message.plan, opt_out_notice=opt_out_notice)
    else:
        body = notice_sms_render(message, opt_out_notice=opt_out_notice)
    message.segments = sms.sms_segments(body)
    callback = f"{settings.SITE_URL}{reverse('onboarding:twilio_status')}"
    return sms.sms_send(to=message.recipient, body=body, status_callback=callback)


def _first_sms_to(message: OnboardingMessage) -> bool:
    # Carriers require the first SMS to a number to say how to opt out; "first" means no
    # earlier SMS to that number was taken by Twilio (whoever's account it was on).
    return not (
        OnboardingMessage.objects.filter(
            channel=Channel.SMS,
            recipient=message.recipient,
            status__in=[Status.SENT, Status.DELIVERED],
        )
        .exclude(pk=message.pk)
        .exists()
    )


def _outcome_record(
    message: OnboardingMessage, *, provider_id: str = "", error: ProviderError | None = None
) -> str:
    now = timezone.now()
    with transaction.atomic():
        if error is None:
            message.provider_message_id = provider_id
            message.sent_at = now
            message.last_error = ""
            status = Status.SENT
        elif error.outcome_unknown:
            message.last_error = f"The {OUTCOME_UNKNOWN}: {error.reason}"
            status = Status.FAILED
        elif error.retry and message.attempts < settings.ONBOARDING_MAX_ATTEMPTS:
            message.last_error = error.reason
            message.next_attempt_at = now + _backoff(message.attempts)
            onboarding_message_send.using(run_after=message.next_attempt_at).enqueue(
                message.pk, message.attempts + 1
            )
            status = Status.QUEUED
        else:
            message.last_error = error.reason
            status = Status.FAILED
        if isinstance(error, sms.SmsError) and error.opted_out and message.user_id:
            User.objects.filter(pk=message.user_id).update(sms_opt_in=False)
        message.status = status
        message.status_changed_at = now
        message.save()
    log = logger.info if error is None else logger.warning
    log(
        "Onboarding %s %s to user %s, attempt %s: %s",
        message.channel,
        message.pk,
        message.user_id,
        message.attempts,
        status if error is None else f"{status} ({error.reason})",
    )
    return status


# How long an attempt may go without an outcome before the sweep calls it unknown: far
# longer than a provider call can take (EMAIL_TIMEOUT, Twilio's 15 s, anymail's timeout).
ATTEMPT_DEADLINE = timedelta(minutes=15)


@dataclass
class SweepReport:
    requeued: int = 0
    outcome_unknown: int = 0


def onboarding_outbox_sweep(
    *, now: datetime | None = None, unknown_after: timedelta = ATTEMPT_DEADLINE
) -> SweepReport:
    """Recover the messages a stopped worker left behind (see the module docstring).

    Queued messages whose next attempt has not started and has no task waiting get their
    task again; attempts started more than `unknown_after` ago without an outcome are
    marked failed, outcome unknown, and not sent again. Safe to run any number of times,
    beside running workers.
    """
    now = now or timezone.now()
    report = SweepReport()
    # A claimed (RUNNING) task does not count as waiting: its worker may be dead, and a
    # second task for the same attempt is harmless (only one of them can send).
    waiting = {
        tuple(args_kwargs["args"])
        for args_kwargs in DBTaskResult.objects.filter(
            task_path=onboarding_message_send.module_path, status=TaskResultStatus.READY
        ).values_list("args_kwargs", flat=True)
    }
    not_started = OnboardingMessage.objects.filter(status=Status.QUEUED).filter(
        Q(attempts=0) | Q(next_attempt_at__isnull=False)
    )
    for message_id, attempts, next_attempt_at in not_started.values_list(
        "pk", "attempts", "next_attempt_at"
    ):
        if (message_id, attempts + 1) in waiting:
            continue
        onboarding_message_send.using(run_after=next_attempt_at).enqueue(message_id, attempts + 1)
        report.requeued += 1
        logger.warning(
            "Onboarding message %s: send task lost with its worker; attempt %s queued again",
            message_id,
            attempts + 1,
        )
    cut_off = OnboardingMessage.objects.filter(
        Q(last_attempt_at__lt=now - unknown_after) | Q(last_attempt_at__isnull=True),
        status=Status.QUEUED,
        attempts__gte=1,
        next_attempt_at__isnull=True,
    )
    for message_id, attempts in cut_off.values_list("pk", "attempts"):
        # Conditional, so that an outcome recorded meanwhile is never overwritten.
        marked = OnboardingMessage.objects.filter(
            pk=message_id, status=Status.QUEUED, attempts=attempts, next_attempt_at__isnull=True
        ).update(
            status=Status.FAILED,
            last_error=(
                f"The {OUTCOME_UNKNOWN}: attempt {attempts} started but its worker stopped "
                "before recording what the provider answered"
            ),
            status_changed_at=now,
        )
        if marked:
            report.outcome_unknown += 1
            logger.warning(
                "Onboarding message %s: attempt %s never recorded an outcome; failed, not resent",
                message_id,
                attempts,
            )
    return report


def _status_set(message: OnboardingMessage, status: str, *, error: str = "") -> None:
    message.status = status
    message.last_error = error
    message.status_changed_at = timezone.now()
    message.save(update_fields=["status", "last_error", "status_changed_at"])


def message_status_advance(
    *,
    channel: str,
    provider_message_id: str = "",
    message_id: int | None = None,
    status: str,
    error: str = "",
) -> bool:
    """Move a sent message's status forward (never back); True if it changed.

    Found by the provider's id, or by our own id (anymail metadata) when given.
    """
    lookup = Q(provider_message_id=provider_message_id) if provider_message_id else Q()
    if message_id is not None:
        lookup |= Q(pk=message_id)
    if not lookup:
        return False
    lower = [s for s, rank in _RANK.items() if rank < _RANK[status]]
    changes: dict[str, object] = {"status": status, "status_changed_at": timezone.now()}
    if error:
        changes["last_error"] = error
    updated = OnboardingMessage.objects.filter(lookup, channel=channel, status__in=lower).update(
        **changes
    )
    return bool(updated)
