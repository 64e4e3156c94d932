"""What the fuzz test tells schemathesis beyond the document.

- tus bodies are ``application/offset+octet-stream`` (tus 1.0.0): raw bytes, sent
  as schemathesis sends ``application/octet-stream``.
- Times the API takes (``format: date-time``) are expiries and search bounds:
  the document's prose says an expiry lies in the future and at most 100 years
  ahead, which no JSON Schema keyword can say ("now" moves). Valid examples are
  drawn from that window, so a refusal of a past expiry is not mistaken for a
  refusal of valid input; negative examples still send everything else.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import schemathesis
from hypothesis import strategies as st

schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")

_NOW = datetime.now(UTC).replace(microsecond=0, tzinfo=None)
schemathesis.openapi.format(
    "date-time",
    st.datetimes(min_value=_NOW + timedelta(days=1), max_value=_NOW + timedelta(days=99 * 365)).map(
        lambda moment: moment.isoformat() + "Z"
    ),
)
