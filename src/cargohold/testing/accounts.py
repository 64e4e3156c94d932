"""Test helpers for accounts: a second user with an API key, through the real API."""

from __future__ import annotations

import secrets

import httpx


def make_user(
    api: httpx.Client,
    name: str,
    role: str = "user",
    password: str | None = None,
    quota_bytes: int | None = None,
) -> str:
    """Create user ``name`` (``api`` is an admin client) and return an API key token acting as them."""
    password = password or secrets.token_urlsafe(12)
    made = api.post(
        "/api/v1/users", json={"name": name, "password": password, "role": role, "quota_bytes": quota_bytes}
    )
    assert made.status_code == 201, made.text
    key = api.post("/api/v1/keys", json={"name": f"{name} test key", "user": name})
    assert key.status_code == 201, key.text
    return str(key.json()["token"])
