"""The README's "first ten minutes" tour, step by step, as a newcomer takes it.

`make run` on a non-default port in a fresh copy of the checkout (its own .env, SQLite file
and static files; the virtualenv shared), with only the environment a newcomer's shell
has: no DEBUG, no SITE_URL, no SECRET_KEY. Every command the README and the banner give
runs in a second process with that same environment, as if typed in a second terminal.
Emails are read where the newcomer reads them: printed by `make run`.

If a step here changes, the README's tour changes with it: this test is its proof.
"""

from __future__ import annotations

import email
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from urllib.request import urlopen

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.helpers import assert_fits, shot
from tests.helpers import PASSWORD

ROOT = Path(__file__).resolve().parents[2]
CARD_3DS = "4000 0027 6000 3184"  # 3-D Secure on every payment, renewals included
# What `make run` makes or fills in a checkout: never copied into the newcomer's.
NOT_COPIED = {".git", ".venv", ".env", "staticfiles", "artifacts", "bench", "node_modules"}


@dataclass
class MakeRun:
    """`make run` going in a terminal: its folder, URL and everything it printed."""

    folder: Path
    url: str
    env: dict[str, str]
    output: list[str] = field(default_factory=list)

    def printed(self) -> str:
        return "".join(self.output)

    def wait_for(self, what: str, seconds: float = 240) -> None:
        _wait(lambda: what in self.printed(), f"{what!r} in make run's output", seconds)

    def second_terminal(self, command: str, **extra: str) -> subprocess.CompletedProcess[str]:
        """A command exactly as the README or the banner gives it, in the project folder."""
        return subprocess.run(
            ["bash", "-c", command],
            cwd=self.folder,
            env={**self.env, **extra},
            capture_output=True,
            text=True,
            timeout=180,
        )

    def emails(self, subject: str) -> list[Message]:
        # The console email backend prints each message, then a line of 79 dashes.
        chunks = self.printed().split("-" * 79)
        found = []
        for chunk in chunks:
            start = chunk.find("Content-Type: ")
            if start < 0 or f"Subject: {subject}" not in chunk:
                continue
            found.append(email.message_from_string(chunk[start:].lstrip()))
        return found


def _text(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            if part.get("Content-Transfer-Encoding", "").lower() in ("", "7bit", "8bit"):
                return str(part.get_payload())  # printed as text already
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode(part.get_content_charset() or "utf-8")
    raise AssertionError("no text part")


def _wait(condition: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _newcomer_checkout(target: Path) -> None:
    """The project's files as a fresh clone has them, beside the shared virtualenv."""
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if tracked.returncode == 0 and tracked.stdout:
        names = [n for n in tracked.stdout.split("\0") if n]
    else:  # not a git checkout: everything but what make run itself makes
        names = [
            str(p.relative_to(ROOT))
            for p in ROOT.rglob("*")
            if p.is_file() and not NOT_COPIED.intersection(p.relative_to(ROOT).parts)
        ]
    for name in names:
        source = ROOT / name
        if not source.is_file() or NOT_COPIED.intersection(Path(name).parts):
            continue
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        # copy2 keeps the times, so make sees requirements.txt older than the venv's stamp.
        shutil.copy2(source, target / name)
    (target / ".venv").symlink_to((ROOT / ".venv").resolve())


@pytest.fixture(scope="module")
def make_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MakeRun]:
    """One `make run` for the tour's tests (each with its own customers)."""
    if not (ROOT / ".venv" / "bin" / "python").exists():
        pytest.skip("no .venv: run `make test`, which sets it up")
    tmp_path = tmp_path_factory.mktemp("newcomer")
    folder = tmp_path / "smartflow"
    folder.mkdir()
    _newcomer_checkout(folder)
    port = _free_port()
    # A newcomer's shell: none of the test run's variables (DEBUG, SECRET_KEY, SITE_URL,
    # STRIPE_SANDBOX, ENV_FILE ...).
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "USER", "TERM") if k in os.environ}
    run = MakeRun(folder=folder, url=f"http://127.0.0.1:{port}", env=env)
    process = subprocess.Popen(
        ["make", "run", f"PORT={port}"],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # one process group: make, the server and the worker
    )

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            run.output.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        run.wait_for("Delete it to start over")  # the banner's last news: it is up
        yield run
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=20)
        reader.join(timeout=5)
        log = Path(os.environ.get("MAKE_RUN_LOG", tmp_path / "make-run.log"))
        log.write_text(run.printed())


