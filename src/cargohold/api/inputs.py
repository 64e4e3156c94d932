"""What the HTTP surfaces accept: the one place where request values become typed, bounded values.

Handlers read JSON bodies, body fields, query parameters, path values and
numeric headers only through these helpers, so every rule is written once:

* a JSON body is an object of at most ``MAX_JSON_BYTES`` (``413
  payload_too_large``) nested at most ``MAX_JSON_DEPTH`` deep, with no
  ``NaN`` or ``Infinity`` (``400 invalid_argument``);
* integers are decimal ASCII digits within what the column that stores them
  holds (``INT32_MAX`` for ``Integer`` columns, ``INT64_MAX`` for
  ``BigInteger``);
* times carry a zone and lie within ``MAX_FUTURE`` of now;
* a path whose percent-escapes are not UTF-8 is refused before routing
  decides anything (:func:`path_middleware`).

Names and object keys follow ``domain/names.py``, which the services apply.
Every refusal is a domain error with a stable code (``errors.py``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.message import Message
from typing import Any, TypeVar
from urllib.parse import unquote_to_bytes

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import BaseModel, ValidationError

from cargohold.errors import BadRequest, InvalidArgument, InvalidCursor, InvalidKey, PayloadTooLarge
from cargohold.problems import Handler

MAX_JSON_BYTES = 64 * 1024
MAX_JSON_DEPTH = 16
#: Longest string field by default: an object key (``MAX_KEY_BYTES``) is the longest column.
MAX_STRING = 1024
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
#: How far ahead an expiry may lie.
MAX_FUTURE = timedelta(days=100 * 365)
#: A stored media type: printable ASCII, as an HTTP field value is written (RFC 9110), and at
#: most as wide as the column that holds it. The document shows this pattern; ``content_type``
#: applies it to the header, the upload body and tus metadata alike.
MAX_CONTENT_TYPE = 255
CONTENT_TYPE_PATTERN = "^[\\x20-\\x7e]*$"
#: What no object key may hold (``domain/names.py``), as a regex character range that JSON
#: Schema's ECMA regexes and Python's ``re`` read alike.
NO_CONTROLS = "\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069"
#: The longest listing cursor a client may send back: a key of up to 1024 bytes and two row ids.
MAX_CURSOR = 8192
#: A listing cursor: any text a key could hold. Every such text names a position (a key to
#: resume after, or a place among a key's versions), so only what no key holds is refused.
CURSOR_PATTERN = f"^[^{NO_CONTROLS}]*$"

_DIGITS = re.compile(r"[0-9]{1,19}")
_CURSOR = re.compile(CURSOR_PATTERN)
_JSON_STRING = re.compile(rb'"(?:[^"\\]+|\\.)*"', re.DOTALL)
_JSON_BRACKET = re.compile(rb"[\[\]{}]")


class InvalidPath(BadRequest):
    code = "invalid_path"
    title = "Malformed URL path"


# -- JSON bodies ------------------------------------------------------------------


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object (``{}`` without a body), read with bounded memory."""
    if not request.can_read_body:
        return {}
    if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
        raise PayloadTooLarge(f"a JSON body may have at most {MAX_JSON_BYTES} bytes")
    raw = bytearray()
    async for chunk in request.content.iter_any():
        raw += chunk
        if len(raw) > MAX_JSON_BYTES:
            raise PayloadTooLarge(f"a JSON body may have at most {MAX_JSON_BYTES} bytes")
    return parse_json_object(bytes(raw))


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """``raw`` as a JSON object, or ``InvalidArgument`` saying what is wrong with it."""
    if not raw.strip():
        return {}
    if json_depth(raw) > MAX_JSON_DEPTH:
        raise InvalidArgument(f"the JSON body is nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        data = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidArgument("body must be a JSON object")
    return data


def json_depth(raw: bytes) -> int:
    """How deep ``raw``'s arrays and objects nest, counted without parsing (strings skipped).

    Checked before ``json.loads``, whose recursion would otherwise decide
    the limit (and fail with ``RecursionError``).
    """
    depth = deepest = 0
    for bracket in _JSON_BRACKET.findall(_JSON_STRING.sub(b'""', raw)):
        depth += 1 if bracket in (b"[", b"{") else -1
        deepest = max(deepest, depth)
    return deepest


Model = TypeVar("Model", bound=BaseModel)


async def model_body(request: web.Request, model: type[Model]) -> Model:
    """The JSON body validated by ``model`` (the OpenAPI document shows the same model).

    The first thing pydantic refuses becomes ``400 invalid_argument`` naming
    the top-level field, as the field helpers below do.
    """
    return validate_body(await json_body(request), model)


def validate_body(body: dict[str, Any], model: type[Model]) -> Model:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        location = error["loc"]
        field = str(location[0]) if location else None
        if error["type"] == "missing":
            message = f"{field} is required"
        elif error["type"] == "extra_forbidden":
            allowed = ", ".join(sorted(model.model_fields))
            message = f"unknown field {field}; give {allowed}"
        elif error["type"] == "value_error":
            message = f"{field} {error['ctx']['error']}"
        else:
            where = ".".join(str(part) for part in location)
            message = f"{where}: {error['msg']}"
        raise InvalidArgument(message, field=field) from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


# -- HTML forms -------------------------------------------------------------------

FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


async def form_body(request: web.Request, max_bytes: int) -> Mapping[str, Any]:
    """A browser form's fields: a body of known length, at most ``max_bytes``, well formed."""
    if request.content_length is None or request.content_length > max_bytes:
        raise InvalidArgument(f"send the form as a body of at most {max_bytes} bytes")
    if request.content_type not in FORM_TYPES:
        raise InvalidArgument(f"a form is sent as {' or '.join(sorted(FORM_TYPES))}")
    if request.content_type == "multipart/form-data" and not _boundary(request.headers["Content-Type"]):
        raise InvalidArgument("a multipart/form-data body needs a boundary parameter")
    try:
        return await request.post()
    except (HttpProcessingError, ValueError, AssertionError) as exc:  # aiohttp's multipart reader asserts
        raise InvalidArgument(f"the form is malformed: {exc}") from exc


def _boundary(content_type: str) -> str:
    header = Message()
    header["Content-Type"] = content_type
    boundary = header.get_param("boundary")
    return boundary if isinstance(boundary, str) else ""


# -- body fields ------------------------------------------------------------------


def string_field(
    body: dict[str, Any], name: str, *, required: bool = False, max_length: int = MAX_STRING
) -> str | None:
    """An optional string field of at most ``max_length`` characters (the column's width)."""
    value = body.get(name)
    if value is None:
        if required:
            raise InvalidArgument(f"{name} (a string) is required", field=name)
        return None
    if not isinstance(value, str) or len(value) > max_length:
        raise InvalidArgument(f"{name} must be a string of at most {max_length} characters", field=name)
    return value


def bool_field(body: dict[str, Any], name: str, default: bool = False) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise InvalidArgument(f"{name} must be true or false", field=name)
    return value


def int_field(body: dict[str, Any], name: str, *, minimum: int = 0, maximum: int = INT64_MAX) -> int | None:
    """An optional integer field within ``minimum``..``maximum`` (JSON true/false are not numbers)."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise InvalidArgument(f"{name} must be an integer from {minimum} to {maximum}", field=name)
    return value


def parse_time(raw: object) -> datetime | None:
    """``raw`` as an ISO 8601 time with a zone, in UTC; ``None`` when it is not one."""
    try:
        value = datetime.fromisoformat(raw) if isinstance(raw, str) else None
        return value.astimezone(UTC) if value is not None and value.tzinfo is not None else None
    except (ValueError, OverflowError):  # malformed, or 9999-12-31 with a zone west of UTC
        return None


def content_type(value: str | None) -> str:
    """The media type an object is stored with (none given: ``application/octet-stream``)."""
    if value is None or value == "":
        return "application/octet-stream"
    if len(value) > MAX_CONTENT_TYPE or not re.fullmatch(CONTENT_TYPE_PATTERN, value):
        raise InvalidArgument(f"Content-Type must be at most {MAX_CONTENT_TYPE} printable ASCII characters")
    return value


# -- query, path and header values ------------------------------------------------------


def parse_int(text: str, name: str, *, minimum: int = 0, maximum: int = INT64_MAX) -> int:
    """Decimal ASCII digits within ``minimum``..``maximum`` (no sign, no other digits)."""
    stripped = text.strip()
    if not _DIGITS.fullmatch(stripped) or not minimum <= int(stripped) <= maximum:
        raise InvalidArgument(f"{name} must be an integer from {minimum} to {maximum}", field=name)
    return int(stripped)


def int_query(
    request: web.Request, name: str, default: int, *, minimum: int = 0, maximum: int = INT32_MAX
) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    return parse_int(raw, name, minimum=minimum, maximum=maximum)


def text_query(request: web.Request, name: str, longest: int) -> str:
    """A query parameter of at most ``longest`` characters (absent: ``""``)."""
    value = request.query.get(name, "")
    if len(value) > longest:
        raise InvalidArgument(f"{name} may hold at most {longest} characters", field=name)
    return value


def cursor_query(request: web.Request) -> str | None:
    """``?cursor=``, a listing's ``next_cursor`` given back (absent or empty: ``None``).

    ``400 invalid_cursor`` when no page could have given it: longer than
    ``MAX_CURSOR``, or holding a character no key holds (``CURSOR_PATTERN``).
    """
    value = request.query.get("cursor", "")
    if len(value) > MAX_CURSOR or not _CURSOR.fullmatch(value):
        raise InvalidCursor(
            f"cursor must be a listing's next_cursor: at most {MAX_CURSOR} characters, no control"
            " or formatting character",
            field="cursor",
        )
    return value or None


def bool_query(request: web.Request, name: str) -> bool:
    """``true`` or ``false``, given at most once (absent: false), as the document says."""
    values = request.query.getall(name, [])
    if not values:
        return False
    if len(values) > 1 or values[0] not in ("true", "false"):
        raise InvalidArgument(f"{name} must be given once, as true or false", field=name)
    return values[0] == "true"


def int_path(request: web.Request, name: str, *, minimum: int = 1, maximum: int = INT32_MAX) -> int:
    return parse_int(request.match_info[name], name, minimum=minimum, maximum=maximum)


def int_header(request: web.Request, name: str, *, maximum: int = INT64_MAX) -> int | None:
    value = request.headers.get(name)
    return None if value is None else parse_int(value, name, maximum=maximum)


@web.middleware
async def path_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse a path whose percent-escapes are not UTF-8 before anything reads it.

    The router decodes what it can and leaves an invalid escape such as
    ``%FF`` as those three characters, so ``a%FFb`` would otherwise name an
    object called ``a%FFb``.
    """
    try:
        unquote_to_bytes(request.raw_path.partition("?")[0]).decode("utf-8")
    except UnicodeDecodeError:
        if "key" in request.match_info or "rest" in request.match_info:
            raise InvalidKey("the object key in the URL has percent-escapes that are not UTF-8") from None
        raise InvalidPath("the URL path has percent-escapes that are not UTF-8") from None
    return await handler(request)
