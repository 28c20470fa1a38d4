"""The one backoff rule of newsmon: fetch retries, webhook retries, message retries, waiting
for Redis and restarting background tasks all wait this way."""

from __future__ import annotations

_MAX_EXPONENT = 62
"""2**62 times any base is past every cap: attempts beyond it change nothing."""


def backoff_seconds(
    attempt: int, *, base: float, cap: float, spread: float = 0.0, draw: float = 0.0
) -> float:
    """Seconds to wait before retry `attempt` (1 = the first): `base` doubling each attempt,
    spread by `spread` (a share, 0..1) times `draw` (the caller's random value in [-1, 1]) so
    that many clients retrying at once do not retry together; never over `cap`."""
    exponent = min(max(attempt - 1, 0), _MAX_EXPONENT)
    return min(base * 2.0**exponent * (1.0 + spread * draw), cap)
