"""Consumer lag on servers that do not report it (the embedded Redis 6.2), from ids alone."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.common.streams import estimated_lag


def test_a_group_that_read_nothing_lags_by_the_whole_stream() -> None:
    assert estimated_lag(10_000, "1000-0", "0-0", "9000-0") == 10_000


def test_a_group_halfway_through_a_steady_stream_lags_by_about_half() -> None:
    assert estimated_lag(1_000, "1000-0", "5000-0", "9000-0") == 500


def test_entries_added_within_one_millisecond_count_as_all_behind() -> None:
    assert estimated_lag(40, "1000-0", "1000-3", "1000-39") == 40


@given(
    length=st.integers(1, 10**6),
    first=st.integers(0, 10**6),
    delivered=st.integers(0, 2 * 10**6),
    span=st.integers(0, 10**6),
)
def test_a_group_that_is_behind_lags_by_at_least_one_and_at_most_the_length(
    length: int, first: int, delivered: int, span: int
) -> None:
    generated = first + span
    delivered = min(delivered, generated)
    lag = estimated_lag(length, f"{first}-0", f"{delivered}-0", f"{generated}-1")
    assert 1 <= lag <= length
