"""Cleaner handler: a RawArticle in, a CleanArticle out."""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import redis.asyncio as aioredis

from contracts import CleanArticle, RawArticle
from contracts.streams import ARTICLES_CLEAN
from services.cleaner.core import Extraction, extract
from services.cleaner.metrics import CleanerMetrics
from services.cleaner.settings import CleanerSettings
from services.common.bus import publish
from services.common.clock import Clock
from services.common.errors import PermanentError, TransientError


def clean_article(raw: RawArticle, extraction: Extraction, cleaned_at: Clock) -> CleanArticle:
    """The CleanArticle for a raw page and what was extracted from it."""
    return CleanArticle(
        article_id=raw.article_id,
        url=raw.url,
        canonical_url=extraction.canonical_url,
        source=raw.source,
        site_name=extraction.site_name,
        title=extraction.title or raw.feed_title or "",
        text=extraction.text,
        lang=extraction.lang,
        published=extraction.published or raw.feed_published,
        author=extraction.author,
        word_count=extraction.word_count,
        fetched_at=raw.fetched_at,
        cleaned_at=cleaned_at(),
        empty_reason=extraction.empty_reason,
        tags=raw.tags,
    )


class ExtractionPool:
    """`extract` in worker processes, with a time budget per page.

    A thread cannot be stopped, so a page that keeps lxml or trafilatura busy would hold a
    thread (and the message) forever; a process can be killed. On a timeout the workers are
    killed and a fresh pool starts with the next page. Processes are spawned, not forked: the
    service runs threads (event loop, redis) that a fork would copy mid-state.
    """

    def __init__(self, *, workers: int, timeout_seconds: float) -> None:
        self._workers = workers
        self._timeout_seconds = timeout_seconds
        self._executor: ProcessPoolExecutor | None = None
        self._running = asyncio.Semaphore(workers)
        """Pages are handed to the workers at once and queue there (the cleaner handles
        `workers + 1` entries at once, so a worker finishing one page starts the next without
        waiting for the event loop). A page's time budget starts when it holds one of these
        `workers` slots, taken in the order the pages were handed over: that is when a worker
        takes it up, so the budget counts its own extraction, not the wait behind others."""

    async def extract(self, html: str, *, url: str | None, lang_hint: str | None) -> Extraction:
        """The page's extraction; PermanentError over the budget, TransientError if a worker
        died or was stopped for another page (the page is retried, then dead-lettered)."""
        executor = self._pool()
        call = functools.partial(extract, html, url=url, lang_hint=lang_hint)
        future = asyncio.get_running_loop().run_in_executor(executor, call)
        try:
            async with self._running:
                return await asyncio.wait_for(future, self._timeout_seconds)
        except TimeoutError:
            self._kill(executor)
            raise PermanentError(
                "extraction_timeout",
                f"extraction took longer than {self._timeout_seconds} s",
            ) from None
        except BrokenProcessPool as exc:
            self._kill(executor)
            raise TransientError(f"extraction worker died: {exc}") from exc
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if future.cancelled() and not (task is not None and task.cancelling()):
                # the workers were killed for another page over its budget; not this page's fault
                raise TransientError("extraction stopped with its worker; retrying") from None
            raise

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=self._workers, mp_context=multiprocessing.get_context("spawn")
            )
        return self._executor

    def _kill(self, executor: ProcessPoolExecutor) -> None:
        if self._executor is executor:
            self._executor = None
        processes = dict(getattr(executor, "_processes", None) or {})
        for process in processes.values():
            process.kill()
        executor.shutdown(wait=False, cancel_futures=True)

    async def close(self) -> None:
        if self._executor is not None:
            executor, self._executor = self._executor, None
            await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)


class CleanHandler:
    """Extracts in a worker process (trafilatura is CPU-bound, pages can hang) and publishes."""

    def __init__(
        self,
        *,
        redis: aioredis.Redis,
        settings: CleanerSettings,
        metrics: CleanerMetrics,
        clock: Clock,
        pool: ExtractionPool,
    ) -> None:
        self._redis = redis
        self._settings = settings
        self._metrics = metrics
        self._clock = clock
        self._pool = pool

    async def __call__(self, raw: RawArticle) -> None:
        if len(raw.html) > self._settings.max_html_chars:
            raise PermanentError(
                "page_too_large",
                f"page has {len(raw.html)} characters, limit {self._settings.max_html_chars}",
            )
        started = time.perf_counter()
        try:
            extraction = await self._pool.extract(
                raw.html, url=raw.final_url, lang_hint=raw.lang_hint
            )
        except PermanentError:
            self._metrics.timeouts.inc()
            raise
        finally:
            self._metrics.extraction_seconds.observe(time.perf_counter() - started)
        article = clean_article(raw, extraction, self._clock)
        await publish(self._redis, ARTICLES_CLEAN, article)
        if article.empty_reason:
            self._metrics.pages.labels("empty").inc()
            self._metrics.empty.labels(article.empty_reason).inc()
        else:
            self._metrics.pages.labels("article").inc()
            self._metrics.articles_by_language.labels(article.lang or "unknown").inc()
