"""The text writer of S3 answers against the element tree it stands in for (same bytes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from cargohold.s3.xml import branch, child, leaf, render, root, text_response, timestamp

# Text that needs escaping, quotes that must stay as they are, and characters beyond ASCII.
texts = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.text(
        st.sampled_from(["a", "&", "<", ">", '"', "'", "é", "\U0001f600", "\U0010ffff", " "]), max_size=6
    ),
)


@given(entries=st.lists(st.tuples(texts, texts), max_size=5), head=texts)
def test_leaves_and_branches_are_byte_identical_to_the_element_tree(
    entries: list[tuple[str | int | bool | None, str | int | bool | None]], head: str | int | bool | None
) -> None:
    document = root("ListBucketResult")
    child(document, "Name", head)
    parts = [leaf("Name", head)]
    for key, size in entries:
        entry = child(document, "Contents")
        child(entry, "Key", key)
        child(entry, "Size", size)
        parts.append(branch("Contents", leaf("Key", key), leaf("Size", size)))
    empty = child(document, "Owner")
    del empty  # an element with neither text nor children
    parts.append(branch("Owner"))

    response = text_response("ListBucketResult", parts)
    assert response.content_type == "application/xml"
    assert response.body == render(document)


def test_timestamps_are_utc_with_milliseconds() -> None:
    when = datetime(2026, 3, 4, 5, 6, 7, 891_234, tzinfo=UTC)
    assert timestamp(when) == "2026-03-04T05:06:07.891Z"
    assert timestamp(when.replace(microsecond=0)) == "2026-03-04T05:06:07.000Z"
    assert timestamp(when.astimezone(timezone(timedelta(hours=-5)))) == "2026-03-04T05:06:07.891Z"
