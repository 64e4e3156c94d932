"""Access tokens and refresh-token format: issue, verify, and every way a token can be bad."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from cargohold.service.tokens import (
    AccessClaims,
    InvalidToken,
    TokenExpired,
    TokenSigner,
    looks_like_jwt,
    signing_key,
    split_refresh_token,
)

KEY = signing_key(None, "cluster secret")


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _payload(token: str) -> dict[str, object]:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))  # type: ignore[no-any-return]


def test_issue_and_verify_round_trip() -> None:
    signer = TokenSigner(KEY, ttl=900)
    token = signer.issue(42, "alice", "fam1")
    claims = signer.verify(token)
    assert isinstance(claims, AccessClaims)
    assert (claims.user_id, claims.name, claims.session) == (42, "alice", "fam1")
    assert timedelta(seconds=900) <= claims.expires_at - claims.issued_at <= timedelta(seconds=901)
    payload = _payload(token)
    assert payload["sub"] == "42" and payload["typ"] == "access" and payload["iss"] == "cargohold"
    assert payload["sid"] == "fam1" and "role" not in payload


def test_expired_token_is_token_expired() -> None:
    signer = TokenSigner(KEY, ttl=60)
    token = signer.issue(1, "a", "f", now=datetime.now(UTC) - timedelta(minutes=5))
    with pytest.raises(TokenExpired) as caught:
        signer.verify(token)
    assert caught.value.status == 401 and caught.value.code == "token_expired"


def test_verify_against_a_given_clock() -> None:
    signer = TokenSigner(KEY, ttl=60)
    issued = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)
    token = signer.issue(1, "a", "f", now=issued)
    assert signer.verify(token, now=issued + timedelta(seconds=59)).user_id == 1
    with pytest.raises(TokenExpired):
        signer.verify(token, now=issued + timedelta(seconds=60))


def test_tampered_payload_is_invalid_even_when_expired() -> None:
    signer = TokenSigner(KEY, ttl=60)
    token = signer.issue(1, "user", "f", now=datetime.now(UTC) - timedelta(hours=1))
    header, _, signature = token.split(".")
    forged = _b64({**_payload(token), "sub": "2", "name": "admin"})
    with pytest.raises(InvalidToken) as caught:
        signer.verify(f"{header}.{forged}.{signature}")
    assert caught.value.code == "invalid_token"


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # signature changed
        lambda t: t.split(".")[0] + "." + t.split(".")[1] + ".",  # signature dropped
        lambda t: "x.y.z",
        lambda t: t.replace(".", "", 1),
    ],
    ids=["signature", "no-signature", "garbage", "two-parts"],
)
def test_mangled_tokens_are_invalid(mangle) -> None:  # type: ignore[no-untyped-def]
    signer = TokenSigner(KEY, ttl=60)
    with pytest.raises(InvalidToken):
        signer.verify(mangle(signer.issue(1, "a", "f")))


def test_other_key_and_other_algorithms_are_refused() -> None:
    token = TokenSigner(signing_key(None, "another cluster"), ttl=60).issue(1, "a", "f")
    with pytest.raises(InvalidToken):
        TokenSigner(KEY, ttl=60).verify(token)
    now = datetime.now(UTC)
    claims = {"sub": "1", "name": "a", "sid": "f", "typ": "access", "iss": "cargohold", "iat": now}
    unsigned = jwt.encode({**claims, "exp": now + timedelta(minutes=1)}, None, algorithm="none")
    with pytest.raises(InvalidToken):
        TokenSigner(KEY, ttl=60).verify(unsigned)


@pytest.mark.parametrize(
    "change",
    [{"typ": "refresh"}, {"sub": "not-a-number"}, {"iss": "someone-else"}, {"sid": None}, {"name": None}],
)
def test_claims_must_be_ours(change: dict[str, object]) -> None:
    now = datetime.now(UTC)
    claims: dict[str, object] = {
        "sub": "1",
        "name": "a",
        "sid": "f",
        "typ": "access",
        "iss": "cargohold",
        "iat": now,
        "exp": now + timedelta(minutes=1),
    }
    claims.update(change)
    token = jwt.encode({k: v for k, v in claims.items() if v is not None}, KEY, algorithm="HS256")
    with pytest.raises(InvalidToken):
        TokenSigner(KEY, ttl=60).verify(token)


def test_signing_key_is_shared_by_every_gateway_of_a_cluster() -> None:
    assert signing_key(None, "s") == signing_key(None, "s")
    assert signing_key(None, "s") != signing_key(None, "t")
    assert len(signing_key(None, "s")) == 32
    assert signing_key("token secret", "s") == signing_key("token secret", "other cluster")
    assert signing_key("token secret", "s") != signing_key(None, "s")
    assert signing_key(None, "s") != b"s"  # never the cluster secret itself
    with pytest.raises(ValueError):
        signing_key(None, None)


def test_jwts_and_api_keys_are_told_apart() -> None:
    assert looks_like_jwt(TokenSigner(KEY, ttl=1).issue(1, "a", "f"))
    assert not looks_like_jwt("CH0123456789ABCDEF.secret-part")


@pytest.mark.parametrize(
    ("token", "ok"),
    [
        ("0" * 32 + ".secret", True),
        ("0" * 31 + ".secret", False),
        ("0" * 32 + ".", False),
        ("0" * 32, False),
        ("0" * 32 + ".a.b", False),
        (None, False),
        (42, False),
    ],
)
def test_refresh_token_shape(token: object, ok: bool) -> None:
    assert (split_refresh_token(token) is not None) is ok
