"""Pure rules of a parallel, resumable put: sizes, part plans, the resume state file.

Nothing here talks to the network or the terminal. ``multipart.py`` runs the
plan; these functions decide it, so they are unit-tested on their own.

The state file
--------------
A put in parts writes ``<state dir>/<id>.json`` right after it creates an upload
session and deletes it once the object is complete. ``<id>`` is the SHA-256 of
(gateway URL, ``bucket/key``, absolute source path, size, mtime in ns): running
the same command on the same unchanged file finds the session again, while a
file edited since (new size or mtime) starts a fresh one. The state dir is
``$XDG_STATE_HOME/cargohold/uploads`` (``~/.local/state`` when unset). The file
holds no secret, only the upload id and the part size the session was cut with.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cargohold.cli.api_client import ApiError, ClientError, TransportError

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30
DEFAULT_PART_SIZE = 16 * MIB
DEFAULT_PARALLEL = 4
MAX_PARALLEL = 32
MAX_PARTS = 10_000
MAX_PART_SIZE = 5 * GIB
RETRIES = 3
STATE_VERSION = 1

_UNITS = {
    "": 1, "b": 1,
    "k": KIB, "kib": KIB, "kb": 1000,
    "m": MIB, "mib": MIB, "mb": 1000**2,
    "g": GIB, "gib": GIB, "gb": 1000**3,
}  # fmt: skip
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$", re.IGNORECASE)


def parse_size(value: str | int) -> int:
    """``1048576``, ``16M``/``16MiB`` (binary) or ``16MB`` (decimal) -> bytes."""
    if isinstance(value, int):
        return value
    match = _SIZE.match(value)
    unit = match[2].lower() if match else ""
    if not match or unit not in _UNITS:
        raise ValueError(f"{value!r}: expected a size such as 1048576, 512KiB, 16MiB or 1GiB")
    return int(float(match[1]) * _UNITS[unit])


def fit_part_size(size: int, wanted: int) -> int:
    """``wanted``, or more when ``size`` would need over 10,000 parts (rounded up to a MiB)."""
    if wanted <= 0:
        raise ValueError("the part size must be positive")
    if -(-size // wanted) <= MAX_PARTS:
        return wanted
    least = -(-size // MAX_PARTS)
    return -(-least // MIB) * MIB


@dataclass(frozen=True, slots=True)
class PartPlan:
    """Part ``number`` (from 1) covers ``size`` bytes of the file from ``offset``."""

    number: int
    offset: int
    size: int


def plan_parts(size: int, part_size: int) -> list[PartPlan]:
    """Cut ``size`` bytes into parts of ``part_size``; the last may be shorter."""
    if part_size <= 0:
        raise ValueError("the part size must be positive")
    return [
        PartPlan(n, offset, min(part_size, size - offset))
        for n, offset in enumerate(range(0, size, part_size), start=1)
    ]


@dataclass(frozen=True, slots=True)
class StoredPart:
    """A part the gateway already holds, as ``GET /uploads/{id}`` lists it."""

    number: int
    size: int
    md5: str | None


def stored_parts(upload: Mapping[str, Any]) -> dict[int, StoredPart]:
    parts: dict[int, StoredPart] = {}
    for item in upload.get("parts") or []:
        number, size = item.get("part_number"), item.get("size")
        if isinstance(number, int) and isinstance(size, int):
            md5 = item.get("md5")
            parts[number] = StoredPart(number, size, md5.lower() if isinstance(md5, str) else None)
    return parts


@dataclass(frozen=True, slots=True)
class ResumePlan:
    """Which planned parts to check (same size on the gateway) and which to send."""

    check: tuple[tuple[PartPlan, str], ...]  # (part, md5 the gateway holds)
    send: tuple[PartPlan, ...]

    @property
    def stored_bytes(self) -> int:
        return sum(part.size for part, _ in self.check)


def resume_plan(plan: Sequence[PartPlan], stored: Mapping[int, StoredPart]) -> ResumePlan:
    """A part the gateway holds with the planned size (and an md5) is checked, not resent.

    Checking means hashing the local bytes and comparing md5s: cheap next to
    sending them, and it catches a part that was stored from other bytes.
    """
    check: list[tuple[PartPlan, str]] = []
    send: list[PartPlan] = []
    for part in plan:
        have = stored.get(part.number)
        if have is not None and have.size == part.size and have.md5:
            check.append((part, have.md5))
        else:
            send.append(part)
    return ResumePlan(tuple(check), tuple(send))


def session_problem(
    upload: Mapping[str, Any], *, size: int, part_size: int, bucket: str, key: str, now: datetime
) -> str | None:
    """Why a remembered session cannot be resumed (None: it can)."""
    status = upload.get("status")
    if status not in ("PENDING", "LOADING"):
        return f"it is {status}"
    expires = upload.get("expires_at")
    if isinstance(expires, str):
        try:
            when = datetime.fromisoformat(expires)
        except ValueError:
            when = None
        if when is not None and (when if when.tzinfo else when.replace(tzinfo=UTC)) <= now:
            return "it expired"
    if (upload.get("bucket"), upload.get("key")) != (bucket, key):
        return "it is for another object"
    if upload.get("size") != size:
        return "it was created for another size"
    if upload.get("part_size") not in (None, part_size):
        return "it was cut into parts of another size"
    return None


def multipart_etag(md5s: Sequence[str]) -> str:
    """S3's ETag of an object joined from parts: md5 of the binary md5s, then ``-N``."""
    if len(md5s) == 1:
        return md5s[0]
    joined = b"".join(bytes.fromhex(m) for m in md5s)
    return f"{hashlib.md5(joined, usedforsecurity=False).hexdigest()}-{len(md5s)}"


