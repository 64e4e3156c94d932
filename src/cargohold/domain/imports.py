"""Background imports: a URL the server fetches by itself into an object, as pure rules.

An import is a job with a status, like an upload's: ``PENDING`` when it is
asked for, ``LOADING`` while a worker streams the source into an upload
session of protocol ``import`` (one durable part at a time), then
``UPLOADED`` (the object is visible), ``FAILED`` (with a reason code and a
message) or ``DELETED`` (cancelled; its shares freed).

What lives here needs no network and no database: which URLs may be
fetched and which addresses they may reach, how a reconnection's answer is
read (continue at the offset asked for, skip the part already stored, or
start again from zero), how large a part is, and how progress, rate and
time left are figured.
"""

from __future__ import annotations

import ipaddress
import math
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from urllib.parse import urlsplit

from cargohold.domain.uploads import DELETED, FAILED, LOADING, MAX_PART_NUMBER, PENDING, UPLOADED
from cargohold.domain.webhooks import forbidden_address, has_forbidden_characters, host_name_problem
from cargohold.errors import BadDigest, CargoholdError, Conflict, InvalidArgument, NotFound

STATUSES = (PENDING, LOADING, UPLOADED, FAILED, DELETED)
OPEN_STATUSES = frozenset({PENDING, LOADING})
FINAL_STATUSES = frozenset({UPLOADED, FAILED, DELETED})
SCHEMES = ("http", "https")
MAX_SOURCE_LENGTH = 2048
MAX_CONTENT_TYPE = 255


# -- errors the API answers --------------------------------------------------------------


class NoSuchImport(NotFound):
    code = "no_such_import"
    title = "Import does not exist"


class InvalidSource(InvalidArgument):
    code = "invalid_source"
    title = "The source is not an http or https URL this server can fetch"


class SourceNotAllowed(CargoholdError):
    """The source names (or resolves to) a private, loopback, link-local or otherwise
    non-global address while the cluster setting ``webhook_allow_private`` is off."""

    code = "source_not_allowed"
    status = 422
    title = "The source's address is not a public one"


class SourceUnresolvable(CargoholdError):
    code = "source_unresolvable"
    status = 422
    title = "The source's host name does not resolve"


class ImportFinished(Conflict):
    code = "import_finished"
    title = "The import has already finished"


# -- what a worker meets while fetching (recorded as the reason of a FAILED import) --------


class SourceFailed(CargoholdError):
    """Reading the source failed. ``retryable``: a later attempt may succeed (within the limit)."""

    code = "source_failed"
    status = 502
    title = "The source could not be read"
    retryable = True


class SourceUnreachable(SourceFailed):
    code = "source_unreachable"
    title = "The source did not accept a connection"


class SourceTimeout(SourceFailed):
    code = "source_timeout"
    title = "The source stopped sending"


class SourceBrokeOff(SourceFailed):
    code = "source_broke_off"
    title = "The source's connection broke off before the end"


class SourceHttpError(SourceFailed):
    code = "source_http_error"
    title = "The source answered with an error status"

    def __init__(self, status: int, detail: str = "") -> None:
        super().__init__(detail or f"the source answered HTTP {status}", source_status=status)
        # A server error or a "try later" may pass; a refusal of the request will not.
        self.retryable = status >= 500 or status in (408, 425, 429)


class SourceNotFound(SourceFailed):
    code = "source_not_found"
    title = "The source does not exist"
    retryable = False


class SourceMisbehaved(SourceFailed):
    """An answer that contradicts what was asked for (a range that is not the one requested)."""

    code = "source_misbehaved"
    title = "The source's answer does not match the request"


class SourceTooLarge(CargoholdError):
    code = "too_large"
    status = 413
    title = "The source is larger than an import may be"


CHECKSUM_MISMATCH = "checksum_mismatch"
INTERNAL_ERROR = "internal_error"


def failure_reason(error: BaseException) -> tuple[str, str]:
    """The stable reason code and message a FAILED import records for ``error``."""
    if isinstance(error, BadDigest):
        return CHECKSUM_MISMATCH, error.detail
    if isinstance(error, CargoholdError):
        return error.code, error.detail
    return INTERNAL_ERROR, f"{type(error).__name__}: {error}"


