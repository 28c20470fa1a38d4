"""The cleaner's extraction workers: a page over its time budget is refused, never awaited."""

from __future__ import annotations

import asyncio

import pytest

from services.cleaner.handlers import ExtractionPool
from services.common.errors import PermanentError, TransientError

PAGE = (
    "<html lang='en'><body><article><h1>Harbour reopens</h1><p>The Port of Marseille reopened"
    " its northern basin on Tuesday after three weeks of repairs to the sea wall damaged in the"
    " September storm, the harbour authority said in a statement.</p></article></body></html>"
)


async def test_page_over_the_budget_is_dead_lettered_then_the_pool_recovers() -> None:
    pool = ExtractionPool(workers=1, timeout_seconds=0.001)  # less than a worker's start-up
    try:
        with pytest.raises(PermanentError) as refused:
            await pool.extract(PAGE, url=None, lang_hint=None)
        assert refused.value.reason == "extraction_timeout"
        pool._timeout_seconds = 60.0
        result = await pool.extract(PAGE, url=None, lang_hint=None)
        assert "Port of Marseille" in result.text
    finally:
        await pool.close()


async def test_pages_queued_behind_a_page_over_the_budget_are_retried_not_dead_lettered() -> None:
    """The cleaner hands a worker its next page before the last is done; when the workers are
    killed for one page over its budget, the pages queued behind it are only retried."""
    pool = ExtractionPool(workers=1, timeout_seconds=0.001)
    try:
        first, *queued = await asyncio.gather(
            *(pool.extract(PAGE, url=None, lang_hint=None) for _ in range(3)),
            return_exceptions=True,
        )
    finally:
        await pool.close()
    assert isinstance(first, PermanentError) and first.reason == "extraction_timeout"
    assert all(isinstance(outcome, TransientError) for outcome in queued), queued
