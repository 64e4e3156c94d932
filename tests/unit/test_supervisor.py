"""Restart delays of supervised children: 1 s doubling to 30 s, reset by a long enough run."""

from __future__ import annotations

from cargohold.cli.supervisor import Backoff


def test_quick_crashes_double_the_delay_up_to_the_cap() -> None:
    backoff = Backoff()
    delays = [backoff.after_exit(ran_for=0.5) for _ in range(8)]
    assert delays == [1, 2, 4, 8, 16, 30, 30, 30]


def test_a_long_run_starts_over_at_the_first_delay() -> None:
    backoff = Backoff(first=1, cap=30, stable_after=60)
    assert [backoff.after_exit(1) for _ in range(4)] == [1, 2, 4, 8]
    assert backoff.after_exit(60) == 1
    assert backoff.after_exit(59.9) == 2


def test_the_first_exit_waits_the_first_delay_however_long_the_child_ran() -> None:
    assert Backoff(first=0.25).after_exit(0.0) == 0.25
    assert Backoff(first=0.25).after_exit(3600.0) == 0.25
