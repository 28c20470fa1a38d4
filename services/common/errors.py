"""The two kinds of failure every handler distinguishes."""

from __future__ import annotations


class PermanentError(Exception):
    """Retrying will not help (bad input): the message goes to the dead-letter stream.

    `reason` is a short machine-readable class of failure, used as a metric label.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class TransientError(Exception):
    """Retrying later may help (a dependency is down or slow)."""
