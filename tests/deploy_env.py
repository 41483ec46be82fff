"""The production settings docs/deploy.md documents (deploy/env.example), as a dict of
environment variables, for the tests that start SmartFlow the way a server does."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV_EXAMPLE = ROOT / "deploy" / "env.example"
# What an operator fills in where the file says REPLACE (or leaves empty: SECRET_KEY).
SECRET_KEY = "deploy-test-" + "s3cr3t-7e6d5c4b3a29" * 4


def documented_env(**overrides: str) -> dict[str, str]:
    """deploy/env.example's variables with SECRET_KEY filled in, then `overrides`."""
    env: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f"deploy/env.example: {line!r}"
            assert name == name.strip(), f"deploy/env.example: {line!r}"
            env[name] = value
    return {**env, "SECRET_KEY": SECRET_KEY, **overrides}
