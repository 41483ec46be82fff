"""Generated hostile and malformed requests at every endpoint that takes input from
outside: dj-stripe's webhook, checkout, features, Twilio's status and inbound webhooks and
anymail's tracking webhooks. None is signed: bodies that are not UTF-8, 5 MB, nested
thousands deep, plausible events with fields of the wrong type; signature headers
missing, garbage, made with the wrong secret or token, stale, or valid for another body
or URL; basic auth missing, wrong or not base64.

Claims: never a 5xx (each endpoint answers one of the refusals it is meant to), and
nothing written. "Nothing written" means: no djstripe Event, Customer or Subscription, no
PlanChange or BillingAlert, no change to any user's plan or SMS consent and no change to
any OnboardingMessage. dj-stripe keeps a WebhookEventTrigger row for every request to its
endpoint that carries a Stripe-Signature header, by design (a record of what was
received); such rows are allowed, but every one must be invalid and unprocessed.

The victim's data makes the claim able to fail: each plausible payload would upgrade the
user, mark their messages delivered or bounced, or opt them out, if it were accepted.

Header values are drawn from what gunicorn, the production server, passes on: Latin-1
without control characters (it answers 400 to the rest itself). Generation is seeded
(derandomize), so a failure reproduces; Hypothesis prints the request that failed.
"""

from __future__ import annotations

import base64
import json
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import pytest
from django.db.models import Q
from django.test import Client, override_settings
from djstripe.models import Customer, Event, Subscription, WebhookEventTrigger
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from accounts.models import User
from billing.models import BillingAlert, PlanChange
from billing.plans import FEATURES
from onboarding.models import OnboardingMessage
from tests.billing import stripe_fakes as sf
from tests.billing.stripe_fakes import SECRET

SITE_URL = "https://app.smartflow.test"
TWILIO_TOKEN = "twilio-reliability-auth-token"
ANYMAIL_SECRET = "hook:reliability-secret"
PHONE = "+447700900123"
SMS_SID = "SM" + "b" * 32
EMAIL_ID = "5bcd3dfe-0000-4000-8000-00000000beef"
# Tracking webhooks of ESPs that work with basic auth alone, and some that need more
# settings (a signing key, boto3) than this site has.
ESPS = ("postmark", "sendgrid", "brevo", "sparkpost", "mailgun", "mandrill", "amazon_ses")
HUGE = b'{"id": "evt_' + b"A" * 5_000_000 + b'"}'  # twice Django's 2.5 MB body limit


@dataclass
class Victim:
    user: User
    email: OnboardingMessage
    sms: OnboardingMessage
    webhook_path: str
    payloads: dict[str, list[bytes]] = field(default_factory=dict)


@pytest.fixture
def victim(db, settings, fake_stripe, catalog, endpoint) -> Victim:
    settings.SITE_URL = SITE_URL
    settings.TWILIO_AUTH_TOKEN = TWILIO_TOKEN
    settings.ANYMAIL = {**settings.ANYMAIL, "WEBHOOK_SECRET": [ANYMAIL_SECRET]}
    user = User.objects.create_user(
        "victim@example.com", "correct-horse-battery-42", phone=PHONE, sms_opt_in=True
    )
    common = {"user": user, "template": "welcome", "plan": "flowkit", "status": "sent"}
    email = OnboardingMessage.objects.create(
        channel="email", trigger="plan_change:1", provider_message_id=EMAIL_ID, **common
    )
    sms = OnboardingMessage.objects.create(
        channel="sms", trigger="plan_change:1", provider_message_id=SMS_SID, **common
    )
    # At Stripe: a paid LaunchPack checkout of the victim's, so an accepted event would
    # upgrade them.
    cus = sf.customer(email=user.email, metadata={"djstripe_subscriber": str(user.pk)})
    sub = sf.subscription(cus=cus, prc=catalog["launchpack_monthly"])
    session = sf.session(cus=cus, mode="subscription", user_id=user.pk, sub=sub)
    fake_stripe.add(cus, sub, session)
    stripe_events = [
        sf.event("checkout.session.completed", session),
        sf.event("customer.subscription.created", sub),
        sf.event("invoice.paid", sf.invoice(cus=cus, sub=sub)),
    ]
    bounce = {
        "RecordType": "Bounce",
        "MessageID": EMAIL_ID,
        "Type": "HardBounce",
        "Email": user.email,
        "Metadata": {"onboarding_message": str(email.pk)},
    }
    sendgrid = [{"event": "bounce", "sg_message_id": EMAIL_ID, "email": user.email}]
    return Victim(
        user=user,
        email=email,
        sms=sms,
        webhook_path=f"/stripe/webhook/{endpoint.djstripe_uuid}/",
        payloads={
            "stripe": [json.dumps(e).encode() for e in stripe_events],
            "twilio_status": [
                urlencode({"MessageSid": SMS_SID, "MessageStatus": s}).encode()
                for s in ("delivered", "undelivered", "failed")
            ],
            "twilio_inbound": [
                urlencode({"From": PHONE, "Body": word}).encode()
                for word in ("STOP", "UNSUBSCRIBE", "START")
            ],
            "anymail": [json.dumps(bounce).encode(), json.dumps(sendgrid).encode()],
            "checkout": [
                urlencode({"plan": p, "interval": i}).encode()
                for p, i in (("launchpack", "yearly"), ("gold", "monthly"), ("", "oneoff"))
            ],
        },
    )