# -- the record ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Import:
    id: str
    user_id: int
    owner: str
    bucket_id: int
    bucket: str
    key: str
    source: str
    status: str
    created_at: datetime
    updated_at: datetime
    content_type: str | None = None  # None: the source's own Content-Type
    expected_md5: str | None = None
    expected_sha256: str | None = None
    upload_id: str | None = None
    total_size: int | None = None  # known once the source answered with a length
    bytes_done: int = 0  # never goes backwards (see Progress)
    rate: float | None = None  # bytes/s over the last few seconds
    attempts: int = 0  # connections to the source opened
    resumes: int = 0  # reconnections that continued by Range
    restarts: int = 0  # reconnections that had to read the source from its start again
    validator: str | None = None  # the source's strong ETag or Last-Modified (If-Range)
    fence: int = 0  # which claim of the job runs it: a stale runner's writes are refused
    error_code: str | None = None
    error_message: str | None = None
    version_id: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    seq: int = 0  # the listing order and cursor

    @property
    def percentage(self) -> float | None:
        if self.status == UPLOADED:
            return 100.0
        if self.total_size is None:
            return None
        if self.total_size == 0:
            return 0.0
        return round(100.0 * min(self.bytes_done, self.total_size) / self.total_size, 2)

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left at the current rate, while loading a source of known size."""
        if self.status != LOADING or self.total_size is None or not self.rate:
            return None
        return round(max(0, self.total_size - self.bytes_done) / self.rate, 1)


# -- sources and addresses -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SourceUrl:
    url: str
    scheme: str
    host: str
    port: int

    @property
    def literal(self) -> bool:
        """The host is an IP address (nothing to resolve)."""
        return is_ip(self.host)


def parse_source(url: str) -> SourceUrl:
    """An http(s) URL with a host and no credentials, or InvalidSource saying what is wrong."""
    if len(url) > MAX_SOURCE_LENGTH:
        raise InvalidSource(f"the source URL is longer than {MAX_SOURCE_LENGTH} characters", field="source")
    if has_forbidden_characters(url):
        raise InvalidSource("the source URL holds spaces or control characters", field="source")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidSource(f"the source is not a valid URL: {exc}", field="source") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise InvalidSource("the source must be an http:// or https:// URL", field="source")
    if parts.username is not None or parts.password is not None:
        raise InvalidSource(
            "credentials in the source URL are not accepted: they would be shown with the import",
            field="source",
        )
    host = parts.hostname or ""
    if not host:
        raise InvalidSource("the source URL names no host", field="source")
    problem = host_name_problem(host)
    if problem is not None:
        raise InvalidSource(problem, field="source")
    return SourceUrl(url, scheme, host, port or (443 if scheme == "https" else 80))


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def refused_addresses(addresses: list[str]) -> list[str]:
    """The addresses an import may not connect to: those a webhook may not either (loopback,
    private, link-local, shared, reserved, multicast, unspecified; IPv4-mapped judged as IPv4)."""
    return [a for a in addresses if forbidden_address(a)]


# -- reading a source's answers ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    """What a source's answer says about the bytes that follow (its headers, not its body)."""

    status: int  # 200 or 206
    start: int  # offset of the first byte of the body in the whole file
    total: int | None  # size of the whole file, if the answer says
    validator: str | None  # strong ETag, else Last-Modified


class Plan(Enum):
    CONTINUE = "continue"  # the body starts at the offset asked for
    SKIP = "skip"  # the whole file again, unchanged: read past what is stored
    RESTART = "restart"  # the file changed, or cannot be matched: start from zero


def plan_reconnection(offset: int, validator: str | None, total: int | None, answer: Answer) -> Plan:
    """What to do with the answer to a request for the file from ``offset`` on.

    ``validator`` and ``total`` are what the first answer said. A partial
    answer continues only if it starts exactly at ``offset`` of a file with
    the same validator and size (If-Range asked the source to send the
    whole file otherwise). A whole answer with the same strong validator
    and size is the same file: the bytes already stored are read past, not
    stored again. Anything else may be another file: start over.
    """
    if offset == 0:
        return Plan.CONTINUE if answer.start == 0 else Plan.RESTART
    same = validator is not None and answer.validator == validator and answer.total == total
    if answer.status == 206:
        if answer.start == offset and (answer.total == total or total is None) and same:
            return Plan.CONTINUE
        return Plan.RESTART
    return Plan.SKIP if same and answer.start == 0 else Plan.RESTART


def part_size_for(total: int | None, configured: int) -> int:
    """The part size of an import: the configured one, larger if the file needs more than
    the 10,000 parts an upload may hold."""
    if total is None:
        return configured
    return max(configured, math.ceil(total / MAX_PART_NUMBER))


def stored_content_type(given: str | None, from_source: str | None) -> str:
    """The media type the object gets: the one asked for, else the source's if it is printable
    ASCII of a storable length (as a PUT's Content-Type must be), else octet-stream."""
    for value in (given, from_source):
        if value and len(value) <= MAX_CONTENT_TYPE and all(0x20 <= ord(ch) <= 0x7E for ch in value):
            return value
    return "application/octet-stream"


def backoff(attempt: int, base: float, cap: float = 30.0) -> float:
    """Seconds before reconnection ``attempt`` (1, 2, ...): base, 2x, 4x ... capped."""
    return min(cap, base * 2 ** max(0, attempt - 1))


class Progress:
    """Bytes of the file transferred so far, as shown: never backwards.

    ``done`` is the durable offset plus the bytes of the part in flight. A
    part that breaks off is fetched again from its start, so the count
    would drop; what is shown holds at its highest until the count passes
    it again. The rate is measured over the last ``window`` seconds.
    """

    def __init__(self, shown: int = 0, window: float = 5.0) -> None:
        self.durable = 0
        self.inflight = 0
        self.shown = shown
        self._window = window
        self._samples: deque[tuple[float, int]] = deque()

    def current(self) -> int:
        self.shown = max(self.shown, self.durable + self.inflight)
        return self.shown

    def rate(self, now: float) -> float | None:
        """Bytes/s over the window ending ``now`` (None until two samples exist)."""
        self._samples.append((now, self.durable + self.inflight))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self._window:
            self._samples.popleft()
        (first, low), (last, high) = self._samples[0], self._samples[-1]
        if last - first <= 0:
            return None
        return round(max(0, high - low) / (last - first), 1)
