"""The one backoff rule every retry in newsmon follows."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.backoff import backoff_seconds


@pytest.mark.parametrize(
    ("attempt", "expected"), [(1, 1.0), (2, 2.0), (3, 4.0), (9, 256.0), (10, 300.0), (400, 300.0)]
)
def test_waits_double_from_the_base_up_to_the_cap(attempt: int, expected: float) -> None:
    assert backoff_seconds(attempt, base=1.0, cap=300.0) == expected


def test_the_spread_moves_a_wait_by_at_most_its_share() -> None:
    assert backoff_seconds(3, base=1.0, cap=300.0, spread=0.25, draw=-1.0) == 3.0
    assert backoff_seconds(3, base=1.0, cap=300.0, spread=0.25, draw=1.0) == 5.0
    assert backoff_seconds(10, base=1.0, cap=300.0, spread=0.25, draw=1.0) == 300.0


@given(st.integers(1, 200), st.floats(-1, 1), st.floats(0, 0.99))
def test_a_later_attempt_never_waits_less(attempt: int, draw: float, spread: float) -> None:
    delay = backoff_seconds(attempt, base=0.5, cap=3600.0, spread=spread, draw=draw)
    assert 0 < delay <= backoff_seconds(attempt + 1, base=0.5, cap=3600.0, spread=spread, draw=draw)
