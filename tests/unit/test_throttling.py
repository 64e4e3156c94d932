"""Block arithmetic of the password throttle: bounded, whatever the count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cargohold.domain.throttling import MAX_COUNT, Count, Policy, blocked, count_attempt
from cargohold.service.throttle import Rules

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_blocks_double_from_the_limit_up_to_the_cap() -> None:
    policy = Policy(limit=5, first_block=30, max_block=900)
    assert [policy.block_seconds(n) for n in range(1, 12)] == [0, 0, 0, 0, 30, 60, 120, 240, 480, 900, 900]


@given(st.integers(min_value=0, max_value=10**30))
def test_no_count_overflows_a_block(failures: int) -> None:
    policy = Policy(limit=5, first_block=30, max_block=900)
    assert 0 <= policy.block_seconds(failures) <= 900


def test_counting_is_capped_and_forgotten_after_a_quiet_hour() -> None:
    policy = Policy(limit=5, first_block=30, max_block=900, forget_after=3600)
    huge = Count(MAX_COUNT, NOW, None)
    after = count_attempt(policy, huge, NOW + timedelta(seconds=1))
    assert after.failures == MAX_COUNT and after.blocked_until == NOW + timedelta(seconds=901)
    quiet = count_attempt(policy, Count(7, NOW, None), NOW + timedelta(seconds=3600))
    assert (quiet.failures, quiet.blocked_until) == (1, None)


def test_the_limit_th_attempt_sets_the_block_when_admitted() -> None:
    policy = Policy(limit=2, first_block=30, max_block=30)
    first = count_attempt(policy, None, NOW)
    assert blocked(first, NOW) is None
    second = count_attempt(policy, first, NOW)
    assert blocked(second, NOW) == NOW + timedelta(seconds=30)
    assert blocked(second, NOW + timedelta(seconds=30)) is None


def test_default_rules_are_the_documented_numbers() -> None:
    rules = Rules.for_limit()
    assert (rules.pair.limit, rules.pair.first_block, rules.pair.max_block) == (5, 30, 900)
    assert (rules.subject.limit, rules.subject.first_block, rules.subject.max_block) == (20, 30, 30)
    assert (rules.address.limit, rules.address.first_block, rules.address.max_block) == (20, 30, 900)
    assert rules.pair.forget_after == rules.subject.forget_after == 3600


def test_unusable_policies_are_refused() -> None:
    with pytest.raises(ValueError):
        Policy(limit=0, first_block=30, max_block=30)
    with pytest.raises(ValueError):
        Policy(limit=5, first_block=60, max_block=30)
