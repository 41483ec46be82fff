"""The deployment as docs/deploy.md makes it: a fresh PostgreSQL database, the documented
settings (deploy/env.example), `migrate` and `collectstatic`, then the web server and a
worker started exactly as deploy/'s systemd units say (only the venv's path, the
checkout's path and the port are substituted). Through the front door, as nginx passes
requests on (Host, X-Forwarded-Proto: https): /healthz answers, a visitor signs up with
the form the page serves, and a Stripe event signed with the endpoint's secret, registered
as the docs register it, is acknowledged by the web and processed by the worker. Then the
nightly backup (deploy/backup.sh) is restored into another database, as the docs' restore
procedure does, and holds the new account.

Stripe is the offline sandbox (STRIPE_SANDBOX=1, which DEBUG off allows when asked for
explicitly) in place of the live key; email is printed. PostgreSQL on 127.0.0.1:5432
(user postgres), as `make test` uses: skipped when it does not answer, a failure under
REQUIRE_POSTGRES=1 (CI).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import psycopg
import pytest
import requests

from tests.billing import stripe_fakes as sf
from tests.deploy_env import ROOT, documented_env
from tests.reliability.helpers import post_signed, until

# It makes its own PostgreSQL database whichever the suite runs on: `make test` runs it
# once, in its PostgreSQL half (tests/halves.py: ONE_HALF).
pytestmark = pytest.mark.slow

DEPLOY = ROOT / "deploy"
SERVER = "postgres://postgres@127.0.0.1:5432"
HOST = "app.smartflowsystems.com"  # deploy/env.example's ALLOWED_HOSTS
# What nginx adds (deploy/nginx-smartflow.conf).
PROXIED = {"Host": HOST, "X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}


def unit(name: str) -> dict[str, str]:
    """The [Service] (and [Unit]) keys of a unit file in deploy/."""
    keys: dict[str, str] = {}
    for line in (DEPLOY / name).read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            keys[key.strip()] = value.strip()
    return keys


def command(name: str, *, port: int) -> list[str]:
    """The unit's ExecStart, with the server's paths and port replaced by this checkout's."""
    service = unit(name)
    assert service["WorkingDirectory"] == "/srv/smartflow"
    argv = shlex.split(service["ExecStart"])
    venv_bin = Path(sys.executable).parent
    assert argv[0].startswith("/srv/smartflow/.venv/bin/"), argv
    argv[0] = str(venv_bin / Path(argv[0]).name)
    return [arg.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for arg in argv]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _postgres() -> psycopg.Connection:
    try:
        return psycopg.connect(f"{SERVER}/postgres", autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        if os.environ.get("REQUIRE_POSTGRES"):
            pytest.fail(
                f"PostgreSQL is not reachable on 127.0.0.1:5432 and REQUIRE_POSTGRES is set: {exc}"
            )
        pytest.skip(
            f"PostgreSQL is not reachable on 127.0.0.1:5432 (the deployment runs on it): {exc}"
        )


class Server:
    """A fresh database, the documented settings, and the processes started on them."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.databases: list[str] = []
        self.processes: list[subprocess.Popen[bytes]] = []
        self.port = _free_port()
        self.database = self.createdb()
        base = {k: os.environ[k] for k in ("PATH", "LANG") if k in os.environ}
        self.env = {
            **base,
            "HOME": str(tmp),
            "ENV_FILE": "/dev/null",  # no developer's .env: only the file systemd reads
            **documented_env(
                DATABASE_URL=self.url(self.database),
                # The sandbox in place of Stripe: it refuses live mode and a live key.
                STRIPE_SANDBOX="1",
                STRIPE_LIVE_MODE="false",
                STRIPE_LIVE_SECRET_KEY="",
                STRIPE_SANDBOX_DELIVERY="ordered",
                STRIPE_SANDBOX_SEED="28",
                # Printed, not sent to a provider.
                ANYMAIL_ESP="",
                EMAIL_BACKEND="django.core.mail.backends.console.EmailBackend",
            ),
        }

    def url(self, database: str) -> str:
        return f"{SERVER}/{database}"

    def createdb(self) -> str:
        name = f"smartflow_deploy_{uuid.uuid4().hex[:10]}"
        with _postgres() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        return name

    def query(self, sql: str, *params: object, database: str | None = None) -> list[tuple]:
        with psycopg.connect(self.url(database or self.database), autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()

    def start(self, argv: list[str], log: str) -> subprocess.Popen[bytes]:
        with (self.tmp / log).open("wb") as out:
            process = subprocess.Popen(
                argv, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        self.processes.append(process)
        return process

    def manage(self, *args: str, **env: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, f"manage.py {args[0]}: {result.stdout}{result.stderr}"
        return result.stdout

    def log(self, name: str) -> str:
        return (self.tmp / name).read_text(errors="replace")

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        with _postgres() as conn:
            for name in self.databases:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    started = Server(tmp_path)
    try:
        yield started
    finally:
        started.stop()


class _Forms(HTMLParser):
    """Each <form>'s method, action and fields (name, type, value, required)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(
                {
                    "method": a.get("method", "get").lower(),
                    "action": a.get("action", ""),
                    "fields": [],
                }
            )
        elif tag in ("input", "select", "textarea") and self.forms and a.get("name"):
            kind = a.get("type", "text").lower() if tag == "input" else tag
            self.forms[-1]["fields"].append((a["name"], kind, a.get("value", ""), "required" in a))


