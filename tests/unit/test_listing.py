"""The pure listing logic against a brute-force reference (Hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cargohold.metadata.listing import MAX_CHAR, list_sorted, prefix_successor

ALPHABET = ["a", "b", "/", "-", "é", MAX_CHAR]
keys_st = st.lists(st.text(st.sampled_from(ALPHABET), min_size=1, max_size=6), max_size=30)
prefix_st = st.text(st.sampled_from(ALPHABET), max_size=3)
delimiter_st = st.sampled_from([None, "", "/", "-", "a/", MAX_CHAR, "//"])


def reference(
    keys: list[str], prefix: str, delimiter: str | None, limit: int, cursor: str | None
) -> tuple[list[str], list[str], str | None]:
    """Listing by definition: filter, group, then cut the page."""
    entries: list[tuple[str, bool]] = []
    seen: set[str] = set()
    for key in sorted(set(keys)):
        if not key.startswith(prefix) or (cursor is not None and key <= cursor):
            continue
        rest = key[len(prefix) :]
        if delimiter and delimiter in rest:
            group = prefix + rest[: rest.index(delimiter) + len(delimiter)]
            if group != cursor and group not in seen:
                seen.add(group)
                entries.append((group, True))
        else:
            entries.append((key, False))
    if limit <= 0:
        return [], [], None
    page = entries[:limit]
    next_cursor = page[-1][0] if len(entries) > limit else None
    return (
        [name for name, grouped in page if not grouped],
        [name for name, grouped in page if grouped],
        next_cursor,
    )


@settings(max_examples=800, deadline=None)
@given(
    keys=keys_st,
    prefix=prefix_st,
    delimiter=delimiter_st,
    limit=st.integers(0, 8),
    data=st.data(),
)
def test_page_matches_reference(
    keys: list[str], prefix: str, delimiter: str | None, limit: int, data: st.DataObject
) -> None:
    # Cursors that hit keys and key prefixes (possible common prefixes) matter most.
    near = sorted({key[:cut] for key in keys for cut in range(1, len(key) + 1)})
    cursor = data.draw(
        st.one_of(
            st.none(),
            st.text(st.sampled_from(ALPHABET), max_size=5),
            *([st.sampled_from(near)] if near else []),
        ),
        label="cursor",
    )
    page = list_sorted(sorted(set(keys)), prefix, delimiter, limit, cursor)
    assert (page.keys, page.prefixes, page.next_cursor) == reference(keys, prefix, delimiter, limit, cursor)


@settings(max_examples=300, deadline=None)
@given(keys=keys_st, prefix=prefix_st, delimiter=delimiter_st, limit=st.integers(1, 5))
def test_paging_through_cursors_lists_everything_once(
    keys: list[str], prefix: str, delimiter: str | None, limit: int
) -> None:
    sorted_keys = sorted(set(keys))
    all_keys, all_prefixes, _ = reference(keys, prefix, delimiter, 10**6, None)
    got_keys: list[str] = []
    got_prefixes: list[str] = []
    cursor = None
    for _ in range(len(sorted_keys) + 2):
        page = list_sorted(sorted_keys, prefix, delimiter, limit, cursor)
        assert len(page.keys) + len(page.prefixes) <= limit
        got_keys += page.keys
        got_prefixes += page.prefixes
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert got_keys == all_keys
    assert got_prefixes == all_prefixes


@given(stem=st.text(st.sampled_from(ALPHABET), max_size=4), other=st.text(max_size=6))
def test_prefix_successor_bounds_exactly_the_prefixed_keys(stem: str, other: str) -> None:
    successor = prefix_successor(stem)
    if successor is None:
        assert stem.strip(MAX_CHAR) == ""
        return
    assert (stem + other) < successor
    if not other.startswith(stem) and other > stem:
        assert other >= successor


def test_a_large_common_prefix_is_skipped_with_one_seek() -> None:
    keys = sorted([f"big/{i:05d}" for i in range(20_000)] + ["a", "big", "c/1", "c/2", "d"])
    page = list_sorted(keys, "", "/", 1000)
    assert page.keys == ["a", "big", "d"]
    assert page.prefixes == ["big/", "c/"]
    assert page.next_cursor is None
    assert page.reads <= 4


def test_cursor_on_a_common_prefix_skips_the_group() -> None:
    keys = sorted(["a/1", "a/2", "b", "c/1"])
    first = list_sorted(keys, "", "/", 1)
    assert (first.keys, first.prefixes, first.next_cursor) == ([], ["a/"], "a/")
    second = list_sorted(keys, "", "/", 1, first.next_cursor)
    assert (second.keys, second.prefixes, second.next_cursor) == (["b"], [], "b")
    third = list_sorted(keys, "", "/", 1, second.next_cursor)
    assert (third.keys, third.prefixes, third.next_cursor) == ([], ["c/"], None)


def test_prefix_limits_the_range() -> None:
    keys = sorted(["photos/2024/a.jpg", "photos/2024/b.jpg", "photos/2025/c.jpg", "photosx", "z"])
    page = list_sorted(keys, "photos/", "/", 10)
    assert page.prefixes == ["photos/2024/", "photos/2025/"]
    assert page.keys == []
    flat = list_sorted(keys, "photos/2024/", None, 10)
    assert flat.keys == ["photos/2024/a.jpg", "photos/2024/b.jpg"]
