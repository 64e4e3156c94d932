"""What the fuzz test tells schemathesis beyond the document.

- tus bodies are ``application/offset+octet-stream`` (tus 1.0.0): raw bytes, sent
  as schemathesis sends ``application/octet-stream``.
- Times the API takes (``format: date-time``) are expiries and search bounds:
  the document's prose says an expiry lies in the future and at most 100 years
  ahead, which no JSON Schema keyword can say ("now" moves). Valid examples are
  drawn from that window, so a refusal of a past expiry is not mistaken for a
  refusal of valid input; negative examples still send everything else. Values
  an earlier answer held (a ``created_at``) are past by the time a later call
  reuses them as an expiry, so a valid call's past expiry is moved into the window.
- A chunk's Content-Range says which bytes the body holds (``bytes a-b/total``
  with ``a <= b < total`` and ``b - a + 1`` bytes sent), a rule between a header
  and the body that the document states in words: a valid call's range is moved
  to cover the body it sends, from the offset drawn.
- Completion lists parts in ascending order without repeats, a rule between the
  items of a list that the document states in words: a valid call's list is sorted.
- The run is an admin and fuzzes the node calls too: it disables, drains, marks
  lost and removes the cluster's one storage node, after which every write is
  503 insufficient_nodes, as documented, but no longer a test of the API. After
  each call that changes nodes, that node is put back in service (registered,
  enabled, active, normal), so the calls that follow meet a cluster that can serve.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import schemathesis
from hypothesis import strategies as st

from cargohold.testing.cluster import ADMIN_KEY

schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")

_NOW = datetime.now(UTC).replace(microsecond=0, tzinfo=None)
schemathesis.openapi.format(
    "date-time",
    st.datetimes(min_value=_NOW + timedelta(days=1), max_value=_NOW + timedelta(days=99 * 365)).map(
        lambda moment: moment.isoformat() + "Z"
    ),
)

_EXPIRING = frozenset({"POST /api/v1/keys", "POST /api/v1/shares"})
_CHUNK = "PUT /api/v1/uploads/{upload_id}"
_COMPLETE = "POST /api/v1/uploads/{upload_id}/complete"
_RANGE = re.compile(r"bytes ([0-9]+)-[0-9]+/([0-9]+|[*])")


def _is_valid(case: Any) -> bool:
    return case.meta is None or case.meta.generation.mode.is_positive


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    if not _is_valid(case):
        return
    label = f"{case.method.upper()} {case.operation.path}"
    if label in _EXPIRING and isinstance(case.body, dict):
        _future_expiry(case.body)
    elif label == _CHUNK and case.headers is not None:
        _chunk_covers_body(case)
    elif label == _COMPLETE and isinstance(case.body, dict) and isinstance(case.body.get("parts"), list):
        case.body["parts"] = _ascending(case.body["parts"])


def _future_expiry(body: dict[str, Any]) -> None:
    expires_at = body.get("expires_at")
    try:
        moment = datetime.fromisoformat(expires_at) if isinstance(expires_at, str) else None
    except ValueError:
        return
    soon = datetime.now(UTC) + timedelta(minutes=1)
    if moment is not None and moment.tzinfo is not None and moment <= soon:
        body["expires_at"] = (datetime.now(UTC) + timedelta(days=1)).isoformat()


def _ascending(parts: list[Any]) -> list[Any]:
    """One entry per part number, in ascending order."""
    by_number = {part["part_number"]: part for part in parts}
    return [by_number[number] for number in sorted(by_number)]


def _chunk_covers_body(case: Any) -> None:
    """The range drawn, moved to cover the body (the document has a chunk hold at least one byte)."""
    match = _RANGE.fullmatch(str(case.headers.get("Content-Range", "")))
    size = len(getattr(case.body, "data", b""))
    if match is None or size == 0:
        return
    first = int(match.group(1)) % 2**62
    last = first + size - 1
    total = match.group(2) if match.group(2) == "*" else str(max(int(match.group(2)), last + 1))
    case.headers["Content-Range"] = f"bytes {first}-{last}/{total}"


#: The storage node the test's cluster started (``test_openapi_fuzz.py`` names it).
NODE_URL = os.environ.get("CARGOHOLD_FUZZ_NODE_URL", "")
_NODES = "/api/v1/nodes"


@schemathesis.hook
def after_call(context: Any, case: Any, response: Any) -> None:
    if NODE_URL and case.method.upper() != "GET" and case.operation.path.startswith(_NODES):
        _node_in_service(response.request.url)


def _node_in_service(called: str) -> None:
    url = urlsplit(called)
    with httpx.Client(
        base_url=f"{url.scheme}://{url.netloc}", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    ) as api:
        listed = api.get(_NODES)
        if listed.status_code in (401, 403):
            return  # the run took the admin rights from the test's key: nothing can be put back
        listed.raise_for_status()
        ours = [node for node in listed.json()["nodes"] if node["url"] == NODE_URL]
        if not ours:
            api.post(_NODES, json={"url": NODE_URL}).raise_for_status()
            return
        back = {"enabled": True, "active": True, "state": "normal"}
        api.patch(f"{_NODES}/{ours[0]['id']}", json=back).raise_for_status()
