"""The fetcher's state in Redis, shared by replicas and kept across restarts.

Keys (under the `key_prefix` setting, default `newsmon:fetcher`, as the hash tag
`{newsmon:fetcher}` except the seen ids, kept beside `articles.raw`):
`source:<name>` hash of a source's state; `sources` hash of run-time sources
(name -> SourceConfig JSON); `seen-at` sorted set of published (or given up) article ids
scored by when last published or listed (ms), kept for the seen retention (earlier versions
kept a `seen` set forever: `migrate_legacy_seen` moves it over);
`deleted:<name>` a mark that a run-time source was just deleted; `lock:<name>` a poll
lease; `host:<host>:leases` sorted set of request leases and `host:<host>:next` the earliest
time of the next request (ms, Redis clock);
`robots:<origin>` the cached robots.txt.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from importlib.resources import files
from typing import cast

import redis.asyncio as aioredis
from pydantic import BaseModel

from contracts import SourceConfig
from contracts.streams import ARTICLES_RAW, hash_tag
from services.common.bus import DATA_FIELD, encode
from services.common.keys import LegacyKeys
from services.fetcher.core import SourceState


def _script(name: str) -> str:
    return files("services.fetcher").joinpath(name).read_text("utf-8")


DELETED_MARK_SECONDS = 3600
"""How long a deleted source's state cannot be written back (seconds): far longer than a poll
lasts once every replica has cancelled it (at its next schedule refresh)."""
LEGACY_SEEN_BATCH = 1000
"""Ids moved per step from the `seen` set of earlier versions into `seen-at`."""


def fetcher_key(prefix: str, *parts: str) -> str:
    """A key of the fetcher's own state: `{newsmon:fetcher}:source:<name>`. They share one
    hash tag, so a script or transaction may touch any of them on a cluster (all of it is a
    few keys per source and per host)."""
    return ":".join((hash_tag(prefix), *parts))


def seen_key(prefix: str) -> str:
    """The seen ids: `newsmon:fetcher:{articles.raw}:seen-at`, in the hash slot of
    `articles.raw`, the stream the publish-once script appends to in the same step."""
    return f"{prefix}:{hash_tag(ARTICLES_RAW)}:seen-at"


def renamed_fetcher_key(prefix: str, key: str) -> str | None:
    """Today's name of a fetcher key named as before hash tags (`newsmon:fetcher:sources`
    -> `{newsmon:fetcher}:sources`); None for a key named as today, or the legacy `seen`
    set, which `migrate_legacy_seen` moves over."""
    rest = key.removeprefix(prefix + ":")
    if rest == key or "{" in key or rest == "seen":
        return None
    return seen_key(prefix) if rest == "seen-at" else fetcher_key(prefix, rest)


def legacy_fetcher_keys(prefix: str) -> LegacyKeys:
    """The fetcher's keys that earlier versions named without hash tags."""
    return LegacyKeys(f"{prefix}:*", partial(renamed_fetcher_key, prefix))


def _iso(timestamp: float | None) -> str | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).isoformat()


def describe_source(source: SourceConfig, state: SourceState, *, origin: str) -> dict[str, object]:
    """A source and its state as the HTTP API shows it."""
    return {
        **source.model_dump(mode="json"),
        "origin": origin,
        "state": state.status,
        "current_url": state.url or source.url,
        "last_poll_at": _iso(state.last_poll_at),
        "last_status": state.last_status,
        "last_error": state.last_error,
        "next_poll_at": _iso(state.next_poll_at) if state.next_poll_at else None,
        "error_count": state.failures,
    }


