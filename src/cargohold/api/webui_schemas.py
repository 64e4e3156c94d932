"""Request and answer models of the web page's own routes (cookie sign-in), beside ``schemas.py``."""

from __future__ import annotations

from pydantic import Field

from cargohold.api.schemas import Answer, Login, UserOut


class CookieLogin(Login):
    """The sign-in form: user name and password, as ``/auth/login`` takes them."""


class CookieSession(Answer):
    """Who the session cookie signs in, and what the page needs to act with it."""

    user: UserOut
    csrf_token: str | None = Field(
        description="Send as X-CSRF-Token on every state-changing request (also the cargohold_csrf cookie); "
        "null when signed in with a bearer key"
    )
    idle_timeout: int = Field(description="Seconds without a request after which the cookie lapses")
