"""Budgets of one of N gateway workers: each admits 1/N, so the gateway keeps its total."""

from __future__ import annotations

import pytest

from cargohold.api.limits import Admission, Budget, Budgets
from cargohold.config import Settings
from cargohold.errors import SlowDown

SETTINGS = Settings(
    layout="ec:5+2",
    max_requests_per_principal=64,
    max_upload_bytes_per_principal=256 * 2**20,
    max_requests_per_address=5,
    max_upload_bytes_per_address=3,
    max_requests=4096,
    max_upload_bytes=2 * 2**30,
)


def test_one_process_keeps_every_budget_whole() -> None:
    budgets = Budgets.from_settings(SETTINGS)
    assert budgets.principal == Budget(64, 256 * 2**20)
    assert budgets.address == Budget(5, 3)
    assert budgets.gateway == Budget(4096, 2 * 2**30)


def test_each_of_n_workers_takes_its_share_rounded_down_but_at_least_one() -> None:
    budgets = Budgets.from_settings(SETTINGS, processes=2)
    assert budgets.principal == Budget(32, 128 * 2**20)
    assert budgets.address == Budget(2, 1)
    assert budgets.gateway == Budget(2048, 2**30)
    assert Budgets.from_settings(SETTINGS, processes=8).address == Budget(1, 1)
    whole = Budgets.from_settings(SETTINGS).upload_window
    assert budgets.upload_window == whole  # one upload's memory does not shrink


def test_a_worker_refuses_past_its_share() -> None:
    admission = Admission(Budgets.from_settings(SETTINGS, processes=2))
    for _ in range(32):
        admission.admit(7, f"10.0.0.{_}", 0)
    with pytest.raises(SlowDown):
        admission.admit(7, "10.0.1.1", 0)