def _readme_block(heading_step: str) -> str:
    """The shell command of the README tour's step starting with `heading_step`."""
    readme = (ROOT / "README.md").read_text()
    step = readme[readme.index(heading_step) :]
    block = re.search(r"```sh\n(.*?)```", step, re.S)
    assert block, f"no command under {heading_step!r} in the README"
    return block.group(1).replace("\\\n", " ").strip()


def _sign_up(page: Page, site: str, address: str, make_run: MakeRun) -> None:
    page.goto(f"{site}/signup/")
    page.get_by_label("Email address").fill(address)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password confirmation").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    _confirm_email(page, site, address, make_run)


def _confirm_email(page: Page, site: str, address: str, make_run: MakeRun) -> None:
    """Open the confirmation link make run printed for `address`, confirm: signed in."""
    expect(page.get_by_role("heading", name="Confirm your email address")).to_be_visible()

    def sent() -> list[Message]:
        return [
            m
            for m in make_run.emails("SmartFlow: Confirm your email address")
            if address in m["To"]
        ]

    _wait(lambda: bool(sent()), f"the confirmation email to {address}")
    [link] = re.findall(rf"{re.escape(site)}/confirm-email/\S+", _text(sent()[-1]))
    page.goto(link)
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url(f"{site}/")


def _until_plan(page: Page, site: str, plan: str) -> None:
    def shown() -> bool:
        page.goto(f"{site}/")
        return page.locator(".plan-name").get_attribute("data-plan") == plan

    _wait(shown, f"the dashboard to show {plan}", 60)


def test_the_readme_tour_works_step_by_step(page: Page, make_run: MakeRun):
    site = make_run.url
    customer = "newcomer@example.com"

    # The banner names the settings file make run wrote, and .env holds this port.
    assert str(make_run.folder / ".env") in make_run.printed()
    assert f"SITE_URL={site}\n" in (make_run.folder / ".env").read_text()

    # 1. The landing page, with the three plans and their prices; it fits a phone.
    page.goto(f"{site}/")
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    for plan, price in (("Starter", "Free"), ("FlowKit", "£49.00"), ("LaunchPack", "£99.00")):
        expect(page.get_by_role("heading", name=plan)).to_be_visible()
        expect(page.get_by_text(price).first).to_be_visible()
    for width in (375, 1280):
        assert_fits(page, width)
        shot(page, f"landing-{width}")
    page.set_viewport_size({"width": 1280, "height": 900})

    # 2. Sign up: the dashboard, on Starter, AI concierge locked.
    page.get_by_role("main").get_by_role("link", name="Sign up", exact=True).click()
    page.get_by_label("Email address").fill(customer)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password confirmation").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    _confirm_email(page, site, customer, make_run)
    assert page.locator(".plan-name").get_attribute("data-plan") == "starter"
    expect(page.locator('[data-feature="ai_concierge"]').get_by_text("Locked")).to_be_visible()

    # 3. Pricing, Subscribe monthly under FlowKit, pay with 4242 on the sandbox's page.
    page.get_by_role("navigation").get_by_role("link", name="Pricing").click()
    page.get_by_role("button", name="Buy FlowKit monthly").click()
    page.wait_for_url(re.compile(rf"{re.escape(site)}/sandbox/checkout/cs_test_\w+/"))
    page.get_by_label(re.compile("card number", re.I)).fill("4242 4242 4242 4242")
    page.get_by_role("button", name="Pay £49.00").click()

    # 4. Live at once; the dashboard unlocks FlowKit's features; the welcome is printed in
    #    the terminal running make run.
    expect(
        page.get_by_role("heading", name=re.compile("Your FlowKit plan is live"))
    ).to_be_visible()
    page.get_by_role("link", name="Go to your dashboard").click()
    assert page.locator(".plan-name").get_attribute("data-plan") == "flowkit"
    for feature in ("sms_reminders", "client_import"):
        expect(page.locator(f'[data-feature="{feature}"]').get_by_text("Available")).to_be_visible()
    _wait(lambda: bool(make_run.emails("Your SmartFlow plan is live")), "the welcome email")

    # 5. AI concierge needs LaunchPack: 402; SMS reminders are FlowKit's: 200.
    assert page.request.get(f"{site}/feature/ai_concierge/").status == 402
    assert page.request.get(f"{site}/feature/sms_reminders/").status == 200

    # 6. A declined card: Pay once under LaunchPack with 0002; nothing changes.
    page.goto(f"{site}/pricing/")
    page.get_by_role("button", name="Buy LaunchPack once").click()
    page.wait_for_url(re.compile(r".*/sandbox/checkout/cs_test_\w+/"))
    page.get_by_label(re.compile("card number", re.I)).fill("4000 0000 0000 0002")
    page.get_by_role("button", name=re.compile(r"^Pay ")).click()
    expect(page.get_by_text("Your card was declined")).to_be_visible()
    _until_plan(page, site, "flowkit")

    # 7. A staff login with the README's exact command, typed in a second terminal.
    command = _readme_block("7. Make a staff login")
    assert command.startswith("DJANGO_SUPERUSER_EMAIL=staff@example.com")
    created = make_run.second_terminal(command)
    assert created.returncode == 0, created.stdout + created.stderr
    # ... and the banner's own version of it.
    banner = re.search(r"^\s+(DJANGO_SUPERUSER_EMAIL=.*--noinput)$", make_run.printed(), re.M)
    assert banner, "the banner gives a createsuperuser command"
    words = shlex.split(banner.group(1))
    words[0] = "DJANGO_SUPERUSER_EMAIL=banner-staff@example.com"
    created = make_run.second_terminal(shlex.join(words))
    assert created.returncode == 0, created.stdout + created.stderr

    # 8. The admin: log in, Users, search for the customer, open them.
    page.goto(f"{site}/admin/")
    page.get_by_label(re.compile("^Email", re.I)).fill("staff@example.com")
    page.get_by_label("Password").fill("pick-a-long-one")
    page.get_by_role("button", name=re.compile("Log in", re.I)).click()
    page.get_by_role("link", name="Users", exact=True).filter(visible=True).first.click()
    page.locator("#searchbar").fill(customer)
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name=customer).click()
    history = page.locator("#plan_changes-group, .inline-group").filter(has_text="Plan history")
    expect(history.get_by_text("FlowKit").first).to_be_visible()
    expect(history.get_by_text("Starter").first).to_be_visible()
    shot(page, "tour-admin-user")


