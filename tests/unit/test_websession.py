"""The web page's cookie session: CSRF tokens are bound to the session and keyed by the server."""

from __future__ import annotations

from cargohold.api.websession import CookieSessions


def test_csrf_tokens_are_per_session_and_per_key() -> None:
    sessions = CookieSessions.build(b"k" * 32, 1800)
    token = sessions.csrf_token("family-a")
    assert token == sessions.csrf_token("family-a")
    assert token != sessions.csrf_token("family-b")
    assert token != CookieSessions.build(b"j" * 32, 1800).csrf_token("family-a")
    assert len(token) == 43 and "=" not in token


def test_the_cookie_is_renewed_well_before_it_lapses() -> None:
    assert CookieSessions.build(b"k" * 32, 1800).renew_after() == 60
    assert CookieSessions.build(b"k" * 32, 100).renew_after() == 25
    assert CookieSessions.build(b"k" * 32, 1800).idle_timeout == 1800
