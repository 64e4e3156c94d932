"""How listing commands print rows: tab-separated lines with --plain, else a table."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from cargohold.cli.output import Col, plain_line, print_table, show_rows

COLUMNS = (Col("name", overflow="fold"), Col("size", justify="right", no_wrap=True))
ITEMS = [{"name": "a.txt", "size": 3}, {"name": "b[1].bin", "size": None}]


def _fields(item: dict[str, Any]) -> tuple[object, ...]:
    return (item["name"], item["size"])


def _cells(item: dict[str, Any]) -> tuple[str, ...]:
    return (item["name"].replace("[", r"\["), "?" if item["size"] is None else f"{item['size']} B")


@pytest.fixture(autouse=True)
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")


def test_plain_line_marks_missing_fields() -> None:
    assert plain_line(["x", None, 0, "", 1.5]) == "x\t-\t0\t\t1.5"


def test_col_carries_its_layout() -> None:
    column = Col("size", justify="right", no_wrap=True).column()
    assert (column.header, column.justify, column.no_wrap, column.overflow) == (
        "size",
        "right",
        True,
        "ellipsis",
    )
    assert Col("key", overflow="fold").column().overflow == "fold"


def test_plain_rows_are_tab_separated(capsys: pytest.CaptureFixture[str]) -> None:
    show_rows(COLUMNS, ITEMS, plain=True, fields=_fields, cells=_cells, empty="nothing")
    assert capsys.readouterr().out == "a.txt\t3\nb[1].bin\t-\n"


def test_plain_prints_nothing_for_no_rows(capsys: pytest.CaptureFixture[str]) -> None:
    show_rows(COLUMNS, [], plain=True, fields=_fields, cells=_cells, empty="nothing", empty_to_stderr=True)
    assert capsys.readouterr() == ("", "")


def test_plain_lines_follow_the_items_as_they_come(capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[str] = []

    def items() -> Iterator[dict[str, Any]]:
        for item in ITEMS:
            yield item
            seen.append(capsys.readouterr().out)

    show_rows(COLUMNS, items(), plain=True, fields=_fields, cells=_cells)
    assert seen == ["a.txt\t3\n", "b[1].bin\t-\n"]


def test_table_shows_headers_and_cells(capsys: pytest.CaptureFixture[str]) -> None:
    show_rows(COLUMNS, ITEMS, plain=False, fields=_fields, cells=_cells, empty="nothing")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "size"]
    assert lines[1].split() == ["a.txt", "3", "B"]
    assert lines[2].split() == ["b[1].bin", "?"]  # markup escaped by the caller shows as given
    assert len(lines) == 3


def test_empty_table_says_so_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    print_table(COLUMNS, [], empty="no things")
    assert capsys.readouterr() == ("no things\n", "")


def test_empty_table_can_say_so_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    show_rows(COLUMNS, [], plain=False, fields=_fields, cells=_cells, empty="no things", empty_to_stderr=True)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == "no things\n"


def test_empty_table_without_message_keeps_its_header(capsys: pytest.CaptureFixture[str]) -> None:
    print_table(COLUMNS, [])
    assert capsys.readouterr().out.split() == ["name", "size"]
