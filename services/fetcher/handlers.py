"""Fetcher shell: polls due sources, fetches new items' pages, publishes RawArticles.

State lives in Redis (`store.FetcherStore`) so replicas and restarts share it.
An article is marked seen and published in one atomic step, and a feed's new
validators (ETag, Last-Modified) are stored only once every new item of that
response was published or given up on; so a fetcher killed mid-poll re-reads
the feed on restart, publishes what is missing, and repeats nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Literal, TypeVar

import redis.asyncio as aioredis
import structlog
from prometheus_client import CollectorRegistry
from redis.exceptions import RedisError

from contracts import RawArticle, SourceConfig
from contracts.streams import ARTICLES_RAW, DEAD_LETTER_RETENTION_SECONDS
from services.common.backoff import backoff_seconds
from services.common.bus import dead_letter, park
from services.common.clock import Clock
from services.common.metrics import ConsumerMetrics
from services.common.outage import REDIS_UNAVAILABLE, report_unavailable
from services.common.tasks import raise_if_cancelled
from services.fetcher.core import (
    SOURCE_STATUSES,
    FeedError,
    FeedItem,
    Lease,
    PollOutcome,
    SourceState,
    Validators,
    after_failure,
    after_success,
    article_id,
    body_digest,
    canonical_url,
    child_sitemap_batch,
    freshness_seconds,
    host_of,
    is_unchanged,
    lease_ms,
    next_poll_at,
    parse_feed,
    parse_sitemap,
)
from services.fetcher.http import (
    FetchError,
    HttpClient,
    HttpResponse,
    PermanentFetchError,
    TransientFetchError,
)
from services.fetcher.leases import LeaseLostError, while_leased
from services.fetcher.metrics import FetcherMetrics
from services.fetcher.politeness import HostGate, RobotsCache
from services.fetcher.settings import FetcherSettings
from services.fetcher.store import FetcherStore

log = structlog.get_logger("newsmon.fetcher")

SERVICE = "fetcher"
INGEST_SOURCE = "ingest"
"""The default source of pushed pages, and the `source` label of every pushed item's metric
(a client's free-text source name would make the label unbounded)."""

__all__ = ["INGEST_SOURCE", "IngestResult", "Poller", "status_class"]

T = TypeVar("T")


def _due_at(state: SourceState) -> float:
    return state.next_poll_at if state.status in ("active", "broken") else float("inf")


def status_class(status: int) -> str:
    """`2xx`..`5xx` for a status code: a bounded metric label."""
    return f"{status // 100}xx"


ItemOutcome = Literal["published", "seen", "skipped", "failed", "retry"]


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What became of one pushed page."""

    article_id: str
    url: str
    outcome: ItemOutcome
    error: str | None = None


@dataclass(frozen=True, slots=True)
class _Listing:
    """The items a source lists now, whether the listing was read in full, and for a
    sitemap index read in part the first child sitemap left for the next poll."""

    items: tuple[FeedItem, ...]
    ttl_seconds: float | None
    complete: bool
    sitemap_cursor: int = 0


@dataclass(slots=True)
class _Hold:
    """A source whose poll crashed: not polled again by this process before `until`
    (Unix seconds), whatever Redis says; `crashes` in a row set the backoff."""

    until: float
    crashes: int = 1


class Poller:
    """Polls every source (configured and added at run time) when it is due."""

    def __init__(
        self,
        *,
        redis: aioredis.Redis,
        http: HttpClient,
        sources: Sequence[SourceConfig],
        settings: FetcherSettings,
        metrics: FetcherMetrics,
        clock: Clock,
        rng: random.Random | None = None,
        consumer_metrics: ConsumerMetrics | None = None,
        dead_letter_retention_seconds: float = DEAD_LETTER_RETENTION_SECONDS,
    ) -> None:
        """`consumer_metrics` counts the fetcher's dead letters with every consumer's
        (newsmon_dead_letters_total); without it they are counted on a private registry."""
        self._dead_letter_retention_seconds = dead_letter_retention_seconds
        self._redis = redis
        self._http = http
        self._config_sources = {source.name: source for source in sources}
        self._settings = settings
        self._metrics = metrics
        self._dead_letters = (consumer_metrics or ConsumerMetrics(CollectorRegistry())).dead_letters
        self._clock = clock
        self._rng = rng or random.Random()
        self.store = FetcherStore(
            redis, settings.key_prefix, seen_retention_seconds=settings.seen_retention_seconds
        )
        self._legacy_seen_migrated = False
        self._poll_slots = asyncio.Semaphore(settings.max_concurrent_polls)
        self._hosts = HostGate(self.store, settings, metrics)
        self._robots = RobotsCache(self.store, settings)
        self._known: list[SourceConfig] = []
        self._due_at: dict[str, float] = {}
        """Next poll per source as this process knows it (inf: paused or disabled);
        refreshed from Redis every `state_refresh_seconds` and after every poll."""
        self._held: dict[str, _Hold] = {}
        self._refresh_at = 0.0
        self._token = uuid.uuid4().hex
        self.polls_completed = 0
        self.round_completed = asyncio.Event()
        """Set once a check finds no source due and no poll running (every source polled)."""

    # -- sources -----------------------------------------------------------------------------

    def is_configured(self, name: str) -> bool:
        return name in self._config_sources

    async def sources(self) -> list[SourceConfig]:
        """Configured sources, then those added at run time (a configured name wins)."""
        runtime = [s for s in await self.store.runtime_sources() if not self.is_configured(s.name)]
        return [*self._config_sources.values(), *runtime]

    async def find_source(self, name: str) -> SourceConfig | None:
        return next((s for s in await self.sources() if s.name == name), None)

    async def add_source(self, source: SourceConfig) -> bool:
        """False when a source of that name exists already."""
        if self.is_configured(source.name):
            return False
        added = await self.store.add_runtime_source(source)
        self._refresh_at = 0.0
        return added

    async def remove_source(self, name: str) -> bool:
        """Remove a run-time source and its state; False when there is none of that name."""
        removed = await self.store.remove_runtime_source(name)
        self._refresh_at = 0.0
        self._held.pop(name, None)
        with contextlib.suppress(KeyError):  # never published anything here
            self._metrics.items.remove(name)
        return removed

    async def set_paused(self, name: str, paused: bool) -> SourceState:
        """Pause a source, or resume it (also a broken or disabled one: polled at once)."""
        if paused:
            state = await self.store.update_state(name, status="paused")
        else:
            state = await self.store.update_state(
                name, status="active", failures=0, next_poll_at=0.0
            )
        self._metrics.events.labels("paused" if paused else "resumed").inc()
        log.info("source paused" if paused else "source resumed", source=name)
        self._refresh_at = 0.0
        return state

    async def load_state(self, source: SourceConfig) -> SourceState:
        return await self.store.load_state(source.name)

    # -- the loop ----------------------------------------------------------------------------

    async def run_forever(self) -> None:
        """Start a poll of every due source, then sleep a tick; forever."""
        running: dict[str, asyncio.Task[int]] = {}
        try:
            while True:
                raise_if_cancelled()
                for name in [n for n, task in running.items() if task.done()]:
                    del running[name]
                if time.monotonic() >= self._refresh_at:
                    try:
                        await self.refresh()
                    except REDIS_UNAVAILABLE as exc:  # wait for it here, tick by tick
                        report_unavailable(exc, task="poll schedule")
                        await asyncio.sleep(self._settings.tick_seconds)
                        continue
                    known = {source.name for source in self._known}
                    for name in [n for n in running if n not in known]:
                        running.pop(name).cancel()
                        log.info("source deleted, its poll cancelled", source=name)
                now = self._clock().timestamp()
                due = [
                    s
                    for s in self._known
                    if s.name not in running and self._due_at.get(s.name, 0.0) <= now
                ]
                for source in due:
                    running[source.name] = asyncio.create_task(self._guarded_poll(source))
                if not due and not running:
                    self.round_completed.set()
                await asyncio.sleep(self._settings.tick_seconds)
        finally:
            for task in running.values():
                task.cancel()
            await asyncio.gather(*running.values(), return_exceptions=True)

    async def refresh(self) -> None:
        """Reload the sources and their schedule from Redis (other replicas, the API)."""
        if not self._legacy_seen_migrated:
            moved = await self.store.migrate_legacy_seen(self._clock())
            if moved:
                log.info("seen ids moved to the bounded set", count=moved)
            self._legacy_seen_migrated = True
        self._known = await self.sources()
        states = await self.store.load_states([s.name for s in self._known])
        self._due_at = {name: self._held_due_at(name, state) for name, state in states.items()}
        self._count_states(states.values())
        self._refresh_at = time.monotonic() + self._settings.state_refresh_seconds

    def _held_due_at(self, name: str, state: SourceState) -> float:
        """The stored due time, unless a crash here holds the source back longer."""
        held = self._held.get(name)
        return max(_due_at(state), held.until) if held is not None else _due_at(state)

    async def _save(self, name: str, state: SourceState) -> None:
        await self.store.save_state(name, state)
        self._held.pop(name, None)
        self._due_at[name] = _due_at(state)

    def _count_states(self, states: Iterable[SourceState]) -> None:
        counts = dict.fromkeys(SOURCE_STATUSES, 0)
        for state in states:
            counts[state.status] += 1
        for status, count in counts.items():
            self._metrics.sources.labels(status).set(count)

    async def _guarded_poll(self, source: SourceConfig) -> int:
        """One poll under the replica's poll limit and the source's lease; never raises
        (its task is not awaited until shutdown)."""
        async with self._poll_slots:
            try:
                return await self._poll_under_lease(source)
            except REDIS_UNAVAILABLE as exc:  # not the source's fault: no backoff
                report_unavailable(exc, source=source.name)
                self._refresh_at = 0.0  # the loop waits for Redis, then re-reads the schedule
            except LeaseLostError as exc:
                emit = log.warning if str(exc) == "taken" else log.info
                emit("poll stopped: its lease was lost", source=source.name, reason=str(exc))
                self._refresh_at = 0.0
            except RedisError as exc:
                delay = self._hold(source)
                log.warning(
                    "poll skipped: Redis unavailable",
                    source=source.name,
                    error=str(exc),
                    retry_in_seconds=round(delay, 1),
                )
            except Exception:
                delay = self._hold(source)
                log.exception("poll crashed", source=source.name, retry_in_seconds=round(delay, 1))
            return 0

    def _hold(self, source: SourceConfig) -> float:
        """Keep a source whose poll crashed (or found no Redis) from being polled again on
        the next tick: back off in memory, as after a failed fetch; returns the delay, s.
        Its stored state is left alone (Redis may be what failed)."""
        held = self._held.get(source.name)
        crashes = held.crashes + 1 if held is not None else 1
        delay = self._backoff_delay(source, crashes)
        until = self._clock().timestamp() + delay
        self._held[source.name] = _Hold(until=until, crashes=crashes)
        self._due_at[source.name] = until
        return delay

    def _backoff_delay(
        self, source: SourceConfig, failures: int, retry_after: float | None = None
    ) -> float:
        """Seconds to wait after `failures` failed polls in a row: exponential from the
        interval, with jitter, never before `retry_after`, within the poll bounds."""
        delay = backoff_seconds(
            failures,
            base=source.interval_seconds,
            cap=self._settings.max_poll_seconds,
            spread=self._settings.backoff_jitter_ratio,
            draw=self._rng.uniform(-1, 1),
        )
        delay = max(delay, retry_after or 0.0, self._settings.min_poll_seconds)
        return min(delay, self._settings.max_poll_seconds)

    async def _poll_under_lease(self, source: SourceConfig) -> int:
        """Poll `source` if due, under its lease (one replica at a time); raises
        `LeaseLostError` when the lease was lost and the poll stopped."""
        seconds = self._settings.poll_lease_seconds
        taken_at = time.monotonic()
        if not await self.store.try_lock(source.name, self._token, lease_ms(seconds)):
            return 0
        try:
            return await while_leased(
                Lease(seconds, taken_at),
                lambda ms: self.store.renew_lock(source.name, self._token, ms),
                self._poll_if_due(source),
            )
        finally:
            await self.store.unlock(source.name, self._token)

    async def _poll_if_due(self, source: SourceConfig) -> int:
        state = await self.load_state(source)
        if not state.is_due(self._clock().timestamp()):  # another replica polled it
            self._due_at[source.name] = _due_at(state)
            return 0
        return await self.poll(source)

    # -- one poll ----------------------------------------------------------------------------

    async def poll(self, source: SourceConfig) -> int:
        """Poll one source now; returns the number of new articles published."""
        state = await self.load_state(source)
        url = state.url or source.url
        kind = (
            "sitemap" if source.kind == "sitemap" else "page" if source.kind == "page" else "feed"
        )
        robots = kind != "feed"
        try:
            response = await self._get(kind, url, state.conditional_headers(), robots=robots)
            if response.moved_permanently and response.url != url:
                self._metrics.events.labels("moved").inc()
                log.warning(
                    "source moved permanently", source=source.name, old=url, new=response.url
                )
                # The old address's validators say nothing about the new one.
                state = replace(
                    state, url=response.url, etag=None, last_modified=None, sitemap_cursor=0
                )
                if response.status == 304:  # answered to the old validators, sent along
                    response = await self._get(kind, response.url, {}, robots=robots)
        except FetchError as exc:
            await self._failed(source, state, exc.reason, str(exc), exc)
            return 0
        if response.status == 304:
            self._metrics.polls.labels("not_modified").inc()
            log.info("source not modified", source=source.name)
            await self._succeeded(source, state, response, None, "not_modified", keep=True)
            return 0
        if kind == "page":
            return await self._poll_page(source, state, response)
        if not state.sitemap_cursor and is_unchanged(state.body_digest, response.body):
            self._metrics.polls.labels("unchanged").inc()
            log.info("source unchanged", source=source.name)
            await self._succeeded(source, state, response, None, "unchanged", keep=True)
            return 0
        try:
            listing = await self._listing(kind, response, state.sitemap_cursor)
        except FeedError as exc:
            await self._failed(source, state, "broken_feed", str(exc), None, response.body)
            return 0
        published, complete = await self._publish_new(source, listing.items)
        self._metrics.polls.labels("changed").inc()
        # Items left for later keep the old validators (the next poll re-reads the listing)
        # and the sitemap cursor where it was (it re-reads the same child sitemaps).
        await self._succeeded(
            source,
            state,
            response,
            listing.ttl_seconds,
            "ok",
            keep=not (listing.complete and complete),
            sitemap_cursor=listing.sitemap_cursor if complete else state.sitemap_cursor,
        )
        log.info(
            "source polled",
            source=source.name,
            items=len(listing.items),
            new=published,
            complete=listing.complete and complete,
        )
        return published

    async def _listing(self, kind: str, response: HttpResponse, cursor: int) -> _Listing:
        """The items of a feed or sitemap; of a sitemap index, those of the next
        `max_child_sitemaps` children from `cursor`, so a large index is read over several
        polls and counts as read in full only once its last child was."""
        if kind == "feed":
            feed = parse_feed(response.body, base_url=response.url)
            return _Listing(feed.items, feed.ttl_seconds, complete=True)
        sitemap = parse_sitemap(response.body, base_url=response.url)
        if not sitemap.sitemaps:
            return _Listing(sitemap.items, None, complete=True)
        children = sitemap.sitemaps
        batch = child_sitemap_batch(len(children), cursor, self._settings.max_child_sitemaps)
        items: list[FeedItem] = []
        position = batch.start
        for position in batch:
            try:
                page = await self._get("sitemap", children[position], {}, robots=True)
                items.extend(parse_sitemap(page.body, base_url=page.url).items)
            except TransientFetchError as exc:
                log.warning(
                    "child sitemap failed, retrying next poll",
                    sitemap=children[position],
                    error=str(exc),
                )
                break
            except (FetchError, FeedError) as exc:  # retrying will not help: skipped
                log.warning("child sitemap skipped", sitemap=children[position], error=str(exc))
        else:
            position = batch.stop
        complete = position >= len(children)
        if not complete:
            log.info(
                "sitemap index read in part",
                read=position - batch.start,
                next_child=position,
                children=len(children),
            )
        return _Listing(
            tuple(dict.fromkeys(items)), None, complete, sitemap_cursor=0 if complete else position
        )

    async def _poll_page(
        self, source: SourceConfig, state: SourceState, response: HttpResponse
    ) -> int:
        item = FeedItem(url=canonical_url(source.url), title=None, published=None, guid=None)
        published = await self._publish(source, item, response)
        self._metrics.polls.labels("changed").inc()
        await self._succeeded(source, state, response, None, "ok", keep=False)
        return int(published)

    async def _succeeded(
        self,
        source: SourceConfig,
        state: SourceState,
        response: HttpResponse,
        ttl_seconds: float | None,
        last_status: str,
        *,
        keep: bool,
        sitemap_cursor: int = 0,
    ) -> None:
        """Store the response's validators (unless `keep`) and schedule the next poll from
        the interval, the feed's ttl and the response's freshness, within bounds."""
        now = self._clock()
        fresh = max(ttl_seconds or 0.0, freshness_seconds(response.headers, now) or 0.0)
        due = next_poll_at(
            now,
            interval_seconds=source.interval_seconds,
            ttl_seconds=fresh or None,
            min_seconds=self._settings.min_poll_seconds,
            max_seconds=self._settings.max_poll_seconds,
            jitter_ratio=self._rng.uniform(-1, 1) * self._settings.poll_jitter_ratio,
        )
        validators = (
            None
            if keep
            else Validators(
                response.headers.get("etag"),
                response.headers.get("last-modified"),
                body_digest(response.body),
            )
        )
        outcome = after_success(
            state,
            now=now.timestamp(),
            next_poll_at=due.timestamp(),
            last_status=last_status,
            validators=validators,
            sitemap_cursor=sitemap_cursor,
        )
        if outcome.event == "recovered":
            log.info("source recovered", source=source.name, after_failures=state.failures)
        await self._record(source, outcome)
        self.polls_completed += 1

    async def _failed(
        self,
        source: SourceConfig,
        state: SourceState,
        reason: str,
        error: str,
        exc: FetchError | None,
        body: bytes = b"",
    ) -> None:
        """Back off (exponentially, with jitter, never before Retry-After); mark the source
        broken after N failures in a row, disabled on 410 Gone; park permanent failures."""
        self._metrics.polls.labels("broken_feed" if reason == "broken_feed" else "failed").inc()
        retry_after = exc.retry_after_seconds if isinstance(exc, TransientFetchError) else None
        outcome = after_failure(
            state,
            now=self._clock().timestamp(),
            backoff_seconds=self._backoff_delay(source, state.failures + 1, retry_after),
            reason=reason,
            error=error,
            gone=exc is not None and exc.status == 410,
            broken_after_failures=self._settings.broken_after_failures,
            broken_retry_seconds=self._settings.broken_retry_seconds,
        )
        new = outcome.state
        if outcome.event == "disabled":
            log.error("source disabled: gone (410)", source=source.name, url=source.url)
        elif outcome.event == "broken":
            log.error("source broken", source=source.name, failures=new.failures, reason=reason)
        log.warning(
            "source poll failed",
            source=source.name,
            reason=reason,
            error=error,
            failures=new.failures,
            retry_in_seconds=round(new.next_poll_at - (new.last_poll_at or 0.0), 1),
        )
        if exc is None or isinstance(exc, PermanentFetchError):
            await self._park(reason, f"source {source.name} ({source.url}): {error}", body)
        await self._record(source, outcome)
        self.polls_completed += 1

    async def _record(self, source: SourceConfig, outcome: PollOutcome) -> None:
        """Store a poll's outcome and count the health change it made."""
        if outcome.event is not None:
            self._metrics.events.labels(outcome.event).inc()
        await self._save(source.name, outcome.state)

    # -- items -------------------------------------------------------------------------------

    async def _publish_new(
        self, source: SourceConfig, items: Sequence[FeedItem]
    ) -> tuple[int, bool]:
        """Fetch and publish the unseen items, at most `max_items_per_poll`; returns how many
        were published and whether none is left for a later poll."""
        ids = [article_id(item.url) for item in items]
        unseen = await self.store.unseen(ids, self._clock())
        fresh = [item for item, i in zip(items, ids, strict=True) if i in unseen]
        self._metrics.skipped.labels("seen").inc(len(items) - len(fresh))
        complete = len(fresh) <= self._settings.max_items_per_poll
        published = 0
        for item in fresh[: self._settings.max_items_per_poll]:
            outcome = await self._fetch_item(source, item)
            published += outcome == "published"
            complete = complete and outcome != "retry"
        return published, complete

    async def _fetch_item(self, source: SourceConfig, item: FeedItem) -> ItemOutcome:
        """Fetch and publish one item; a transient failure leaves it for the next poll."""
        try:
            page = await self._get("page", item.url, {}, robots=True)
        except PermanentFetchError as exc:
            if exc.reason == "robots_disallowed":
                self._metrics.skipped.labels("robots_disallowed").inc()
                log.info("page disallowed by robots.txt", url=item.url, source=source.name)
                return "skipped"
            await self._park(exc.reason, f"page {item.url}: {exc}", b"")
            await self.store.mark_seen(article_id(item.url), self._clock())
            return "failed"
        except FetchError as exc:
            log.warning("page fetch failed, retrying next poll", url=item.url, error=str(exc))
            return "retry"
        return "published" if await self._publish(source, item, page) else "seen"

    async def _publish(
        self, source: SourceConfig, item: FeedItem, page: HttpResponse, *, label: str | None = None
    ) -> bool:
        """Publish one page unless it was before; counted under `label` (default: the
        source's name)."""
        item_id = article_id(item.url)
        article = RawArticle(
            article_id=item_id,
            url=item.url,
            final_url=page.url,
            source=source.name,
            feed_url=None if source.kind == "page" else source.url,
            fetched_at=self._clock(),
            http_status=page.status,
            content_type=page.headers.get("content-type"),
            html=page.text(),
            lang_hint=item.lang or source.lang,
            feed_title=item.title,
            feed_published=item.published,
            tags=source.tags,
        )
        if not await self.store.publish_once(item_id, article):
            self._metrics.skipped.labels("seen").inc()
            return False
        self._metrics.items.labels(label or source.name).inc()
        return True

    async def ingest(
        self,
        url: str,
        *,
        html: str | None = None,
        source: str = INGEST_SOURCE,
        lang: str | None = None,
        tags: tuple[str, ...] = (),
    ) -> IngestResult:
        """Publish one pushed page through the polled items' path: `html` as given, or
        fetched from `url` (robots.txt, address policy and limits apply). Counted under
        the source label "ingest" whatever `source` says. Raises `ValueError` for a URL
        that cannot be parsed."""
        item = FeedItem(url=canonical_url(url), title=None, published=None, guid=None)
        item_id = article_id(item.url)
        pushed = SourceConfig(name=source, url=item.url, kind="page", lang=lang, tags=tags)
        if html is None:
            try:
                page = await self._get("page", item.url, {}, robots=True)
            except FetchError as exc:
                return IngestResult(item_id, item.url, "failed", f"{exc.reason}: {exc}")
        else:
            page = HttpResponse(
                url=item.url,
                status=200,
                headers={"content-type": "text/html; charset=utf-8"},
                body=html.encode("utf-8", "surrogatepass"),
            )
        published = await self._publish(pushed, item, page, label=INGEST_SOURCE)
        return IngestResult(item_id, item.url, "published" if published else "seen")

    # -- HTTP with politeness ----------------------------------------------------------------

    async def _get(
        self, kind: str, url: str, headers: dict[str, str], *, robots: bool
    ) -> HttpResponse:
        if robots and not await self._robots.allows(url, self._fetch_robots):
            self._metrics.fetch_errors.labels(kind, "robots_disallowed").inc()
            raise PermanentFetchError(url, "robots_disallowed", "disallowed by robots.txt")
        async with self._hosts.slot(host_of(url)):
            started = time.perf_counter()
            try:
                response = await self._http.get(url, headers=headers)
            except FetchError as exc:
                self._metrics.fetches.labels(
                    kind, status_class(exc.status) if exc.status else "error"
                ).inc()
                self._metrics.fetch_errors.labels(kind, exc.reason).inc()
                raise
            finally:
                self._metrics.fetch_seconds.labels(kind).observe(time.perf_counter() - started)
        self._metrics.fetches.labels(kind, status_class(response.status)).inc()
        self._metrics.bytes.inc(len(response.body))
        return response

    async def _fetch_robots(self, origin: str) -> tuple[int | None, str]:
        """An origin's robots.txt: (status, body); (status or None, "") when it failed."""
        try:
            response = await self._get("robots", f"{origin}/robots.txt", {}, robots=False)
        except FetchError as exc:
            if exc.reason == "blocked_address":
                raise
            return exc.status, ""
        return response.status, response.text()[:500_000]

    async def _park(self, reason: str, error: str, body: bytes) -> None:
        log.error("fetch dead-lettered", reason=reason, error=error)
        letter = dead_letter(
            stream=ARTICLES_RAW,
            entry_id="",
            service=SERVICE,
            reason=reason,
            error=error,
            payload=body[:65_536],
            now=self._clock(),
        )
        await park(self._redis, letter, retention_seconds=self._dead_letter_retention_seconds)
        self._dead_letters.labels(ARTICLES_RAW, reason).inc()