def _state() -> dict[str, Any]:
    """Everything an unsigned request must leave as it was."""
    return {
        "events": Event.objects.count(),
        "customers": Customer.objects.count(),
        "subscriptions": Subscription.objects.count(),
        "plan_changes": PlanChange.objects.count(),
        "alerts": BillingAlert.objects.count(),
        "accepted_triggers": WebhookEventTrigger.objects.filter(
            Q(valid=True) | Q(processed=True)
        ).count(),
        "users": list(User.objects.order_by("pk").values_list("pk", "plan", "sms_opt_in")),
        "messages": list(
            OnboardingMessage.objects.order_by("pk").values_list(
                "pk", "status", "last_error", "status_changed_at"
            )
        ),
    }


# --- What to send -------------------------------------------------------------------------

HEADER_TEXT = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=120,
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


def _nested(depth: int, kind: str) -> bytes:
    if kind == "[":
        return b"[" * depth + b"]" * depth
    return b'{"data":' * depth + b"{}" + b"}" * depth


@st.composite
def retyped(draw: st.DrawFn, payload: bytes) -> bytes:
    """A plausible JSON payload with one field, or one field of its object, retyped."""
    data = json.loads(payload)
    target = data[0] if isinstance(data, list) else data
    inner = (target.get("data") or {}).get("object") if isinstance(target, dict) else None
    if isinstance(inner, dict) and draw(st.booleans()):
        target = inner
    if isinstance(target, dict) and target:
        target[draw(st.sampled_from(sorted(target)))] = draw(JSON_VALUES)
    return json.dumps(data).encode()


def bodies(plausible: list[bytes]) -> st.SearchStrategy[bytes]:
    some = st.sampled_from(plausible)
    as_json = [p for p in plausible if p[:1] in (b"{", b"[")]
    return st.one_of(
        st.just(b""),
        st.binary(max_size=300),  # mostly not UTF-8
        st.text(max_size=200).map(str.encode),
        JSON_VALUES.map(lambda value: json.dumps(value).encode()),
        st.dictionaries(st.text(max_size=12), st.text(max_size=40), max_size=5).map(
            lambda form: urlencode(form).encode()
        ),
        some,
        some.map(lambda p: p.decode().encode("utf-16")),
        some.map(lambda p: p + b"\xff\xfe\x00"),
        st.sampled_from(as_json).flatmap(retyped) if as_json else some,
        st.builds(_nested, st.integers(500, 60_000), st.sampled_from("[{")),
        st.just(HUGE),
    )


CONTENT_TYPES = st.one_of(
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=xyz",
            "text/plain",
            "application/octet-stream",
        ]
    ),
    HEADER_TEXT,
)


@st.composite
def stripe_signature(draw: st.DrawFn, body: bytes) -> str | None:
    now = int(time.time())
    return draw(
        st.one_of(
            st.none(),
            HEADER_TEXT,
            st.just(sf.signature(body, "whsec_forger")),
            st.just(sf.signature(body, SECRET, timestamp=now - 3600)),  # replayed
            st.just(sf.signature(body + b" ", SECRET)),  # signed another body
            st.builds(lambda t, mac: f"t={t},v1={mac}", st.integers(-(2**40), 2**40), HEADER_TEXT),
        )
    )


@st.composite
def twilio_signature(draw: st.DrawFn, url: str, body: bytes) -> str | None:
    params = _form(body)
    return draw(
        st.one_of(
            st.none(),
            HEADER_TEXT,
            st.just(RequestValidator("someone-elses-token").compute_signature(url, params)),
            st.just(RequestValidator(TWILIO_TOKEN).compute_signature(url + "?x=1", params)),
            st.just(RequestValidator(TWILIO_TOKEN).compute_signature(url, {**params, "x": "1"})),
        )
    )