def is_retryable(error: BaseException) -> bool:
    """A part is sent again after transport failures, 5xx, 429 and corrupt answers."""
    if isinstance(error, TransportError):
        return True
    if isinstance(error, ApiError):
        return error.status is None or error.status >= 500 or error.status == 429
    return isinstance(error, ClientError) and error.code == "part_mismatch"


def backoff_delays(retries: int = RETRIES, base: float = 0.5, cap: float = 8.0) -> list[float]:
    """Seconds to wait before each retry: 0.5, 1, 2, ... capped."""
    return [min(cap, base * 2**attempt) for attempt in range(retries)]


# ---------------------------------------------------------------- state file


def state_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    xdg = env.get("XDG_STATE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "state"
    return base / "cargohold" / "uploads"


def state_key(url: str, bucket: str, key: str, path: Path | str, size: int, mtime_ns: int) -> str:
    """The SHA-256 naming one put's state file (see the module docstring)."""
    ident = [url.rstrip("/"), f"{bucket}/{key}", os.path.abspath(path), size, mtime_ns]
    return hashlib.sha256(json.dumps(ident, ensure_ascii=False).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class UploadState:
    """What a put remembers between runs about its upload session."""

    upload_id: str
    part_size: int
    url: str
    bucket: str
    key: str
    path: str
    size: int
    mtime_ns: int
    version: int = STATE_VERSION


def load_state(file: Path) -> UploadState | None:
    """The state in ``file``, or None when it is missing, unreadable or of another version."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        state = UploadState(**data)
    except (OSError, ValueError, TypeError):
        return None
    if state.version != STATE_VERSION or not state.upload_id or state.part_size <= 0:
        return None
    return state


def save_state(file: Path, state: UploadState) -> None:
    """Write atomically (temporary sibling + rename), owner-only."""
    file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".upload.", suffix=".tmp", dir=file.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(asdict(state), fh)
        os.replace(tmp, file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def forget_upload(directory: Path, upload_id: str) -> list[Path]:
    """Delete every state file that remembers ``upload_id``; return those deleted."""
    gone = []
    for file in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        state = load_state(file)
        if state is not None and state.upload_id == upload_id:
            file.unlink(missing_ok=True)
            gone.append(file)
    return gone


def part_ranges(numbers: Iterable[int]) -> str:
    """``[1, 2, 3, 5, 7, 8]`` -> ``"1-3, 5, 7-8"``."""
    runs: list[list[int]] = []
    for n in sorted(set(numbers)):
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs) or "-"