def signup_data(page: str, email: str, password: str) -> dict[str, str]:
    """What a visitor types into the signup form the page serves, found by field type
    rather than by name (the form may change): the address in the email field, the
    password in each password field, hidden fields (the CSRF token) as they are, required
    boxes ticked; optional fields left empty."""
    parser = _Forms()
    parser.feed(page)
    [form] = [
        f
        for f in parser.forms
        if f["method"] == "post" and any(k == "password" for _, k, _, _ in f["fields"])
    ]
    data: dict[str, str] = {}
    for name, kind, value, required in form["fields"]:
        if kind == "hidden":
            data[name] = value
        elif kind == "email" or name in ("email", "login"):
            data[name] = email
        elif kind == "password":
            data[name] = password
        elif kind == "checkbox" and required:
            data[name] = value or "on"
        elif name == "username":
            data[name] = email.partition("@")[0]
    assert any(v == email for v in data.values()), f"no email field in {form['fields']}"
    return data


def test_the_units_command_lines_serve_signups_and_process_webhooks(server: Server):
    web_unit, worker_unit = unit("smartflow-web.service"), unit("smartflow-worker@.service")
    assert worker_unit["Nice"] == "10"
    assert web_unit["Restart"] == worker_unit["Restart"] == "on-failure"
    assert web_unit["EnvironmentFile"] == worker_unit["EnvironmentFile"] == "/etc/smartflow/env"

    # docs/deploy.md: migrate and collectstatic, then the units.
    server.manage("migrate", "--noinput")
    server.manage("collectstatic", "--noinput", "-v0")
    web = server.start(command("smartflow-web.service", port=server.port), "web.log")
    server.start(command("smartflow-worker@.service", port=server.port), "worker.log")
    base = f"http://127.0.0.1:{server.port}"

    def answers() -> bool:
        assert web.poll() is None, server.log("web.log")
        try:
            return requests.get(f"{base}/healthz", headers=PROXIED, timeout=30).status_code == 200
        except (requests.ConnectionError, requests.Timeout):  # still starting
            return False

    until(answers, "gunicorn answers /healthz", seconds=300)

    # A visitor signs up, through the proxy, with DEBUG off: secure cookies, CSRF, HTTPS.
    visitor = requests.Session()
    visitor.headers.update(PROXIED)
    form = visitor.get(f"{base}/signup/", timeout=30)
    assert form.status_code == 200, form.text[:2000]
    email = "first.customer@example.com"
    signed_up = visitor.post(
        f"{base}/signup/",
        data=signup_data(form.text, email, "Deploy-Day-Passphrase-2026"),
        headers={
            "Referer": f"https://{HOST}/signup/",
            "Origin": f"https://{HOST}",
            # Secure cookies: requests keeps them off plain HTTP; the browser, on HTTPS to
            # nginx, sends them.
            "Cookie": "; ".join(f"{c.name}={c.value}" for c in form.cookies),
        },
        allow_redirects=False,
        timeout=30,
    )
    assert signed_up.status_code in (302, 303), signed_up.text[:3000]
    [(user_id,)] = server.query("SELECT id FROM accounts_user WHERE email = %s", email)

    # At "Stripe" (the sandbox, in this database): the customer, made before the endpoint
    # exists so that the sandbox itself delivers nothing.
    created = server.manage(
        "shell",
        "-c",
        "import json, stripe; from django.conf import settings; "
        f"c = stripe.Customer.create(api_key=settings.STRIPE_TEST_SECRET_KEY, email={email!r}, "
        f"metadata={{'djstripe_subscriber': '{user_id}'}}); print(json.dumps(c.to_dict()))",
        LOG_LEVEL="WARNING",
    )
    customer = json.loads(created.strip().splitlines()[-1])
    # docs/deploy.md: the endpoint's signing secret, as the Stripe dashboard gives it.
    registered = server.manage("billing_webhook", "--secret", sf.SECRET)
    path = re.search(r"https://[^/\s]+(/stripe/webhook/[^\s]+/)", registered).group(1)

    # docs/deploy.md, step 11, on this database: with a Stripe key in place of the
    # sandbox (which check --deploy refuses), the deployment checks pass.
    server.manage(
        "check",
        "--deploy",
        "--database",
        "default",
        "--fail-level",
        "WARNING",
        **documented_env(
            DATABASE_URL=server.url(server.database),
            STRIPE_SANDBOX="0",
            STRIPE_LIVE_MODE="false",
            STRIPE_TEST_SECRET_KEY="sk_test_" + "d" * 24,
            STRIPE_LIVE_SECRET_KEY="",
        ),
    )

    event = sf.event("customer.updated", customer)
    assert post_signed(f"{base}{path}", event, headers=PROXIED) == 200

    def processed() -> bool:
        return (
            server.query(
                "SELECT 1 FROM billing_webhookdelivery d JOIN djstripe_customer c ON c.id = %s"
                " WHERE d.event_id = %s AND d.state = 'processed' AND c.subscriber_id = %s",
                customer["id"],
                event["id"],
                user_id,
            )
            != []
        )

    until(processed, "the worker has processed the event", seconds=120)
    assert server.query(
        "SELECT count(*) FROM smartflow_workerheartbeat WHERE stopped_at IS NULL"
    ) == [(1,)]

    # The nightly backup, restored as docs/deploy.md restores it.
    backups = server.tmp / "backups"
    backups.mkdir()
    backup = subprocess.run(
        [str(DEPLOY / "backup.sh")],
        env={**server.env, "BACKUP_DIR": str(backups), "BACKUP_KEEP_DAYS": "14"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert backup.returncode == 0, backup.stderr
    [dump] = backups.glob("smartflow-*.dump")
    restored = server.createdb()
    subprocess.run(
        [
            "pg_restore",
            "--no-owner",
            "--no-privileges",
            f"--dbname={server.url(restored)}",
            str(dump),
        ],
        check=True,
        timeout=300,
    )
    assert server.query("SELECT email FROM accounts_user", database=restored) == [(email,)]
    assert server.query(
        "SELECT state FROM billing_webhookdelivery WHERE event_id = %s",
        event["id"],
        database=restored,
    ) == [("processed",)]
