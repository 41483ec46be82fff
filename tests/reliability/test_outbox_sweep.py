"""`manage.py onboarding_sweep`: what a dead worker leaves behind, on both databases.

(The same with real worker processes killed mid-send: test_worker_killed.py.)
"""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from accounts.models import User
from billing.overrides import override_grant
from onboarding.models import OnboardingMessage
from onboarding.outbox import onboarding_message_send, onboarding_outbox_sweep
from tests.onboarding.helpers import run_worker

# The worker runs in-process and closes its connection between tasks, as in production.
pytestmark = pytest.mark.django_db(transaction=True)

Status = OnboardingMessage.Status


@pytest.fixture
def welcome(customer: User, staff_user: User) -> OnboardingMessage:
    """A queued customer email with its task, as billing leaves it (a comp told to the
    customer: billing.messages)."""
    override_grant(
        user=customer,
        plan="flowkit",
        reason="goodwill",
        expires_at=None,
        notify=True,
        actor=staff_user,
    )
    return OnboardingMessage.objects.get(user=customer, channel="email")


def _tasks(message: OnboardingMessage, attempt: int):
    return DBTaskResult.objects.filter(
        task_path=onboarding_message_send.module_path, args_kwargs__args=[message.pk, attempt]
    )


def _sweep() -> str:
    out = StringIO()
    call_command("onboarding_sweep", stdout=out)
    return out.getvalue().strip()


def test_messages_waiting_for_their_task_are_left_alone(welcome):
    retry = OnboardingMessage.objects.create(
        user=welcome.user,
        channel="email",
        template="welcome",
        plan="flowkit",
        trigger="plan_change:retry",
        attempts=1,
        last_attempt_at=timezone.now(),
        next_attempt_at=timezone.now() + timedelta(minutes=2),
        last_error="provider error 503",
    )
    onboarding_message_send.using(run_after=retry.next_attempt_at).enqueue(retry.pk, 2)
    tasks = DBTaskResult.objects.count()

    assert _sweep() == "0 message(s) queued again, 0 marked failed (outcome unknown)."
    assert DBTaskResult.objects.count() == tasks


def test_a_send_claimed_by_a_dead_worker_is_queued_again_and_sent_once(welcome):
    # The worker claimed the task and died before the attempt started.
    _tasks(welcome, 1).update(status="RUNNING", started_at=timezone.now(), worker_ids=["gone"])

    assert _sweep() == "1 message(s) queued again, 0 marked failed (outcome unknown)."
    assert _sweep() == "0 message(s) queued again, 0 marked failed (outcome unknown)."
    # Had the worker been alive after all, its task would run too: one of the two sends,
    # the other finds the attempt already made.
    _tasks(welcome, 1).filter(status="RUNNING").update(status="READY")
    run_worker()

    assert [m.to for m in mail.outbox] == [[welcome.user.email]]
    assert sorted(_tasks(welcome, 1).values_list("return_value", flat=True)) == ["sent", "stale"]
    welcome.refresh_from_db()
    assert (welcome.status, welcome.attempts) == (Status.SENT, 1)


def test_a_lost_retry_is_queued_again_for_its_time(welcome):
    later = timezone.now() + timedelta(minutes=4)
    OnboardingMessage.objects.filter(pk=welcome.pk).update(
        attempts=1, last_attempt_at=timezone.now(), next_attempt_at=later, last_error="503"
    )
    _tasks(welcome, 1).update(status="SUCCESSFUL", return_value="queued")
    # The retry's task was claimed by a worker that died: nothing would ever run it.
    onboarding_message_send.using(run_after=later).enqueue(welcome.pk, 2)
    _tasks(welcome, 2).update(status="RUNNING", started_at=timezone.now())

    report = onboarding_outbox_sweep()

    assert (report.requeued, report.outcome_unknown) == (1, 0)
    [again] = _tasks(welcome, 2).filter(status="READY")
    assert again.run_after == later


def test_an_attempt_without_an_outcome_is_never_resent_and_failed_after_the_deadline(welcome):
    started = timezone.now()
    OnboardingMessage.objects.filter(pk=welcome.pk).update(
        attempts=1,
        last_attempt_at=started,
        last_error="Attempt 1 started; if this stays, its outcome is unknown",
    )
    _tasks(welcome, 1).update(status="RUNNING", started_at=started)

    soon = onboarding_outbox_sweep(now=started + timedelta(minutes=5))
    welcome.refresh_from_db()
    assert (soon.requeued, soon.outcome_unknown, welcome.status) == (0, 0, Status.QUEUED)

    later = onboarding_outbox_sweep(now=started + timedelta(minutes=16))
    run_worker()

    welcome.refresh_from_db()
    assert (later.requeued, later.outcome_unknown) == (0, 1)
    assert welcome.status == Status.FAILED
    assert welcome.last_error.startswith("The outcome is unknown")
    assert mail.outbox == []
