"""`make run`'s settings, kept in `.env` so that every later command finds them.

    python -m smartflow.devenv --host 127.0.0.1 --port 8000

`make run` calls this before anything else. The first time, it writes a git-ignored
`.env` for local use: DEBUG on, a generated development SECRET_KEY, SITE_URL from HOST and
PORT, and the sandbox's delivery seed. Later runs keep the key and the seed and move
SITE_URL to the HOST and PORT of this run. The settings read `.env` in every process, so a
`manage.py` command typed in a second terminal behaves exactly as the running server does,
its links included. Delete `.env` to start over.

A `.env` that `make run` did not write (no header line) is the developer's own: it is left
as it is. Imports nothing of Django: it runs before the settings can load.
"""

from __future__ import annotations

import argparse
import re
import secrets
from pathlib import Path

ENV_FILE = Path(__file__).resolve().parent.parent / ".env"
HEADER = "# Written by `make run` for local development. Delete this file to start over."


def _line(name: str, value: str) -> str:
    return f"{name}={value}"


def dev_env_write(*, path: Path, host: str, port: int) -> str:
    """Write or update `path` for `make run` on host:port; return what was done, in words."""
    site_url = f"http://{host}:{port}"
    if not path.exists():
        lines = [
            HEADER,
            "# Every manage.py command in this folder reads it; the environment wins over it.",
            _line("DEBUG", "true"),
            # Only ever a development key: with DEBUG off the settings want a real one.
            _line("SECRET_KEY", "dev-" + secrets.token_urlsafe(48)),
            "# Follows `make run HOST=... PORT=...` (links in emails, Stripe redirects).",
            _line("SITE_URL", site_url),
            "# The sandbox's webhook delivery choices (delete the line for a new seed).",
            _line("STRIPE_SANDBOX_SEED", str(secrets.randbelow(10**6))),
        ]
        path.write_text("\n".join(lines) + "\n")
        return f"wrote {path} (DEBUG on, a development SECRET_KEY, SITE_URL={site_url})"

    text = path.read_text()
    if not text.startswith(HEADER):
        return f"using your own {path} as it is (make run did not write it)"
    wanted = {
        "DEBUG": "true",
        "SECRET_KEY": "dev-" + secrets.token_urlsafe(48),
        "STRIPE_SANDBOX_SEED": str(secrets.randbelow(10**6)),
    }
    lines = text.splitlines()
    present = {m.group(1) for line in lines if (m := re.match(r"([A-Z_][A-Z0-9_]*)=", line))}
    lines = [
        _line("SITE_URL", site_url) if line.startswith("SITE_URL=") else line for line in lines
    ]
    lines += [_line(name, value) for name, value in wanted.items() if name not in present]
    if "SITE_URL" not in present:
        lines.append(_line("SITE_URL", site_url))
    new = "\n".join(lines) + "\n"
    if new == text:
        return f"using {path} (SITE_URL={site_url})"
    path.write_text(new)
    return f"updated {path} (SITE_URL={site_url})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--env-file", type=Path, default=ENV_FILE)
    args = parser.parse_args()
    print(f"make run: {dev_env_write(path=args.env_file, host=args.host, port=args.port)}")


if __name__ == "__main__":
    main()