def _form(body: bytes) -> dict[str, str]:
    try:
        return dict(parse_qsl(body.decode()))
    except UnicodeDecodeError:
        return {}


def _basic(credentials: bytes) -> str:
    return "Basic " + base64.b64encode(credentials).decode()


BASIC_AUTH = st.one_of(
    st.none(),
    HEADER_TEXT,
    st.just(_basic(b"hook:wrong")),
    st.just(_basic(b"someone:reliability-secret")),
    st.just(_basic(ANYMAIL_SECRET.encode() + b"x")),
    st.binary(max_size=40).map(_basic),  # decodes to bytes that are not UTF-8
    st.just("Basic !!!not-base64!!!"),
    st.just("Bearer " + ANYMAIL_SECRET),
)
METHODS = st.sampled_from(["POST"] * 12 + ["GET", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])


@dataclass(frozen=True)
class Attack:
    target: str
    method: str
    path: str
    body: bytes = b""
    content_type: str = "application/octet-stream"
    headers: dict[str, str] = field(default_factory=dict)
    signed_in: bool = False
    secrets_configured: bool = True


def _headers(**values: str | None) -> dict[str, str]:
    return {name: value for name, value in values.items() if value is not None}


@st.composite
def attacks(draw: st.DrawFn, victim: Victim, target: str | None = None) -> Attack:
    target = target or draw(
        st.sampled_from(
            ["stripe"] * 4
            + ["checkout", "feature"]
            + ["twilio_status", "twilio_inbound"] * 2
            + ["anymail"] * 2
        )
    )
    method = draw(METHODS)
    content_type = draw(CONTENT_TYPES)
    if target == "feature":
        name = draw(st.one_of(st.sampled_from(sorted(FEATURES)), st.text(min_size=1)))
        return Attack(
            target,
            draw(st.sampled_from(["GET", "GET", "POST", "HEAD"])),
            f"/feature/{quote(name, safe='')}/",
            headers=_headers(Accept=draw(st.none() | st.just("application/json") | HEADER_TEXT)),
            signed_in=draw(st.booleans()),
        )
    if target == "checkout":
        body = draw(bodies(victim.payloads["checkout"]))
        return Attack(
            target, method, "/billing/checkout/", body, content_type, signed_in=draw(st.booleans())
        )
    if target == "stripe":
        body = draw(bodies(victim.payloads["stripe"]))
        path = victim.webhook_path
        if draw(st.integers(0, 9)) == 0:
            path = f"/stripe/webhook/{uuid.UUID(int=draw(st.integers(0, 2**128 - 1)))}/"
        headers = _headers(
            **{
                "Stripe-Signature": draw(stripe_signature(body)),
                # Honoured by dj-stripe with DEBUG on only: must change nothing here.
                "X-Djstripe-Webhook-Secret": draw(st.none() | st.just("whsec_forger")),
            }
        )
        return Attack(target, method, path, body, content_type, headers)
    if target.startswith("twilio"):
        body = draw(bodies(victim.payloads[target]))
        path = f"/onboarding/twilio/{target.removeprefix('twilio_')}/"
        signature = draw(twilio_signature(SITE_URL + path, body))
        return Attack(
            target,
            method,
            path,
            body,
            draw(st.just("application/x-www-form-urlencoded") | CONTENT_TYPES),
            _headers(**{"X-Twilio-Signature": signature}),
            secrets_configured=draw(st.integers(0, 4)) > 0,
        )
    body = draw(bodies(victim.payloads["anymail"]))
    return Attack(
        target,
        method,
        f"/onboarding/anymail/{draw(st.sampled_from(ESPS))}/tracking/",
        body,
        content_type,
        _headers(Authorization=draw(BASIC_AUTH)),
        secrets_configured=draw(st.integers(0, 4)) > 0,
    )


# What each endpoint may answer a request nobody signed (and OPTIONS: Django's default
# 200; HEAD: anymail's 200, which some ESPs use to check that a webhook URL exists).
REFUSALS: dict[str, set[int]] = {
    # 413: a body over STRIPE_WEBHOOK_MAX_BYTES, refused before it is read.
    "stripe": {400, 404, 405, 413},
    # 403: the signed-in victim has not confirmed their address yet (billing/decorators.py);
    # 429: their eleventh checkout in a minute (billing/ratelimit.py).
    "checkout": {302, 400, 403, 405, 429},
    "feature": {200, 302, 401, 402, 404, 405},
    "twilio_status": {400, 403, 405},
    "twilio_inbound": {400, 403, 405},
    "anymail": {400, 403, 404, 405},
}


