"""The cleaner's extraction workers: a page over its time budget is refused, never awaited."""

from __future__ import annotations

import pytest

from services.cleaner.handlers import ExtractionPool
from services.common.errors import PermanentError

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
