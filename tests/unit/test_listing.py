"""The pure listing logic against a brute-force reference (Hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cargohold.metadata.listing import (
    MAX_CHAR,
    group_bump,
    list_sorted,
    prefix_successor,
    walk_seek,
    walk_sorted,
)

ALPHABET = ["a", "b", "/", "-", "é", MAX_CHAR]
keys_st = st.lists(st.text(st.sampled_from(ALPHABET), min_size=1, max_size=6), max_size=30)
prefix_st = st.text(st.sampled_from(ALPHABET), max_size=3)
delimiter_st = st.sampled_from([None, "", "/", "-", "a/", MAX_CHAR, "//"])

# Characters where code-point arithmetic has edges: the last before the surrogates (its
# successor is U+E000), the last of the BMP, one beyond it (a 4-byte UTF-8 sequence) and
# the very last code point.
TRICKY = ["a", "/", "0", "-", "é", "\ud7ff", "\ue000", "\uffff", "\U0001f600", MAX_CHAR]
tricky_keys_st = st.lists(st.text(st.sampled_from(TRICKY), min_size=1, max_size=6), max_size=40)
tricky_prefix_st = st.text(st.sampled_from(TRICKY), max_size=3)
#: Delimiters the walk can express (a character below U+10FFFF in each).
WALKABLE = ["/", "-", "a/", "//", "/" + MAX_CHAR, MAX_CHAR + "a", "\ud7ff", "\U0001f600", "\uffff", "é-"]


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


def cursors(keys: list[str], alphabet: list[str]) -> st.SearchStrategy[str | None]:
    """Cursors that hit keys and key prefixes (possible common prefixes) matter most."""
    near = sorted({key[:cut] for key in keys for cut in range(1, len(key) + 1)})
    return st.one_of(
        st.none(), st.text(st.sampled_from(alphabet), max_size=5), *([st.sampled_from(near)] if near else [])
    )


@settings(max_examples=500, deadline=None)
@given(
    keys=tricky_keys_st,
    prefix=tricky_prefix_st,
    delimiter=st.sampled_from([None, *WALKABLE]),
    limit=st.integers(0, 8),
    data=st.data(),
)
def test_the_walk_matches_reference_one_seek_per_entry(
    keys: list[str], prefix: str, delimiter: str | None, limit: int, data: st.DataObject
) -> None:
    cursor = data.draw(cursors(keys, TRICKY), label="cursor")
    page = walk_sorted(sorted(set(keys)), prefix, delimiter, limit, cursor)
    assert (page.keys, page.prefixes, page.next_cursor) == reference(keys, prefix, delimiter, limit, cursor)
    # One seek per entry, and one more that finds the page full or the listing at its end.
    assert page.reads <= len(page.keys) + len(page.prefixes) + 1


@settings(max_examples=300, deadline=None)
@given(
    keys=tricky_keys_st,
    prefix=tricky_prefix_st,
    delimiter=st.sampled_from([None, MAX_CHAR, MAX_CHAR * 2, *WALKABLE]),
    limit=st.integers(1, 8),
    batch=st.integers(1, 4),
    data=st.data(),
)
def test_reads_of_any_batch_size_match_reference(
    keys: list[str], prefix: str, delimiter: str | None, limit: int, batch: int, data: st.DataObject
) -> None:
    cursor = data.draw(cursors(keys, TRICKY), label="cursor")
    page = list_sorted(sorted(set(keys)), prefix, delimiter, limit, cursor, batch=batch)
    assert (page.keys, page.prefixes, page.next_cursor) == reference(keys, prefix, delimiter, limit, cursor)


@given(
    head=st.text(st.sampled_from(TRICKY), max_size=4),
    delimiter=st.sampled_from(WALKABLE),
    tail=st.text(st.sampled_from(TRICKY), max_size=4),
)
def test_group_bump_ends_the_successor_of_every_common_prefix(head: str, delimiter: str, tail: str) -> None:
    group = head + delimiter
    bump = group_bump(delimiter)
    assert bump is not None
    assert prefix_successor(group) == head + bump
    seek = walk_seek(group + tail, "", delimiter, bump)
    if group.find(delimiter) == len(head):  # no earlier delimiter, overlapping head's end included
        assert seek.inclusive and seek.key == prefix_successor(group)


def test_a_delimiter_of_the_last_code_point_alone_has_no_bump() -> None:
    assert group_bump(MAX_CHAR) is None
    assert group_bump(MAX_CHAR * 3) is None
    assert group_bump("/" + MAX_CHAR) == "0"
    assert group_bump("\ud7ff") == "\ue000"


def test_walk_edges_by_hand() -> None:
    keys = sorted(
        [
            "p\uffff",  # the prefix's own last character is the BMP's last
            "p\uffff/a",
            "p\uffff/b",
            "p\uffff//c",  # the delimiter right after the prefix: the group is prefix + "/"
            "p\uffff\U0001f600/x",
            "p\uffff\U0001f600/y",
            "p\uffff\U0010ffff",
            "p\uffff\U0010ffff/z",
            "q",
        ]
    )
    page = walk_sorted(keys, "p\uffff", "/", 10)
    assert page.keys == ["p\uffff", "p\uffff\U0010ffff"]
    assert page.prefixes == ["p\uffff/", "p\uffff\U0001f600/", "p\uffff\U0010ffff/"]
    assert page.next_cursor is None
    # A multi-character delimiter: "//" groups only where it occurs whole.
    double = walk_sorted(keys, "p\uffff", "//", 10)
    assert double.prefixes == ["p\uffff//"]
    assert double.keys == [k for k in keys if k.startswith("p\uffff") and "//" not in k]
    # The key right after a group is the group's successor itself: the seek includes it.
    after = walk_sorted(["a/1", "a/2", "a0", "b\ud7ff1", "b\ue000"], "", "/", 10)
    assert (after.keys, after.prefixes) == (["a0", "b\ud7ff1", "b\ue000"], ["a/"])
    surrogate_edge = walk_sorted(["b\ud7ff1", "b\ud7ff2", "b\ue000"], "b", "\ud7ff", 10)
    assert (surrogate_edge.keys, surrogate_edge.prefixes) == (["b\ue000"], ["b\ud7ff"])
    # A prefix with no keys under it: an empty page, not the keys around it.
    assert walk_sorted(keys, "p\uffff\ue000", "/", 10).keys == []
    # Prefix of the last code point: everything after it is under it, nothing above.
    tail = sorted(["\U0010ffff", "\U0010ffff/1", "\U0010ffff/2", "\U0010ffff\U0010ffff"])
    top = walk_sorted(tail, "\U0010ffff", "/", 10)
    assert (top.keys, top.prefixes) == (["\U0010ffff", "\U0010ffff\U0010ffff"], ["\U0010ffff/"])


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
    walked = walk_sorted(keys, "", "/", 1000)
    assert (walked.keys, walked.prefixes, walked.reads) == (page.keys, page.prefixes, 6)


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