def _send(attack: Attack, anonymous: Client, signed_in: Client) -> int:
    client = signed_in if attack.signed_in else anonymous
    unset = {"TWILIO_AUTH_TOKEN": "", "ANYMAIL": {"WEBHOOK_SECRET": []}}
    with override_settings(**({} if attack.secrets_configured else unset)):
        response = client.generic(
            attack.method,
            attack.path,
            attack.body,
            content_type=attack.content_type,
            headers=attack.headers,
        )
    return response.status_code


# Each endpoint gets its own run, so that each gets its share whatever Hypothesis draws
# (a draw of the target among all six left the share to chance, and Hypothesis's choices
# depend on the modules already imported, so the share changed with the test order).
@pytest.mark.parametrize("target", sorted(REFUSALS))
def test_a_thousand_unsigned_requests_get_no_5xx_and_write_nothing(victim: Victim, target: str):
    anonymous, signed_in = Client(), Client()
    signed_in.force_login(victim.user)
    before = _state()
    sent: list[str] = []

    @settings(
        max_examples=1000 // len(REFUSALS) + 1,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(attack=attacks(victim, target))
    def attempt(attack: Attack) -> None:
        status = _send(attack, anonymous, signed_in)
        sent.append(attack.target)
        harmless = attack.method == "OPTIONS" or (attack.method, attack.target) == (
            "HEAD",
            "anymail",
        )
        allowed = REFUSALS[attack.target] | ({200} if harmless else set())
        assert status in allowed, f"{attack.method} {attack.path} answered {status}"
        assert _state() == before

    attempt()

    # Together the six runs send over a thousand requests.
    assert len(sent) * len(REFUSALS) >= 1000
    assert set(sent) == {target}


# --- Bytes the test client cannot send --------------------------------------------------


def _raw_request(host: str, port: int, request: bytes) -> int:
    """Send `request` as bytes on a fresh connection; the answer's status code."""
    with socket.create_connection((host, port), timeout=30) as conn:
        conn.sendall(request)
        conn.shutdown(socket.SHUT_WR)
        answer = b""
        while b"\r\n" not in answer and (chunk := conn.recv(4096)):
            answer += chunk
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1."), f"not an HTTP answer: {answer[:80]!r}"
    return int(status_line.split()[1])


RAW_HEADER_VALUES = st.binary(max_size=80).map(
    # What gunicorn passes on: any byte but control characters.
    lambda raw: bytes(b for b in raw if b >= 0x20 and b != 0x7F)
)


@st.composite
def raw_requests(draw: st.DrawFn, victim: Victim) -> bytes:
    path = draw(
        st.sampled_from(
            [
                victim.webhook_path,
                "/onboarding/twilio/status/",
                "/onboarding/twilio/inbound/",
                "/onboarding/anymail/postmark/tracking/",
                "/billing/checkout/",
                "/feature/ai_concierge/",
            ]
        )
    )
    # Raw bytes in the request target: not UTF-8, or broken percent-escapes.
    path_bytes = path.encode() + draw(st.sampled_from([b"", b"\xff\xfe", b"%ff%", b"%zz", b"\x80"]))
    body = draw(bodies(victim.payloads["stripe"] + victim.payloads["twilio_status"]))
    headers = [
        (b"Host", b"localhost"),
        (b"Content-Type", draw(RAW_HEADER_VALUES)),
        (b"Stripe-Signature", draw(RAW_HEADER_VALUES)),
        (b"X-Twilio-Signature", draw(RAW_HEADER_VALUES)),
        (b"Authorization", b"Basic " + draw(RAW_HEADER_VALUES)),
        (b"X-" + draw(st.binary(min_size=1, max_size=10)).hex().encode(), draw(RAW_HEADER_VALUES)),
    ]
    if draw(st.booleans()):
        headers.append((b"Stripe-Signature", draw(RAW_HEADER_VALUES)))  # twice
    head = b"POST " + path_bytes + b" HTTP/1.1\r\n"
    head += b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    head += b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n"
    return head + body


@pytest.mark.django_db(transaction=True)
def test_raw_bytes_over_http_get_no_5xx_and_write_nothing(live_server, victim: Victim):
    """Non-UTF-8 bytes in header values and the request target, repeated signature
    headers: what only a real HTTP connection can carry, against the live server."""
    parts = urlsplit(live_server.url)
    before = _state()
    sent: list[int] = []

    @settings(
        max_examples=100,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(request=raw_requests(victim))
    def attempt(request: bytes) -> None:
        status = _raw_request(parts.hostname or "localhost", parts.port or 80, request)
        sent.append(status)
        assert status < 500, f"{request[:200]!r} answered {status}"
        assert _state() == before

    attempt()

    assert len(sent) >= 100