def test_a_3d_secure_renewal_email_link_opens_on_make_runs_port(new_page, make_run: MakeRun):
    # The sandbox clock moved from a second terminal (the banner's command) finalizes the
    # renewal there; its email's link must reach the server on this port, not :8000.
    site = make_run.url
    page = new_page()
    _sign_up(page, site, "secure@example.com", make_run)
    page.goto(f"{site}/pricing/")
    page.get_by_role("button", name="Buy FlowKit monthly").click()
    page.get_by_label(re.compile("card number", re.I)).fill(CARD_3DS)
    page.get_by_role("button", name=re.compile(r"^Pay ")).click()
    page.get_by_role("button", name="Complete authentication").click()
    page.wait_for_url(re.compile(r".*/billing/success/.*"))
    _until_plan(page, site, "flowkit")

    banner = re.search(
        r"\.venv/bin/python manage\.py stripe_sandbox advance --days 3", make_run.printed()
    )
    assert banner, "the banner gives the sandbox's advance command"
    # The banner's command as printed, then the same a month on: past the renewal.
    for command in (banner.group(0), banner.group(0).replace("--days 3", "--days 30")):
        moved = make_run.second_terminal(command)
        assert moved.returncode == 0, moved.stdout + moved.stderr

    subject = "Please confirm your SmartFlow payment"
    _wait(lambda: bool(make_run.emails(subject)), "the confirm-payment email", 90)
    body = _text(make_run.emails(subject)[0])
    link = re.search(r"https?://\S+/sandbox/invoice/in_\w+/", body)
    assert link, body
    assert link.group(0).startswith(f"{site}/"), link.group(0)
    with urlopen(link.group(0), timeout=30) as answer:  # the link opens
        assert answer.status == 200
    page.goto(link.group(0))
    expect(page.get_by_role("heading", name="Authenticate this payment")).to_be_visible()
    page.get_by_role("button", name="Complete authentication").click()
    expect(page.get_by_text("Payment received: the invoice is paid.")).to_be_visible()
    shot(page, "tour-3ds-hosted-invoice")