class FetcherStore:
    """Every Redis operation of the fetcher, one method each."""

    def __init__(
        self, redis: aioredis.Redis, key_prefix: str, *, seen_retention_seconds: float
    ) -> None:
        self._redis = redis
        self._prefix = key_prefix
        self._seen_retention_ms = int(seen_retention_seconds * 1000)
        self._seen_key = seen_key(key_prefix)
        self._publish_once = redis.register_script(_script("publish_once.lua"))
        self._save_state = redis.register_script(_script("save_state.lua"))
        self._acquire_host = redis.register_script(_script("acquire_host.lua"))
        self._renew_host = redis.register_script(_script("renew_host.lua"))
        self._take_lock = redis.register_script(_script("take_lease.lua"))
        self._release_lock = redis.register_script(_script("release_lease.lua"))
        self._renew_lock = redis.register_script(_script("renew_lease.lua"))

    def key(self, *parts: str) -> str:
        return fetcher_key(self._prefix, *parts)

    async def load_state(self, name: str) -> SourceState:
        raw = await self._redis.hgetall(self.key("source", name))
        return SourceState.from_fields(cast(dict[bytes, bytes], raw))

    async def load_states(self, names: Sequence[str]) -> dict[str, SourceState]:
        """Every named source's state in one round trip."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(self.key("source", name))
            results = await pipe.execute()
        return {n: SourceState.from_fields(raw) for n, raw in zip(names, results, strict=True)}

    async def save_state(self, name: str, state: SourceState) -> bool:
        """Save the state of source `name` unless it was deleted lately; False then."""
        pairs = [part for item in state.to_fields().items() for part in item]
        saved = await self._save_state(
            keys=[self.key("source", name), self.key("deleted", name)], args=pairs
        )
        return bool(saved)

    async def update_state(self, name: str, **changes: object) -> SourceState:
        state = replace(await self.load_state(name), **changes)  # type: ignore[arg-type]
        await self.save_state(name, state)
        return state

    async def runtime_sources(self) -> list[SourceConfig]:
        raw = cast(dict[bytes, bytes], await self._redis.hgetall(self.key("sources")))
        return [SourceConfig.model_validate_json(body) for _, body in sorted(raw.items())]

    async def add_runtime_source(self, source: SourceConfig) -> bool:
        """False when a run-time source of that name exists already."""
        added = await self._redis.hsetnx(self.key("sources"), source.name, source.model_dump_json())
        if added:
            await self._redis.delete(self.key("deleted", source.name))
        return bool(added)

    async def remove_runtime_source(self, name: str) -> bool:
        """Delete a run-time source and its state, and mark it deleted for
        `DELETED_MARK_SECONDS`: a poll of it still running cannot save its state back."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hdel(self.key("sources"), name)
            pipe.set(self.key("deleted", name), 1, ex=DELETED_MARK_SECONDS)
            pipe.delete(self.key("source", name))
            removed, *_ = await pipe.execute()
        return bool(removed)

    async def unseen(self, ids: Sequence[str], now: datetime) -> set[str]:
        """The ids never published; the others are marked as listed `now`, so an id leaves
        the seen set only once its feed has not listed it for the seen retention."""
        if not ids:
            return set()
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zmscore(self._seen_key, list(ids))
            pipe.zadd(self._seen_key, dict.fromkeys(ids, now.timestamp() * 1000), xx=True)
            scores, _ = await pipe.execute()
        return {i for i, score in zip(ids, scores, strict=True) if score is None}

    async def mark_seen(self, article_id: str, now: datetime) -> None:
        """Remember an article given up on (not published), so it is not tried again."""
        await self._redis.zadd(self._seen_key, {article_id: now.timestamp() * 1000})

    async def publish_once(self, article_id: str, message: BaseModel) -> bool:
        """Publish to `articles.raw` unless the article was published before; True if it was now."""
        entry = await self._publish_once(
            keys=[self._seen_key, ARTICLES_RAW],
            args=[article_id, DATA_FIELD, encode(message), self._seen_retention_ms],
        )
        return entry is not None

    async def migrate_legacy_seen(self, now: datetime) -> int:
        """Move the ids of an earlier version's `seen` set (kept forever) into `seen-at`,
        as seen `now`; returns how many. Nothing to do once it is gone."""
        legacy = f"{self._prefix}:seen"
        moved = 0
        while True:
            batch = cast(list[bytes], await self._redis.srandmember(legacy, LEGACY_SEEN_BATCH))
            if not batch:
                return moved
            score = now.timestamp() * 1000
            await self._redis.zadd(self._seen_key, dict.fromkeys(batch, score), nx=True)
            await self._redis.srem(legacy, *batch)  # after: a crash between loses nothing
            moved += len(batch)

    async def try_lock(self, name: str, token: str, lease_ms: int) -> bool:
        """Take the poll lease of source `name` for `token` if it is free or `token`'s."""
        return bool(await self._take_lock(keys=[self.key("lock", name)], args=[token, lease_ms]))

    async def renew_lock(self, name: str, token: str, lease_ms: int) -> bool:
        """False when the lease is no longer `token`'s (it ran out, another took it)."""
        return bool(await self._renew_lock(keys=[self.key("lock", name)], args=[token, lease_ms]))

    async def unlock(self, name: str, token: str) -> None:
        await self._release_lock(keys=[self.key("lock", name)], args=[token])

    async def acquire_host(
        self, host: str, token: str, *, limit: int, lease_ms: int, interval_ms: int
    ) -> int:
        """0 when a request slot of `host` was taken; else milliseconds worth waiting (-1: busy)."""
        result = await self._acquire_host(
            keys=[self.key("host", host, "leases"), self.key("host", host, "next")],
            args=[token, limit, lease_ms, interval_ms],
        )
        return int(result)

    async def renew_host(self, host: str, token: str, lease_ms: int) -> bool:
        """False when the request slot ran out already."""
        result = await self._renew_host(
            keys=[self.key("host", host, "leases")], args=[token, lease_ms]
        )
        return bool(result)

    async def release_host(self, host: str, token: str) -> None:
        await self._redis.zrem(self.key("host", host, "leases"), token)

    async def cached_robots(self, origin: str) -> tuple[int | None, str] | None:
        raw = await self._redis.get(self.key("robots", origin))
        if raw is None:
            return None
        data = json.loads(raw)
        return data["status"], data["body"]

    async def cache_robots(self, origin: str, status: int | None, body: str, ttl: float) -> None:
        payload = json.dumps({"status": status, "body": body})
        await self._redis.set(self.key("robots", origin), payload, px=max(int(ttl * 1000), 1))
